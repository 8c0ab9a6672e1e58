/* The 2-D toy study of guidance-free training (spec gft.md 8.1): arm C
 * starts bit-identical to arm A, finished arms are reused only when their
 * settings match, the class-block metrics are the means of the per-class
 * ones, and the evaluation scores the exact optimum of GFT (spec section 2:
 * eps*_u + (eps*_c - eps*_u) / beta) like the exact-CFG reference. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sparq/gft_toy.h"
#include "sparq/sparq.h"

#define K SPARQ_TOY2D_CLASSES

/* A short, cheap arm: enough to write real checkpoints. */
static sparq_gft_toy_train_config tiny_arm(sparq_gft_toy_arm arm, const char *dir, int64_t steps) {
  sparq_gft_toy_train_config c = sparq_gft_toy_train_config_default();
  c.arm = arm, c.steps = steps, c.seed = 3, c.batch = 64, c.ema = 0.9f, c.out_dir = dir, c.quiet = true;
  return c;
}

/* A fresh run directory: a stale checkpoint of an earlier test run would
 * be (correctly) reused. */
static void fresh_dir(char *dir, size_t size, const char *name) {
  snprintf(dir, size, "%s/gft_toy_%s", SPARQ_TEST_TMP, name);
  static const char *const files[] = {"ckpt.safetensors", "ema.safetensors", "log.jsonl"};
  char path[4300];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
}

static bool same_params(sparq_toy_mlp *a, sparq_toy_mlp *b) {
  const sparq_param_list *pa = sparq_toy_mlp_params(a), *pb = sparq_toy_mlp_params(b);
  return pa->numel == pb->numel && memcmp(pa->data, pb->data, pa->numel * sizeof(float)) == 0;
}

/* Spec 9.5 on the study's own model size: a CFG model turned into a GFT
 * model the way arm C starts (same seed, beta projection zero) gives A's
 * conditional output for every beta, bit for bit, also for the null class. */
static void finetune_starts_bit_identical(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion diff;
  assert_int_equal(sparq_diffusion_init(&diff, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  char dir[4096];
  fresh_dir(dir, sizeof dir, "start_a");
  sparq_gft_toy_train_config tc = tiny_arm(SPARQ_GFT_TOY_CFG, dir, 5);
  sparq_toy_mlp *a = NULL;
  sparq_gft_toy_train_result r;
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &a, &r), SPARQ_OK);
  assert_false(r.reused);

  sparq_toy_mlp_config mc = sparq_toy_mlp_config_default();
  mc.gft = true;
  sparq_toy_mlp *c = NULL;
  assert_int_equal(sparq_toy_mlp_create(&mc, tc.seed, &c), SPARQ_OK);
  assert_int_equal(sparq_toy_mlp_copy_from(c, a), SPARQ_OK);
  enum { N = 1000 };
  float *x = malloc(2 * N * sizeof *x), *t = malloc(N * sizeof *t), *beta = malloc(N * sizeof *beta);
  float *ya = malloc(2 * N * sizeof *ya), *yc = malloc(2 * N * sizeof *yc);
  int32_t *y = malloc(N * sizeof *y);
  sparq_rng rng = sparq_rng_make(5, 0);
  for (int i = 0; i < N; i++) {
    x[2 * i] = 2.0f * sparq_rng_normal(&rng), x[2 * i + 1] = 2.0f * sparq_rng_normal(&rng);
    t[i] = (float)sparq_rng_below(&rng, 1000);
    y[i] = (int32_t)sparq_rng_below(&rng, K + 1);
    beta[i] = 1.0f - sparq_rng_uniform(&rng);
  }
  assert_int_equal(sparq_toy_mlp_infer(a, x, t, y, NULL, N, ya), SPARQ_OK);
  assert_int_equal(sparq_toy_mlp_infer(c, x, t, y, beta, N, yc), SPARQ_OK);
  assert_memory_equal(ya, yc, 2 * N * sizeof *ya);
  free(x), free(t), free(beta), free(ya), free(yc), free(y);
  sparq_toy_mlp_free(a);
  sparq_toy_mlp_free(c);
  sparq_diffusion_free(&diff);
}

/* A finished arm is loaded, not retrained, when its signature matches;
 * another step count, seed or starting point retrains it. */
