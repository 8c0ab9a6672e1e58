/* Guidance-Free Training's unit-testable invariants (spec gft.md section 9):
 * 1 the beta = 1/w mapping, 2 the beta = 1 loss identity, 3 the stop-gradient
 * (function level against finite differences, model level: the null label's
 * embedding gets no gradient through the unconditional pass), 4 the optimum
 * eps_u + (eps_c - eps_u) / beta on the exact toy, 6 dropped labels feed
 * beta = 1, 7 the deterministic dropout-free unconditional pass, 8 the NFE
 * counts of GFT and CFG sampling. (5, the zero-init conversion, is in
 * test_dit.c and test_toy_mlp.c; 9 is `sparq gft-toy`'s measurement.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/sparq.h"

/* ------------------------------------------------------------ 1 mapping */

static void test_mapping(void **state) {
  (void)state;
  assert_true(sparq_gft_w_to_beta(1.0f) == 1.0f);
  assert_true(sparq_gft_beta_to_w(1.0f) == 1.0f);
  assert_true(sparq_gft_w_to_beta(2.0f) == 0.5f);
  assert_true(sparq_gft_w_to_beta(4.0f) == 0.25f);
  for (float w = 1.0f; w <= 8.0f; w += 0.125f) {
    const float back = sparq_gft_beta_to_w(sparq_gft_w_to_beta(w));
    assert_true(fabsf(back - w) <= 2e-7f * w);
    assert_int_equal(sparq_gft_check_beta(sparq_gft_w_to_beta(w), "test"), SPARQ_OK);
  }
  /* beta outside (0, 1] (CFG w < 1), zero and NaN are rejected by name */
  const float bad[] = {1.0001f, 2.0f, 0.0f, -0.5f, NAN, INFINITY};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(sparq_gft_check_beta(bad[i], "sample --beta"), SPARQ_ERR_ARG);
    assert_non_null(strstr(sparq_last_error(), "sample --beta"));
  }
  assert_int_equal(sparq_gft_check_beta(sparq_gft_w_to_beta(0.5f), "x"), SPARQ_ERR_ARG);
}

/* ----------------------------------------------------- 2, 3: loss level */

enum { N = 7, DIM = 13 };

static void fill(sparq_rng *rng, float *x, size_t n, float std) { sparq_rng_fill_normal(rng, x, n, 0.0f, std); }

/* The GFT loss in double, written from spec section 3. */
static double ref_loss(const double *out_s, const float *out_u, const float *beta, const float *target,
                       const float *weight) {
  double sum = 0.0;
  for (int i = 0; i < N; i++) {
    double row = 0.0;
    for (int j = 0; j < DIM; j++) {
      const double p = beta[i] * out_s[i * DIM + j] + (1.0 - beta[i]) * out_u[i * DIM + j];
      row += (p - target[i * DIM + j]) * (p - target[i * DIM + j]);
    }
    sum += weight[i] * row / DIM;
  }
  return sum / N;
}

static void test_beta_one_is_conditional_mse(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(1, 0);
  float s[N * DIM], u[N * DIM], g[N * DIM], w[N], ones[N], d_gft[N * DIM], d_mse[N * DIM];
  fill(&rng, s, N * DIM, 1.0f), fill(&rng, u, N * DIM, 1.0f), fill(&rng, g, N * DIM, 1.0f);
  for (int i = 0; i < N; i++) w[i] = 0.5f + (float)i, ones[i] = 1.0f;
  const double l_gft = sparq_gft_loss(N, DIM, ones, s, u, g, w, 0.7f, d_gft);
  const double l_mse = sparq_gft_loss(N, DIM, NULL, s, NULL, g, w, 0.7f, d_mse);
  assert_true(fabs(l_gft - l_mse) <= 1e-6 * l_mse);
  for (int k = 0; k < N * DIM; k++) assert_true(fabsf(d_gft[k] - d_mse[k]) <= 1e-6f * fabsf(d_mse[k]) + 1e-12f);
  /* the plain MSE really is mean_rows w mean_dim (s - g)^2 */
  double want = 0.0;
  for (int i = 0; i < N; i++) {
    double row = 0.0;
    for (int j = 0; j < DIM; j++) row += ((double)s[i * DIM + j] - g[i * DIM + j]) * ((double)s[i * DIM + j] - g[i * DIM + j]);
    want += w[i] * row / DIM;
  }
  assert_true(fabs(l_mse - want / N) <= 1e-6 * l_mse);
}

