/* The demo's language-model step: a small GPT trained for about a minute on
 * the fortunes bytes, a sample from it and its loss curve. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

extern char **environ;

static bool have_gnuplot(void) {
  char *argv[] = {"gnuplot", "--version", NULL};
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 0, 0);
  int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return true;
}

int cli_demo_lm(const char *out) {
  char dir[4096], ckpt[4200], log[4200], png[4200];
  snprintf(dir, sizeof dir, "%s/lm", out);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
  snprintf(log, sizeof log, "%s/log.jsonl", dir);
  snprintf(png, sizeof png, "%s/loss.png", dir);
  cli_lm_flags f = cli_lm_flags_default();
  f.layers = 4, f.heads = 4, f.dim = 128, f.seq = 64, f.batch = 16;
  f.steps = 1500, f.warmup = 100, f.lr = 2e-3, f.eval_every = 250, f.eval_batches = 8, f.ckpt_every = 0;
  f.out = dir;
  sparq_train_result res;
  int rc = cli_train_lm_run(&f, &res, false);
  if (rc) return rc;
  sparq_gpt *g = NULL;
  if ((rc = cli_load_gpt(ckpt, &g))) return rc;
  static const char prompt[] = "The ";
  int32_t ids[4 + 240];
  for (int i = 0; i < 4; i++) ids[i] = (uint8_t)prompt[i];
  sparq_rng rng = sparq_rng_make(1, 0x67656e);
  if (sparq_gpt_generate(g, ids, 4, 240, 0.8f, 200, &rng, ids + 4)) {
    sparq_gpt_free(g);
    return cli_fail_last_error();
  }
  sparq_gpt_free(g);
  printf("sample (temperature 0.8):\n----\n");
  for (int i = 0; i < 244; i++) putchar(ids[i] & 0xff);
  printf("\n----\n");
  if (have_gnuplot()) return cli_plot_log(log, png);
  printf("loss curve not drawn: gnuplot not found (install gnuplot-nox, then: sparq plot %s --out %s)\n", log, png);
  return CLI_OK;
}