static void finished_arms_are_reused(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion diff;
  assert_int_equal(sparq_diffusion_init(&diff, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  char dir_a[4096], dir_c[4096];
  fresh_dir(dir_a, sizeof dir_a, "reuse_a");
  fresh_dir(dir_c, sizeof dir_c, "reuse_c");

  sparq_gft_toy_train_config tc = tiny_arm(SPARQ_GFT_TOY_CFG, dir_a, 12);
  sparq_toy_mlp *a1 = NULL, *a2 = NULL, *a3 = NULL;
  sparq_gft_toy_train_result r1, r2, r3;
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &a1, &r1), SPARQ_OK);
  assert_false(r1.reused);
  assert_string_equal(r1.note, "");
  assert_int_equal(r1.train.steps_done, 12);
  assert_non_null(strstr(r1.signature, "arm=A objective=cfg steps=12 seed=3 batch=64"));
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &a2, &r2), SPARQ_OK);
  assert_true(r2.reused);
  assert_string_equal(r2.signature, r1.signature);
  assert_true(same_params(a1, a2));
  /* the EMA weights, not the raw ones: a fresh model trained the same way
   * differs from them after 12 steps at decay 0.9 */
  tc.seed = 4;
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &a3, &r3), SPARQ_OK);
  assert_false(r3.reused);
  assert_non_null(strstr(r3.note, "other settings"));
  assert_false(same_params(a1, a3));
  sparq_toy_mlp_free(a3);
  tc.seed = 3; /* back to the first run's weights, retrained bit-exactly */
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &a3, &r3), SPARQ_OK);
  assert_false(r3.reused);
  assert_true(same_params(a1, a3));

  /* arm C: its signature holds A's, so a changed A retrains it */
  sparq_gft_toy_train_config cc = tiny_arm(SPARQ_GFT_TOY_FINETUNE, dir_c, 3);
  cc.init = a1, cc.init_signature = r1.signature;
  sparq_toy_mlp *c1 = NULL, *c2 = NULL, *c3 = NULL;
  sparq_gft_toy_train_result q1, q2, q3;
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &cc, &c1, &q1), SPARQ_OK);
  assert_false(q1.reused);
  assert_true(sparq_toy_mlp_get_config(c1)->gft);
  assert_non_null(strstr(q1.signature, "arm=C objective=gft steps=3"));
  assert_non_null(strstr(q1.signature, r1.signature));
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &cc, &c2, &q2), SPARQ_OK);
  assert_true(q2.reused);
  assert_true(same_params(c1, c2));
  cc.init_signature = "arm=A steps=13";
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &cc, &c3, &q3), SPARQ_OK);
  assert_false(q3.reused);
  assert_non_null(strstr(q3.note, "other settings"));

  sparq_toy_mlp *m[] = {a1, a2, a3, c1, c2, c3};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) sparq_toy_mlp_free(m[i]);
  sparq_diffusion_free(&diff);
}

/* The combined row is the mean of the class blocks' own metrics, the mode
 * counts their sums, NFE and time the one sampling call's. */
static void class_metrics_average_the_blocks(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  enum { N = 300 };
  float *x = malloc(2 * K * N * sizeof *x), *ref = malloc(2 * K * N * sizeof *ref);
  int32_t y[K * N];
  for (int i = 0; i < K * N; i++) y[i] = i / N;
  sparq_rng rng = sparq_rng_make(11, 0);
  sparq_toy2d_sample(&toy, y, K * N, &rng, x);
  sparq_toy2d_sample(&toy, y, K * N, &rng, ref);
  const sparq_sample_stats st = {.nfe = 100, .calls = 50, .rows = 2 * K * N * 50, .seconds = 2.0};
  sparq_toy_sample_metrics all;
  assert_int_equal(sparq_gft_toy_class_metrics(&toy, x, ref, N, &st, &all), SPARQ_OK);
  double e = 0, lp = 0, acc = 0, en = 0;
  int covered = 0, modes = 0;
  for (int c = 0; c < K; c++) {
    sparq_toy_sample_metrics m;
    assert_int_equal(sparq_toy_sample_metrics_eval(&toy, c, x + 2 * c * N, N, ref + 2 * c * N, N, NULL, &m),
                     SPARQ_OK);
    e += m.endpoint_dist / K, lp += m.log_density / K, acc += m.bayes_acc / K, en += m.energy_dist / K;
    covered += m.modes_covered, modes += m.modes;
  }
  assert_int_equal(all.n, K * N);
  assert_true(fabs(all.endpoint_dist - e) < 1e-12 * e);
  assert_true(fabs(all.log_density - lp) < 1e-12 * fabs(lp));
  assert_true(fabs(all.bayes_acc - acc) < 1e-12);
  assert_true(fabs(all.energy_dist - en) < 1e-12 + 1e-9 * en);
  assert_int_equal(all.modes_covered, covered);
  assert_int_equal(all.modes, modes);
  assert_int_equal(modes, toy.ncomp); /* every class's components, once */
  assert_true(all.mode_coverage == (double)covered / modes);
  assert_int_equal(all.nfe, 100);
  assert_true(all.seconds == 2.0 && fabs(all.seconds_per_sample - 2.0 / (K * N)) < 1e-15);
  /* without a reference the distances are NaN, the rest is unchanged */
  sparq_toy_sample_metrics no_ref;
  assert_int_equal(sparq_gft_toy_class_metrics(&toy, x, NULL, N, NULL, &no_ref), SPARQ_OK);
  assert_true(isnan(no_ref.endpoint_dist) && isnan(no_ref.energy_dist));
  assert_true(no_ref.log_density == all.log_density && no_ref.nfe == 0);
  assert_int_equal(sparq_gft_toy_class_metrics(&toy, x, ref, 0, NULL, &no_ref), SPARQ_ERR_ARG);
  free(x), free(ref);
}