/* d L / d out_s against central differences in double with out_u held
 * fixed; the gradient carries the factor beta, and a row with beta = 0 (all
 * weight on the detached out_u) gets exactly none. */
static void test_gradient_is_stop_gradient(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(2, 0);
  float s[N * DIM], u[N * DIM], g[N * DIM], w[N], beta[N], grad[N * DIM], g_copy[N * DIM];
  fill(&rng, s, N * DIM, 1.0f), fill(&rng, u, N * DIM, 1.0f), fill(&rng, g, N * DIM, 1.0f);
  for (int i = 0; i < N; i++) w[i] = 0.25f + 0.5f * (float)i, beta[i] = sparq_rng_uniform(&rng);
  beta[3] = 0.0f;
  const float dloss = 1.5f;
  const double loss = sparq_gft_loss(N, DIM, beta, s, u, g, w, dloss, grad);
  double sd[N * DIM];
  for (int k = 0; k < N * DIM; k++) sd[k] = s[k];
  assert_true(fabs(loss - ref_loss(sd, u, beta, g, w)) <= 1e-6 * loss);
  double gmax = 0.0;
  for (int k = 0; k < N * DIM; k++) gmax = fmax(gmax, fabs(grad[k]));
  for (int k = 0; k < N * DIM; k++) {
    const double h = 1e-4, keep = sd[k];
    sd[k] = keep + h;
    const double up = ref_loss(sd, u, beta, g, w);
    sd[k] = keep - h;
    const double down = ref_loss(sd, u, beta, g, w);
    sd[k] = keep;
    const double fd = dloss * (up - down) / (2 * h);
    if (fabs(fd - grad[k]) > 1e-5 * gmax) fail_msg("d out_s[%d] = %.9g, finite differences %.9g", k, grad[k], fd);
  }
  for (int j = 0; j < DIM; j++) assert_true(grad[3 * DIM + j] == 0.0f);
  /* dout_s may alias target */
  memcpy(g_copy, g, sizeof g);
  const double again = sparq_gft_loss(N, DIM, beta, s, u, g_copy, w, dloss, g_copy);
  assert_true(again == loss);
  assert_memory_equal(g_copy, grad, sizeof grad);
}

/* ------------------------------------------------------ 4: the optimum */

/* Minimizing the GFT loss over a free output per (x_t, t, beta), with the
 * exact eps*_u as the detached unconditional output and the exact eps*_c as
 * the regression target (the conditional mean of eps given x_t), lands on
 * eps*_u + (eps*_c - eps*_u) / beta: CFG at w = 1 / beta. */
