/* The demo's diffusion step: the shipped DiT (models/dit-fmnist.safetensors,
 * trained by `sparq train dit` with the defaults, see models/README.md)
 * draws a class-conditional grid with classifier-free guidance, then its FD
 * line on a small sample. */
#include <stdio.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

#define DEMO_DIT_FILE "dit-fmnist.safetensors"
#define DEMO_CFG "2"
#define DEMO_FD_SAMPLES "500"

int cli_demo_dit(const char *out) {
  char model[4096], dir[4096], grid[4200];
  if (sparq_shipped_model_path(DEMO_DIT_FILE, model, sizeof model)) return cli_fail_last_error();
  if (snprintf(dir, sizeof dir, "%s/dit", out) >= (int)sizeof dir || cli_mkdirs(dir) != CLI_OK)
    return cli_fail("%s/dit: cannot create the output directory", out);
  snprintf(grid, sizeof grid, "%s/samples-cfg" DEMO_CFG ".png", dir);
  char *sample_argv[] = {"sample", "--ckpt", model, "--cfg", DEMO_CFG, "--n", "100", "--sampler", "dpmpp2m",
                         "--steps", "25", "--grid", grid, NULL};
  int rc = cli_sample((int)(sizeof sample_argv / sizeof sample_argv[0]) - 1, sample_argv);
  if (rc) return rc;
  printf("FD of " DEMO_FD_SAMPLES " samples (the floor is real images scored the same way; more samples "
         "lower both):\n");
  fflush(stdout);
  char *fd_argv[] = {"eval", "fd", "--ckpt", model, "--cfg", DEMO_CFG, "--n", DEMO_FD_SAMPLES, "--sampler",
                     "dpmpp2m", "--steps", "25", NULL};
  return cli_eval_fd((int)(sizeof fd_argv / sizeof fd_argv[0]) - 1, fd_argv);
}