/* The optimum of GFT as a network (spec section 2): for gft_beta b it
 * returns eps*_u + (eps*_c - eps*_u) / b from the exact denoiser, in one
 * call of n rows, as a trained GFT model would. */
typedef struct exact_gft {
  sparq_denoiser exact;
  float *buf;
} exact_gft;

static sparq_status exact_gft_eval(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                                   int64_t n, float *out) {
  exact_gft *g = self;
  float *xx = g->buf, *tt = xx + 4 * n, *o = tt + 2 * n;
  int32_t *yy = (int32_t *)(o + 4 * n);
  for (int64_t i = 0; i < n; i++) {
    memcpy(xx + 2 * i, x + 2 * i, 2 * sizeof(float));
    memcpy(xx + 2 * (n + i), x + 2 * i, 2 * sizeof(float));
    tt[i] = tt[n + i] = t[i];
    yy[i] = y[i], yy[n + i] = K;
  }
  sparq_status s = g->exact.eval(g->exact.self, xx, tt, yy, NULL, 2 * n, o);
  if (s) return s;
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < 2; j++) {
      const float u = o[2 * (n + i) + j], c = o[2 * i + j];
      out[2 * i + j] = u + (c - u) / (extra ? extra[i] : 1.0f);
    }
  return SPARQ_OK;
}

static void exact_optimum_scores_like_the_reference(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion diff;
  assert_int_equal(sparq_diffusion_init(&diff, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_gft_toy_eval_config ec = sparq_gft_toy_eval_config_default();
  ec.n_per_class = 150, ec.steps = 50, ec.ref_steps = 200, ec.seed = 9;
  const int64_t rows = sparq_gft_toy_eval_rows(&ec);
  assert_int_equal(rows, K * 150);
  /* shared noise and class blocks */
  float *n1 = malloc(2 * rows * sizeof *n1), *n2 = malloc(2 * rows * sizeof *n2);
  sparq_gft_toy_noise(&ec, n1), sparq_gft_toy_noise(&ec, n2);
  assert_memory_equal(n1, n2, 2 * rows * sizeof *n1);
  int32_t *y = malloc(rows * sizeof *y);
  sparq_gft_toy_labels(&ec, y);
  assert_int_equal(y[0], 0), assert_int_equal(y[149], 0), assert_int_equal(y[150], 1);
  assert_int_equal(y[rows - 1], K - 1);

  sparq_toy2d_exact bind;
  exact_gft g = {.buf = malloc((size_t)rows * 12 * sizeof(float))};
  sparq_toy2d_exact_denoiser(&bind, &toy, &diff, &g.exact);
  sparq_denoiser gnet = {.self = &g, .eval = exact_gft_eval, .dim = 2, .null_class = K};

  float *ref = malloc(2 * rows * sizeof *ref), *xs = malloc(2 * rows * sizeof *xs);
  sparq_gft_toy_row rr, rg, rc;
  assert_int_equal(sparq_gft_toy_reference(&toy, &diff, &ec, 0.5f, ref, &rr), SPARQ_OK);
  assert_true(rr.w == 2.0f && rr.beta == 0.5f);
  assert_true(rr.eps.err < 1e-10 && rr.eps.ref_sq > 0.1);
  assert_true(isnan(rr.m.endpoint_dist) && isnan(rr.m.energy_dist));
  assert_int_equal(rr.m.nfe, 2 * ec.ref_steps);
  assert_true(rr.m.bayes_acc > 0.95); /* w = 2 sharpens the overlapping classes */
  assert_int_equal(rr.m.n, rows);

  /* GFT's optimum at beta = 0.5 is CFG at w = 2: zero eps error, one NFE
   * per step, samples close to the reference (DDIM 50 vs 200 steps) */
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &gnet, true, &ec, 0.5f, ref, &rg, xs), SPARQ_OK);
  printf("exact GFT optimum at beta 0.5: eps error %.3g of %.3g, endpoint %.4f, energy %.5f, Bayes %.4f\n",
         rg.eps.err, rg.eps.ref_sq, rg.m.endpoint_dist, rg.m.energy_dist, rg.m.bayes_acc);
  assert_true(rg.eps.err < 1e-9);
  assert_int_equal(rg.m.nfe, ec.steps);
  assert_true(rg.m.endpoint_dist < 0.05);
  assert_true(rg.m.energy_dist < 0.01);
  assert_true(fabs(rg.m.bayes_acc - rr.m.bayes_acc) < 0.02);
  assert_int_equal(rg.m.modes_covered, rr.m.modes_covered);
  /* the exact denoiser as a CFG arm samples the same ODE at 2 NFE per step */
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &g.exact, false, &ec, 0.5f, ref, &rc, NULL), SPARQ_OK);
  assert_int_equal(rc.m.nfe, 2 * ec.steps);
  assert_true(rc.eps.err < 1e-10);
  assert_true(fabs(rc.m.endpoint_dist - rg.m.endpoint_dist) < 1e-3);
  /* at the reference's own step count the CFG path reproduces it exactly */
  ec.steps = ec.ref_steps;
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &g.exact, false, &ec, 0.5f, ref, &rc, xs), SPARQ_OK);
  assert_memory_equal(xs, ref, 2 * rows * sizeof *xs);
  assert_true(rc.m.endpoint_dist == 0.0 && fabs(rc.m.energy_dist) < 1e-12);

  free(n1), free(n2), free(y), free(g.buf), free(ref), free(xs);
  sparq_diffusion_free(&diff);
}

