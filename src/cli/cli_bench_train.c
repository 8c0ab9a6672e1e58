/* sparq bench train: one GPT training step (forward, backward, clipping,
 * AdamW) at the reference configuration, with the time split into
 * GEMM, attention and the rest and the model FLOPs utilisation. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int cli_bench_train(int argc, char **argv) {
  int64_t layers = 6, heads = 6, dim = 384, seq = 256, batch = 8, steps = 10;
  bool json = false;
  const cli_opt opts[] = {
      {"layers", CLI_INT, &layers, 1, 1024, NULL}, {"heads", CLI_INT, &heads, 1, 4096, NULL},
      {"dim", CLI_INT, &dim, 1, 65536, NULL},      {"seq", CLI_INT, &seq, 1, 65536, NULL},
      {"batch", CLI_INT, &batch, 1, 65536, NULL},  {"steps", CLI_INT, &steps, 1, 100000, NULL},
      {"json", CLI_BOOL, &json, 0, 0, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  sparq_gpt_config cfg = sparq_gpt_config_default();
  cfg.n_layer = layers, cfg.n_head = heads, cfg.n_embd = dim, cfg.block_size = seq;
  sparq_gpt *g = NULL;
  if (sparq_gpt_create(&cfg, 1, &g)) return cli_fail_last_error();
  sparq_param_list *pl = sparq_gpt_params(g);
  sparq_adamw_state adam;
  sparq_adamw_config acfg = sparq_adamw_config_default();
  size_t ntok = (size_t)(batch * seq);
  int32_t *x = sparq_alloc(ntok * sizeof *x, "bench batch"), *y = sparq_alloc(ntok * sizeof *y, "bench batch");
  double *ms = sparq_alloc((size_t)steps * sizeof *ms, "bench times");
  if (!x || !y || !ms || sparq_adamw_init(&adam, pl)) {
    sparq_free(x), sparq_free(y), sparq_free(ms), sparq_gpt_free(g);
    return cli_fail_last_error();
  }
  /* Random bytes: the step costs the same on any data. */
  sparq_rng rng = sparq_rng_make(7, 0);
  for (size_t i = 0; i < ntok; i++) x[i] = (int32_t)sparq_rng_below(&rng, 256), y[i] = (int32_t)sparq_rng_below(&rng, 256);
  double optim_s = 0;
  sparq_gpt_timing split = {0};
  for (int64_t it = -2; it < steps && !rc; it++) { /* two warm-up steps */
    if (it == 0) sparq_gpt_timing_reset(g), optim_s = 0;
    double t0 = sparq_now();
    float loss;
    sparq_params_zero_grad(pl);
    if (sparq_gpt_forward(g, x, y, batch, seq, &loss) || sparq_gpt_backward(g, 1.0f)) {
      rc = cli_fail_last_error();
      break;
    }
    double t1 = sparq_now();
    sparq_grad_clip(pl, 1.0f);
    if (sparq_adamw_step(&adam, pl, &acfg, 1e-4f)) rc = cli_fail_last_error();
    double t2 = sparq_now();
    if (it >= 0) ms[it] = (t2 - t0) * 1e3, optim_s += t2 - t1;
  }
  if (!rc) {
    sparq_gpt_timing_get(g, &split);
    qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
    double med = ms[steps / 2];
    double total = split.gemm + split.attention + split.other + optim_s;
    /* nanoGPT's estimate_mfu: N excludes the position embedding. */
    size_t n_params = sparq_params_count(pl) - (size_t)(seq * dim);
    double flops_per_token = 6.0 * (double)n_params + 6.0 * (double)(layers * seq * dim);
    double tps = (double)ntok / (med / 1e3);
    int threads = sparq_threads();
    double peak = sparq_peak_fp32(threads) * 1e9;
    double mfu = tps * flops_per_token / peak;
    if (json) {
      printf("{\"tokens_per_s\":%.1f,\"ms_per_step\":%.2f,\"mfu\":%.4f,\"threads\":%d,\"gemm_frac\":%.4f,"
             "\"attention_frac\":%.4f,\"other_frac\":%.4f,\"params\":%zu}\n",
             tps, med, mfu, threads, split.gemm / total, split.attention / total,
             (split.other + optim_s) / total, sparq_params_count(pl));
    } else {
      printf("bench train: GPT %" PRId64 " layers, %" PRId64 " heads, dim %" PRId64 ", seq %" PRId64 ", batch %" PRId64
             ", vocab 256, %.2fM parameters, %d threads, AdamW\n",
             layers, heads, dim, seq, batch, (double)sparq_params_count(pl) / 1e6, threads);
      printf("  %.1f ms/step (median of %" PRId64 "), %.0f tokens/s, %.1f GFLOP/s model = %.1f%% of the FP32 peak "
             "(%.1f GFLOP/s)\n",
             med, steps, tps, tps * flops_per_token / 1e9, 100 * mfu, peak / 1e9);
      printf("  time split: GEMM %.1f%%, attention %.1f%%, rest %.1f%% (other layers %.1f%%, clip + AdamW %.1f%%)\n",
             100 * split.gemm / total, 100 * split.attention / total, 100 * (split.other + optim_s) / total,
             100 * split.other / total, 100 * optim_s / total);
    }
  }
  sparq_adamw_free(&adam);
  sparq_free(x), sparq_free(y), sparq_free(ms);
  sparq_gpt_free(g);
  return rc;
}