static void test_optimum_is_cfg(void **state) {
  (void)state;
  enum { ROWS = 64 };
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_rng rng = sparq_rng_make(4, 0);
  float xt[ROWS * 2], eps_c[ROWS * 2], eps_u[ROWS * 2], o[ROWS * 2], grad[ROWS * 2], beta[ROWS];
  int32_t cls[ROWS], null_cls[ROWS];
  double alpha[ROWS], sigma[ROWS];
  const float betas[] = {1.0f, 0.8f, 0.5f, 0.33f, 0.25f};
  for (int i = 0; i < ROWS; i++) {
    cls[i] = i % SPARQ_TOY2D_CLASSES, null_cls[i] = SPARQ_TOY2D_CLASSES;
    beta[i] = betas[i % 5];
    const double t = 20.0 + 950.0 * sparq_rng_uniform(&rng);
    sparq_diffusion_alpha_sigma(&d, t, &alpha[i], &sigma[i]);
    float x0[2];
    sparq_toy2d_sample(&toy, &cls[i], 1, &rng, x0);
    float e[2];
    sparq_rng_fill_normal(&rng, e, 2, 0.0f, 1.0f);
    for (int j = 0; j < 2; j++) xt[2 * i + j] = (float)(alpha[i] * x0[j] + sigma[i] * e[j]);
    sparq_toy2d_exact_eps(&toy, xt + 2 * i, &cls[i], 1, alpha[i], sigma[i], eps_c + 2 * i);
    sparq_toy2d_exact_eps(&toy, xt + 2 * i, &null_cls[i], 1, alpha[i], sigma[i], eps_u + 2 * i);
  }
  /* gradient descent from 0, each row's step size 1 / (2 curvature): the
   * error halves per step */
  memset(o, 0, sizeof o);
  for (int it = 0; it < 80; it++) {
    sparq_gft_loss(ROWS, 2, beta, o, eps_u, eps_c, NULL, 1.0f, grad);
    for (int i = 0; i < ROWS; i++) {
      const float step = 0.5f * (float)(ROWS * 2) / (2.0f * beta[i] * beta[i]);
      for (int j = 0; j < 2; j++) o[2 * i + j] -= step * grad[2 * i + j];
    }
  }
  for (int i = 0; i < ROWS; i++)
    for (int j = 0; j < 2; j++) {
      const double w = 1.0 / beta[i], want = eps_u[2 * i + j] + w * ((double)eps_c[2 * i + j] - eps_u[2 * i + j]);
      if (fabs(o[2 * i + j] - want) > 1e-6 * fmax(1.0, fabs(want)))
        fail_msg("row %d beta %g: optimum %.9g, CFG at w = 1/beta %.9g", i, (double)beta[i], (double)o[2 * i + j],
                 want);
    }
  sparq_diffusion_free(&d);
}

/* ----------------------------------------- 6, 7, 3: the DiT's GFT task */

enum { IMGS = 40, BATCH = 24 };

typedef struct gft_fixture {
  sparq_dit *dit;
  sparq_diffusion diff;
  sparq_dit_task task;
  sparq_trainable tr;
  float images[IMGS * 64];
  int32_t labels[IMGS];
} gft_fixture;

/* A tiny GFT DiT (8 x 8 x 1, 4 classes) with every trainable weight random,
 * so no output is the adaLN-Zero constant 0. */