static void bad_arguments_are_refused(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion diff;
  assert_int_equal(sparq_diffusion_init(&diff, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_toy_mlp *m = NULL;
  sparq_gft_toy_train_result r;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/gft_toy_bad", SPARQ_TEST_TMP);
  sparq_gft_toy_train_config tc = tiny_arm(SPARQ_GFT_TOY_CFG, dir, 0);
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &m, &r), SPARQ_ERR_ARG);
  tc.steps = 1, tc.ema = 0.0f;
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &m, &r), SPARQ_ERR_ARG);
  tc.ema = 0.9f, tc.arm = SPARQ_GFT_TOY_FINETUNE; /* no model to start from */
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &m, &r), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "arm C"));
  sparq_toy_mlp_config gc = sparq_toy_mlp_config_default();
  gc.gft = true;
  sparq_toy_mlp *g = NULL;
  assert_int_equal(sparq_toy_mlp_create(&gc, 1, &g), SPARQ_OK);
  tc.init = g, tc.init_signature = "x"; /* C starts from a CFG model only */
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &m, &r), SPARQ_ERR_ARG);
  tc.arm = (sparq_gft_toy_arm)7;
  assert_int_equal(sparq_gft_toy_train_arm(&toy, &diff, &tc, &m, &r), SPARQ_ERR_ARG);
  assert_null(m);
  assert_null(sparq_gft_toy_arm_name((sparq_gft_toy_arm)7));
  assert_string_equal(sparq_gft_toy_arm_name(SPARQ_GFT_TOY_SCRATCH), "B");

  sparq_gft_toy_eval_config ec = sparq_gft_toy_eval_config_default();
  ec.n_per_class = 2, ec.ref_steps = 2, ec.steps = 2;
  float ref[2 * K * 2];
  sparq_gft_toy_row row;
  sparq_denoiser net;
  sparq_toy_mlp_denoiser(g, &net);
  assert_int_equal(sparq_gft_toy_reference(&toy, &diff, &ec, 0.0f, ref, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gft_toy_reference(&toy, &diff, &ec, 1.5f, ref, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &net, true, &ec, NAN, ref, &row, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gft_toy_reference(&toy, &diff, &ec, 1.0f, ref, NULL), SPARQ_OK);
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &net, true, &ec, 1.0f, ref, &row, NULL), SPARQ_OK);
  ec.n_per_class = 0;
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &net, true, &ec, 1.0f, ref, &row, NULL), SPARQ_ERR_ARG);
  ec.n_per_class = 2, ec.steps = 0;
  assert_int_equal(sparq_gft_toy_eval_arm(&toy, &diff, &net, true, &ec, 1.0f, ref, &row, NULL), SPARQ_ERR_ARG);
  sparq_toy_mlp_free(g);
  sparq_diffusion_free(&diff);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(finetune_starts_bit_identical),
      cmocka_unit_test(finished_arms_are_reused),
      cmocka_unit_test(class_metrics_average_the_blocks),
      cmocka_unit_test(exact_optimum_scores_like_the_reference),
      cmocka_unit_test(bad_arguments_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
