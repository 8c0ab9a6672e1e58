/* sparq bench optim: one optimizer step over a GPT's parameters for FP32
 * AdamW, AdamW with plain per-group FP8 moments and COAT's AdamW with DRE,
 * interleaved in one process on the same gradients, so the cost of FP8
 * states is measured apart from the rest of a training step. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

#define ARMS 3
#define GRAD_SETS 4

static const char *const ARM_NAMES[ARMS] = {"adamw", "adamw-fp8-nodre", "adamw-fp8"};

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Gradients whose scale varies by tensor and element, as Adam's inputs do,
 * so the FP8 groups span realistic ranges. */
static void fill_grads(float *g, size_t n, sparq_rng *rng) {
  for (size_t i = 0; i < n; i++) {
    const float scale = 1e-3f * (float)(1 + (i / 4096) % 7) * (float)(1 + i % 5);
    g[i] = scale * sparq_rng_normal(rng);
  }
}

typedef struct {
  sparq_adamw_state fp32;
  sparq_adamw_fp8_state fp8[2]; /* plain, DRE */
} optim_states;

static sparq_status arm_step(optim_states *st, int arm, sparq_param_list *pl, const sparq_adamw_config *cfg) {
  if (arm == 0) return sparq_adamw_step(&st->fp32, pl, cfg, 1e-4f);
  return sparq_adamw_fp8_step(&st->fp8[arm - 1], pl, cfg, 1e-4f);
}

int cli_bench_optim(int argc, char **argv) {
  int64_t layers = 4, heads = 4, dim = 128, seq = 128, reps = 30;
  bool json = false;
  const cli_opt opts[] = {
      {"layers", CLI_INT, &layers, 1, 1024, NULL}, {"heads", CLI_INT, &heads, 1, 4096, NULL},
      {"dim", CLI_INT, &dim, 1, 65536, NULL},      {"seq", CLI_INT, &seq, 1, 65536, NULL},
      {"reps", CLI_INT, &reps, 1, 100000, NULL},   {"json", CLI_BOOL, &json, 0, 0, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  sparq_gpt_config cfg = sparq_gpt_config_default();
  cfg.n_layer = layers, cfg.n_head = heads, cfg.n_embd = dim, cfg.block_size = seq;
  sparq_gpt *g = NULL;
  if (sparq_gpt_create(&cfg, 1, &g)) return cli_fail_last_error();
  sparq_param_list *pl = sparq_gpt_params(g);
  const size_t n = pl->numel;
  optim_states st;
  memset(&st, 0, sizeof st);
  sparq_adamw_fp8_config plain = sparq_adamw_fp8_config_default(), dre = plain;
  plain.dre = false;
  float *grads = sparq_alloc((size_t)GRAD_SETS * n * sizeof(float), "bench optim gradients");
  double *ms = sparq_alloc((size_t)(ARMS * reps) * sizeof(double), "bench optim times");
  if (!grads || !ms || sparq_adamw_init(&st.fp32, pl) || sparq_adamw_fp8_init(&st.fp8[0], pl, &plain) ||
      sparq_adamw_fp8_init(&st.fp8[1], pl, &dre)) {
    rc = cli_fail_last_error();
    goto done;
  }
  sparq_rng rng = sparq_rng_make(11, 0);
  for (int k = 0; k < GRAD_SETS; k++) fill_grads(grads + (size_t)k * n, n, &rng);
  const sparq_adamw_config acfg = sparq_adamw_config_default();
  /* every arm sees the same gradient sequence; the parameters they update
   * are shared, which changes no arm's cost. Three untimed steps first, so
   * the moments are no longer zero. */
  for (int64_t it = -3; it < reps && !rc; it++)
    for (int arm = 0; arm < ARMS && !rc; arm++) {
      memcpy(pl->grad, grads + (size_t)((it + 3) % GRAD_SETS) * n, n * sizeof(float));
      const double t0 = sparq_now();
      if (arm_step(&st, arm, pl, &acfg)) rc = cli_fail_last_error();
      if (it >= 0) ms[arm * reps + it] = (sparq_now() - t0) * 1e3;
    }
  if (rc) goto done;
  double med[ARMS], best[ARMS];
  for (int arm = 0; arm < ARMS; arm++) {
    qsort(ms + arm * reps, (size_t)reps, sizeof(double), cmp_double);
    med[arm] = ms[arm * reps + reps / 2], best[arm] = ms[arm * reps];
  }
  const int threads = sparq_threads();
  if (!json)
    printf("bench optim: one step over the %.2fM parameters of GPT %" PRId64 " layers, dim %" PRId64
           " (groups of %d), %d threads, %" PRId64 " interleaved reps\n",
           (double)n / 1e6, layers, dim, SPARQ_FP8_GROUP, threads, reps);
  for (int arm = 0; arm < ARMS; arm++) {
    const double ns = med[arm] * 1e6 / (double)n;
    if (json)
      printf("{\"optim\":\"%s\",\"params\":%zu,\"threads\":%d,\"median_ms\":%.4f,\"best_ms\":%.4f,"
             "\"ns_per_param\":%.3f,\"vs_adamw\":%.3f}\n",
             ARM_NAMES[arm], n, threads, med[arm], best[arm], ns, med[arm] / med[0]);
    else
      printf("  %-16s median %8.3f ms  best %8.3f ms  %7.2f ns/parameter  %6.2fx AdamW's time\n", ARM_NAMES[arm],
             med[arm], best[arm], ns, med[arm] / med[0]);
  }
done:
  sparq_adamw_free(&st.fp32);
  sparq_adamw_fp8_free(&st.fp8[0]);
  sparq_adamw_fp8_free(&st.fp8[1]);
  sparq_free(grads);
  sparq_free(ms);
  sparq_gpt_free(g);
  return rc;
}