static void fixture_init(gft_fixture *f, float p_uncond) {
  sparq_dit_config c = sparq_dit_config_default();
  c.input_size = 8, c.patch_size = 2, c.in_channels = 1, c.hidden_size = 16, c.depth = 1, c.num_heads = 2;
  c.num_classes = 4, c.extra_dim = 16;
  assert_int_equal(sparq_dit_create(&c, 5, &f->dit), SPARQ_OK);
  sparq_param_list *pl = sparq_dit_params(f->dit);
  sparq_rng rng = sparq_rng_make(6, 0);
  for (size_t i = 0; i < pl->count; i++)
    if (!pl->items[i].frozen) sparq_rng_fill_normal(&rng, pl->items[i].data, pl->items[i].numel, 0.0f, 0.2f);
  sparq_rng_fill_normal(&rng, f->images, IMGS * 64, 0.0f, 0.5f);
  for (int i = 0; i < IMGS; i++) f->labels[i] = i % 4;
  assert_int_equal(sparq_diffusion_init(&f->diff, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  assert_int_equal(sparq_dit_task_init(&f->task, f->dit, &f->diff, f->images, f->labels, IMGS, f->images, f->labels,
                                       IMGS, BATCH, p_uncond, 1, 9),
                   SPARQ_OK);
  assert_int_equal(sparq_dit_task_set_gft(&f->task), SPARQ_OK);
  sparq_dit_task_trainable(&f->task, &f->tr);
}

static void fixture_free(gft_fixture *f) {
  sparq_dit_task_free(&f->task);
  sparq_diffusion_free(&f->diff);
  sparq_dit_free(f->dit);
}

static float micro(gft_fixture *f, uint64_t seed) {
  sparq_rng rng = sparq_rng_make(seed, 1);
  float loss = 0.0f;
  sparq_params_zero_grad(sparq_dit_params(f->dit));
  assert_int_equal(f->tr.train_micro(f->tr.self, &rng, 1.0f, &loss), SPARQ_OK);
  return loss;
}

/* Dropped rows feed beta = 1 whatever their draw; kept rows feed the draw. */
static void test_dropped_labels_feed_beta_one(void **state) {
  (void)state;
  int32_t y[64];
  float beta[64], beta_in[64];
  for (int i = 0; i < 64; i++) y[i] = i % 3 == 0 ? 4 : i % 4;
  sparq_rng rng = sparq_rng_make(7, 0);
  sparq_gft_draw_beta(&rng, 64, y, 4, beta, beta_in);
  for (int i = 0; i < 64; i++) {
    assert_true(beta[i] >= 0.0f && beta[i] < 1.0f);
    assert_true(beta_in[i] == (y[i] == 4 ? 1.0f : beta[i]));
  }
  /* the same through the DiT's training step, with half the labels dropped */
  gft_fixture f;
  fixture_init(&f, 0.5f);
  micro(&f, 3);
  int dropped = 0;
  for (int i = 0; i < BATCH; i++) {
    if (f.task.y[i] == 4) {
      dropped++;
      assert_true(f.task.beta_in[i] == 1.0f);
      assert_true(f.task.beta[i] < 1.0f);
      /* what the network saw: a dropped row's training output is the
       * unconditional pass's (null label, beta 1) */
      for (int j = 0; j < 64; j++) {
        const float a = f.task.out[i * 64 + j], b = f.task.out_u[i * 64 + j];
        if (fabsf(a - b) > 1e-5f * (fabsf(b) + 1e-3f)) fail_msg("dropped row %d: out %.9g, out_u %.9g", i, a, b);
      }
    } else {
      assert_true(f.task.beta_in[i] == f.task.beta[i]);
    }
  }
  assert_true(dropped > 0 && dropped < BATCH);
  fixture_free(&f);
}

/* out_u is the network with the null label and beta 1 in inference mode:
 * deterministic, equal to a direct inference call, and the same whatever
 * the step's label dropout did to the conditional rows. */
static void test_unconditional_pass_is_deterministic(void **state) {
  (void)state;
  gft_fixture f;
  fixture_init(&f, 0.5f);
  const size_t fl = (size_t)BATCH * 64;
  float *u1 = malloc(fl * sizeof(float)), *direct = malloc(fl * sizeof(float));
  float *grad1 = malloc(sparq_dit_params(f.dit)->numel * sizeof(float));
  int32_t null_y[BATCH];
  float ones[BATCH];
  for (int i = 0; i < BATCH; i++) null_y[i] = 4, ones[i] = 1.0f;
  const float l1 = micro(&f, 11);
  memcpy(u1, f.task.out_u, fl * sizeof(float));
  memcpy(grad1, sparq_dit_params(f.dit)->grad, sparq_dit_params(f.dit)->numel * sizeof(float));
  assert_int_equal(
      sparq_dit_infer(f.dit, f.task.net_x, f.task.net_t, null_y, ones, BATCH, SPARQ_ATTN_FLASH_F32, direct),
      SPARQ_OK);
  assert_memory_equal(u1, direct, fl * sizeof(float));
  const float l2 = micro(&f, 11);
  assert_true(l1 == l2);
  assert_memory_equal(u1, f.task.out_u, fl * sizeof(float));
  assert_memory_equal(grad1, sparq_dit_params(f.dit)->grad, sparq_dit_params(f.dit)->numel * sizeof(float));
  free(u1), free(direct), free(grad1);
  fixture_free(&f);
}

/* Without label dropout no training row carries the null label, so the null
 * row of the class table reaches the loss only through the unconditional
 * pass: its gradient must be exactly zero (sg), although moving it does
 * move out_u and the loss. */
static void test_no_gradient_through_unconditional_pass(void **state) {
  (void)state;
  gft_fixture f;
  fixture_init(&f, 0.0f);
  sparq_param *table = sparq_params_find(sparq_dit_params(f.dit), "y_embedder.embedding_table.weight");
  assert_non_null(table);
  const int64_t C = table->shape[1];
  float *null_row = table->data + 4 * C, *null_grad = table->grad + 4 * C;
  const float loss = micro(&f, 13);
  for (int64_t k = 0; k < C; k++) assert_true(null_grad[k] == 0.0f);
  double other = 0.0; /* the kept classes' rows do get gradient */
  for (int64_t k = 0; k < 4 * C; k++) other += fabs(table->grad[k]);
  assert_true(other > 0.0);
  for (int64_t k = 0; k < C; k++) null_row[k] += 0.5f;
  const float moved = micro(&f, 13);
  assert_true(moved != loss);
  fixture_free(&f);
}

/* ------------------------------------------------------------- 8: NFE */

typedef struct counter {
  int64_t calls, rows;
  int64_t max_rows;
  int bad_extra; /* calls whose extra did not match the protocol */
  const float *want_beta;
} counter;

static sparq_status count_eval(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                               int64_t n, float *out) {
  counter *c = self;
  (void)t;
  c->calls++, c->rows += n;
  if (n > c->max_rows) c->max_rows = n;
  if (c->want_beta) { /* GFT: every row conditional, fed its beta */
    if (!extra) c->bad_extra++;
    for (int64_t i = 0; i < n && extra; i++)
      if (extra[i] != c->want_beta[i % 5] || y[i] == 9) c->bad_extra++;
  }
  for (int64_t i = 0; i < n * 3; i++) out[i] = 0.1f * x[i];
  return SPARQ_OK;
}

static void test_nfe_counts(void **state) {
  (void)state;
  enum { SAMPLES = 5, STEPS = 7 };
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  const sparq_sampler_kind kinds[] = {SPARQ_SAMPLER_DDIM, SPARQ_SAMPLER_EULER, SPARQ_SAMPLER_HEUN,
                                      SPARQ_SAMPLER_DPMPP2M};
  const float beta[SAMPLES] = {1.0f, 0.8f, 0.5f, 0.4f, 0.25f};
  int32_t y[SAMPLES] = {0, 1, 2, 3, 4};
  for (size_t k = 0; k < 4; k++)
    for (int gft = 0; gft <= 1; gft++) {
      counter c = {0};
      c.want_beta = gft ? beta : NULL;
      sparq_denoiser net = {.self = &c, .eval = count_eval, .dim = 3, .null_class = 9};
      sparq_sample_config sc = sparq_sample_config_default();
      sc.sampler = kinds[k], sc.steps = STEPS;
      sc.cfg_scale = gft ? 1.0f : 2.0f;
      sc.extra = gft ? beta : NULL;
      float x[SAMPLES * 3];
      sparq_rng rng = sparq_rng_make(1, 2);
      sparq_rng_fill_normal(&rng, x, SAMPLES * 3, 0.0f, 1.0f);
      sparq_sample_stats st;
      assert_int_equal(sparq_diffusion_sample(&d, &net, &sc, y, SAMPLES, x, &st), SPARQ_OK);
      const int64_t evals = kinds[k] == SPARQ_SAMPLER_HEUN ? 2 * STEPS - 1 : STEPS;
      /* GFT: one call of n rows per evaluation; CFG: one call of 2n rows */
      assert_int_equal(c.calls, evals);
      assert_int_equal(st.calls, evals);
      assert_int_equal(c.rows, (gft ? 1 : 2) * SAMPLES * evals);
      assert_int_equal(c.max_rows, (gft ? 1 : 2) * SAMPLES);
      assert_int_equal(st.nfe, (gft ? 1 : 2) * evals);
      assert_int_equal(c.bad_extra, 0);
    }
  sparq_diffusion_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mapping),
      cmocka_unit_test(test_beta_one_is_conditional_mse),
      cmocka_unit_test(test_gradient_is_stop_gradient),
      cmocka_unit_test(test_optimum_is_cfg),
      cmocka_unit_test(test_dropped_labels_feed_beta_one),
      cmocka_unit_test(test_unconditional_pass_is_deterministic),
      cmocka_unit_test(test_no_gradient_through_unconditional_pass),
      cmocka_unit_test(test_nfe_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
