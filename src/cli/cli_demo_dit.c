/* The demo's diffusion step: the shipped DiT (models/dit-fmnist.safetensors,
 * trained by `sparq train dit` with the defaults, see models/README.md)
 * draws a class-conditional grid with classifier-free guidance, its
 * guidance-free fine-tune (models/dit-fmnist-gft.safetensors) the same grid
 * at beta = 1/w from the same noise with half the network evaluations, then
 * both FD lines and their cost on a small sample. */
#include <stdio.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

#define DEMO_DIT_FILE "dit-fmnist.safetensors"
#define DEMO_GFT_FILE "dit-fmnist-gft.safetensors"
#define DEMO_CFG "2"
#define DEMO_FD_SAMPLES "500"

static int grid(const char *model, const char *dir, const char *name) {
  char png[4200];
  snprintf(png, sizeof png, "%s/%s", dir, name);
  char *argv[] = {"sample", "--ckpt", (char *)model, "--cfg", DEMO_CFG, "--n", "100", "--sampler", "dpmpp2m",
                  "--steps", "25", "--grid", png, NULL};
  return cli_sample((int)(sizeof argv / sizeof argv[0]) - 1, argv);
}

int cli_demo_dit(const char *out) {
  char cfg_model[4096], gft_model[4096], both[8200], dir[4096];
  if (sparq_shipped_model_path(DEMO_DIT_FILE, cfg_model, sizeof cfg_model) ||
      sparq_shipped_model_path(DEMO_GFT_FILE, gft_model, sizeof gft_model))
    return cli_fail_last_error();
  if (snprintf(dir, sizeof dir, "%s/dit", out) >= (int)sizeof dir || cli_mkdirs(dir) != CLI_OK)
    return cli_fail("%s/dit: cannot create the output directory", out);
  int rc = grid(cfg_model, dir, "samples-cfg" DEMO_CFG ".png");
  if (!rc) rc = grid(gft_model, dir, "samples-gft-beta-1_" DEMO_CFG ".png");
  if (rc) return rc;
  printf("FD of " DEMO_FD_SAMPLES " samples, CFG at w = " DEMO_CFG " and GFT at beta = 1/" DEMO_CFG
         " side by side (the floor is real images scored the same way; more samples lower both):\n");
  fflush(stdout);
  snprintf(both, sizeof both, "%s,%s", cfg_model, gft_model);
  char *fd_argv[] = {"eval", "fd", "--ckpt", both, "--cfg", DEMO_CFG, "--n", DEMO_FD_SAMPLES, "--sampler",
                     "dpmpp2m", "--steps", "25", NULL};
  return cli_eval_fd((int)(sizeof fd_argv / sizeof fd_argv[0]) - 1, fd_argv);
}
