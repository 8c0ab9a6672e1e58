/* The MoE layer (moe.h): spec remoe.md section 9 invariants 1-7 and 9 at
 * the layer level (the GPT-level ones are in test_moe_gpt.c). Invariant 8
 * names a PyTorch oracle; PyTorch is not available to the tests, so the
 * forward and backward are checked against the layer's definition in double
 * precision written here, by central differences. */
#include <float.h>
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
#include "sparq/moe.h"

typedef struct fixture {
  sparq_moe_dims d;
  int64_t N;
  bool bias;
  float *router, *fc_w, *fc_b, *proj_w, *proj_b, *x;
} fixture;

static void fill(sparq_rng *rng, float *p, size_t n, float std) { sparq_rng_fill_normal(rng, p, n, 0.0f, std); }

static fixture make(sparq_moe_router r, int64_t N, int64_t C, int64_t H, int64_t E, int64_t k, bool bias,
                    uint64_t seed) {
  fixture f = {.d = {.router = r, .C = C, .H = H, .E = E, .k = k}, .N = N, .bias = bias};
  sparq_rng rng = sparq_rng_make(seed, 1);
  f.router = calloc((size_t)(E * C), sizeof(float));
  f.fc_w = calloc((size_t)(E * H * C), sizeof(float));
  f.fc_b = calloc((size_t)(E * H), sizeof(float));
  f.proj_w = calloc((size_t)(E * C * H), sizeof(float));
  f.proj_b = calloc((size_t)(E * C), sizeof(float));
  f.x = calloc((size_t)(N * C), sizeof(float));
  fill(&rng, f.router, (size_t)(E * C), 0.3f);
  fill(&rng, f.fc_w, (size_t)(E * H * C), 0.3f);
  fill(&rng, f.proj_w, (size_t)(E * C * H), 0.3f);
  if (bias) {
    fill(&rng, f.fc_b, (size_t)(E * H), 0.1f);
    fill(&rng, f.proj_b, (size_t)(E * C), 0.1f);
  }
  fill(&rng, f.x, (size_t)(N * C), 1.0f);
  return f;
}

static sparq_moe_weights weights(const fixture *f) {
  return (sparq_moe_weights){f->router, f->fc_w, f->bias ? f->fc_b : NULL, f->proj_w, f->bias ? f->proj_b : NULL};
}

static void unmake(fixture *f) {
  free(f->router), free(f->fc_w), free(f->fc_b), free(f->proj_w), free(f->proj_b), free(f->x);
}

static double rel_l2(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

/* Invariant 1 (and 6): the dispatched output equals the dense sum. */
static void check_dispatch(sparq_moe_router r, int64_t N, int64_t C, int64_t H, int64_t E, int64_t k, bool bias) {
  fixture f = make(r, N, C, H, E, k, bias, 7 + (uint64_t)N);
  sparq_moe_weights w = weights(&f);
  float *y = malloc((size_t)(N * C) * sizeof(float)), *yr = malloc((size_t)(N * C) * sizeof(float));
  float *gates = malloc((size_t)(N * E) * sizeof(float));
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  assert_int_equal(sparq_moe_forward(st, &f.d, &w, f.x, y, N), SPARQ_OK);
  assert_int_equal(sparq_moe_forward_ref(&f.d, &w, f.x, yr, gates, N), SPARQ_OK);
  double err = rel_l2(y, yr, (size_t)(N * C));
  assert_true(err < 1e-6);
  sparq_moe_stats s;
  sparq_moe_state_stats(st, &s);
  int64_t active = 0;
  for (int64_t t = 0; t < N; t++) {
    int n = 0;
    for (int64_t e = 0; e < E; e++) n += gates[t * E + e] > 0.0f;
    assert_int_equal(s.active[t], n);
    active += n;
    if (r == SPARQ_MOE_TOPK) assert_int_equal(n, k);
  }
  assert_int_equal(s.nnz, active);
  /* invariant 6: S = 1 - mean_t(#active_t) / E, exactly as the stats report it */
  assert_true(s.sparsity == 1.0 - (double)active / ((double)N * (double)E));
  double lb, plain, sp;
  int64_t counts[SPARQ_MOE_MAX_EXPERTS];
  sparq_moe_reg(gates, N, E, k, counts, &lb, &plain, &sp);
  for (int64_t e = 0; e < E; e++) assert_int_equal(counts[e], s.counts[e]);
  assert_true(fabs(lb - s.reg_lb) <= 1e-5 * fabs(lb) + 1e-9);
  assert_true(fabs(plain - s.reg_plain) <= 1e-5 * fabs(plain) + 1e-9);
  sparq_moe_state_free(st);
  free(y), free(yr), free(gates);
  unmake(&f);
}

static void test_dispatch_matches_dense(void **state) {
  (void)state;
  check_dispatch(SPARQ_MOE_RELU, 37, 24, 40, 5, 2, true);
  check_dispatch(SPARQ_MOE_RELU, 1, 7, 9, 3, 1, false);
  check_dispatch(SPARQ_MOE_RELU, 130, 33, 20, 8, 1, true);
  check_dispatch(SPARQ_MOE_TOPK, 37, 24, 40, 5, 2, true);
  check_dispatch(SPARQ_MOE_TOPK, 50, 16, 64, 8, 1, false);
  check_dispatch(SPARQ_MOE_TOPK, 3, 5, 3, 4, 4, true);
}

/* The spec's hand fixture, and invariant 3 (balanced counts). */
static void test_hand_fixture(void **state) {
  (void)state;
  const float R[8] = {1, 0, 2, 0, 0, 3, 1, 1};
  int64_t counts[SPARQ_MOE_MAX_EXPERTS];
  double lb, plain, sp;
  sparq_moe_reg(R, 4, 2, 1, counts, &lb, &plain, &sp);
  assert_int_equal(counts[0], 3);
  assert_int_equal(counts[1], 2);
  assert_true(fabs(lb - 2.5) < 1e-12);
  assert_true(fabs(plain - 2.0) < 1e-12);
  assert_true(fabs(sp - 0.375) < 1e-12);
  /* every count equals kT/E: lb equals plain */
  const float Rb[8] = {1, 0, 2, 0, 0, 3, 0, 1.5f};
  sparq_moe_reg(Rb, 4, 2, 1, counts, &lb, &plain, &sp);
  assert_int_equal(counts[0], 2);
  assert_int_equal(counts[1], 2);
  assert_true(fabs(lb - plain) < 1e-12);
  const float Rc[12] = {1, 2, 0, 0, 1, 3, 4, 0, 5}; /* T 3, E 3, k 2: counts 2 each */
  sparq_moe_reg(Rc, 3, 3, 2, counts, &lb, &plain, &sp);
  assert_true(counts[0] == 2 && counts[1] == 2 && counts[2] == 2);
  assert_true(fabs(lb - plain) < 1e-12);
}

/* Invariant 2: a row whose logits are all <= 0 gets exactly 0 and adds
 * exactly 0 to the router's gradient, whatever the regulariser. */
static void test_no_active_expert(void **state) {
  (void)state;
  const int64_t N = 3, C = 8, H = 12, E = 4;
  fixture f = make(SPARQ_MOE_RELU, N, C, H, E, 1, true, 3);
  /* row 1 is -(every router row)'s direction: all its logits negative */
  for (int64_t c = 0; c < C; c++) f.x[1 * C + c] = 0.0f;
  for (int64_t e = 0; e < E; e++)
    for (int64_t c = 0; c < C; c++) f.x[1 * C + c] -= f.router[e * C + c];
  sparq_moe_weights w = weights(&f);
  float y[3 * 8], dy[3 * 8], dx[3 * 8];
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  /* keep only row 1 so the router gradient comes from it alone */
  fixture one = f;
  one.x = f.x + C;
  sparq_moe_weights w1 = weights(&one);
  assert_int_equal(sparq_moe_forward(st, &f.d, &w1, one.x, y, 1), SPARQ_OK);
  sparq_moe_stats s;
  sparq_moe_state_stats(st, &s);
  if (s.active[0] != 0) {
    /* the sum of the router rows was not opposed to each row: make it so directly */
    for (int64_t e = 0; e < E; e++)
      for (int64_t c = 0; c < C; c++) f.router[e * C + c] = -fabsf(f.router[e * C + c]) * (one.x[c] >= 0 ? 1.0f : -1.0f);
    assert_int_equal(sparq_moe_forward(st, &f.d, &w1, one.x, y, 1), SPARQ_OK);
    sparq_moe_state_stats(st, &s);
  }
  assert_int_equal(s.active[0], 0);
  for (int64_t c = 0; c < C; c++) assert_true(y[c] == 0.0f && !signbit(y[c]));
  float *gr = calloc((size_t)(E * C), sizeof(float)), *gfc = calloc((size_t)(E * H * C), sizeof(float));
  for (int64_t c = 0; c < C; c++) dy[c] = 1.0f + (float)c;
  sparq_moe_grads g = {.router = gr, .fc_w = gfc};
  assert_int_equal(sparq_moe_backward(st, &f.d, &w1, &g, one.x, dy, dx, SPARQ_MOE_L1_LB, 3.0f, 0.0f), SPARQ_OK);
  for (int64_t i = 0; i < E * C; i++) assert_true(gr[i] == 0.0f);
  for (int64_t i = 0; i < E * H * C; i++) assert_true(gfc[i] == 0.0f);
  for (int64_t c = 0; c < C; c++) assert_true(dx[c] == 0.0f);
  (void)w;
  free(gr), free(gfc);
  sparq_moe_state_free(st);
  unmake(&f);
}

/* Invariant 4: with dy = 0, dWr = sum_t dz[t] x[t]^T with dz[t,e] = f_e/(L T)
 * for z > 0 and 0 otherwise (reg_scale = 1/L), for both L1 kinds. */
static void test_reg_gradient(void **state) {
  (void)state;
  const int64_t N = 29, C = 10, H = 6, E = 5, k = 2, L = 3;
  fixture f = make(SPARQ_MOE_RELU, N, C, H, E, k, true, 11);
  sparq_moe_weights w = weights(&f);
  float *y = calloc((size_t)(N * C), sizeof(float)), *dy = calloc((size_t)(N * C), sizeof(float));
  float *dx = calloc((size_t)(N * C), sizeof(float)), *gr = calloc((size_t)(E * C), sizeof(float));
  float *gates = calloc((size_t)(N * E), sizeof(float));
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  for (int kind = 0; kind < 2; kind++) {
    assert_int_equal(sparq_moe_forward(st, &f.d, &w, f.x, y, N), SPARQ_OK);
    sparq_moe_forward_ref(&f.d, &w, f.x, y, gates, N);
    sparq_moe_stats s;
    sparq_moe_state_stats(st, &s);
    memset(gr, 0, (size_t)(E * C) * sizeof(float));
    sparq_moe_grads g = {.router = gr};
    assert_int_equal(sparq_moe_backward(st, &f.d, &w, &g, f.x, dy, dx, (sparq_moe_l1)kind, 1.0f / (float)L, 0.0f),
                     SPARQ_OK);
    for (int64_t e = 0; e < E; e++) {
      const double fe = kind == SPARQ_MOE_L1_PLAIN ? 1.0 : (double)E / ((double)k * N) * (double)s.counts[e];
      for (int64_t c = 0; c < C; c++) {
        double want = 0.0;
        for (int64_t t = 0; t < N; t++)
          if (gates[t * E + e] > 0.0f) want += fe / ((double)L * N) * f.x[t * C + c];
        assert_true(fabs(gr[e * C + c] - want) <= 1e-5 * (fabs(want) + 1e-3));
      }
    }
    /* and by central differences of reg (counts held fixed) in double */
    for (int trial = 0; trial < 6; trial++) {
      const int64_t e = trial % E, c = (trial * 3) % C;
      double val[2];
      for (int sgn = 0; sgn < 2; sgn++) {
        const double h = sgn ? -1e-6 : 1e-6; /* piecewise linear: tiny steps cross no kink */
        double reg = 0.0;
        for (int64_t t = 0; t < N; t++)
          for (int64_t j = 0; j < E; j++) {
            double z = 0.0;
            for (int64_t cc = 0; cc < C; cc++)
              z += ((double)f.router[j * C + cc] + (j == e && cc == c ? h : 0.0)) * f.x[t * C + cc];
            const double fj = kind == SPARQ_MOE_L1_PLAIN ? 1.0 : (double)E / ((double)k * N) * (double)s.counts[j];
            reg += fj * (z > 0 ? z : 0);
          }
        val[sgn] = reg / ((double)L * N);
      }
      const double fd = (val[0] - val[1]) / 2e-6;
      assert_true(fabs(gr[e * C + c] - fd) <= 1e-4 * (fabs(fd) + 1e-2));
    }
  }
  sparq_moe_state_free(st);
  free(y), free(dy), free(dx), free(gr), free(gates);
  unmake(&f);
}

/* Invariant 5: lambda = lambda0 alpha^(#below - #at or above), never 0 or
 * non-finite. */
static void test_lambda_controller(void **state) {
  (void)state;
  sparq_moe_lambda c;
  assert_int_equal(sparq_moe_lambda_init(&c, 1e-8f, 1.2f, 8, 1), SPARQ_OK);
  assert_true(fabs(c.target - 0.875) < 1e-15);
  sparq_rng rng = sparq_rng_make(5, 0);
  int64_t net = 0;
  for (int i = 0; i < 300; i++) {
    double S = sparq_rng_uniform(&rng);
    if (i % 17 == 0) S = 0.875; /* at target: divide */
    net += S < 0.875 ? 1 : -1;
    float l = sparq_moe_lambda_update(&c, S);
    const double want = 1e-8 * pow(1.2, (double)net);
    assert_true(fabs(l - want) <= 1e-4 * want);
  }
  /* driven far in either direction it stays positive and finite */
  for (int i = 0; i < 5000; i++) assert_true(isfinite(sparq_moe_lambda_update(&c, 0.0)));
  assert_true(c.lambda == FLT_MAX);
  for (int i = 0; i < 10000; i++) assert_true(sparq_moe_lambda_update(&c, 1.0) > 0.0f);
  assert_true(c.lambda == FLT_MIN);
  assert_true(sparq_moe_lambda_update(&c, NAN) > 0.0f);
  assert_int_equal(sparq_moe_lambda_init(&c, 0.0f, 1.2f, 8, 1), SPARQ_ERR_ARG);
  assert_int_equal(sparq_moe_lambda_init(&c, 1e-8f, 1.0f, 8, 1), SPARQ_ERR_ARG);
  assert_int_equal(sparq_moe_lambda_init(&c, 1e-8f, 1.2f, 8, 9), SPARQ_ERR_ARG);
}

/* Invariant 7: k gates per row, softmax values not renormalised, and aux 1
 * for uniform probabilities (then it is 1 whatever the counts). */
static void test_topk_router(void **state) {
  (void)state;
  const int64_t N = 21, C = 12, H = 8, E = 6, k = 2;
  fixture f = make(SPARQ_MOE_TOPK, N, C, H, E, k, false, 4);
  sparq_moe_weights w = weights(&f);
  float *y = calloc((size_t)(N * C), sizeof(float)), *gates = calloc((size_t)(N * E), sizeof(float));
  sparq_moe_forward_ref(&f.d, &w, f.x, y, gates, N);
  for (int64_t t = 0; t < N; t++) {
    double z[6], m = -INFINITY, sum = 0, gsum = 0;
    int n = 0;
    for (int64_t e = 0; e < E; e++) {
      z[e] = 0;
      for (int64_t c = 0; c < C; c++) z[e] += (double)f.router[e * C + c] * f.x[t * C + c];
      m = fmax(m, z[e]);
    }
    for (int64_t e = 0; e < E; e++) sum += exp(z[e] - m);
    for (int64_t e = 0; e < E; e++) {
      if (gates[t * E + e] == 0.0f) continue;
      n++;
      gsum += gates[t * E + e];
      assert_true(fabs(gates[t * E + e] - exp(z[e] - m) / sum) < 1e-6);
    }
    assert_int_equal(n, k);
    assert_true(gsum < 1.0 - 1e-6); /* not renormalised */
  }
  memset(f.router, 0, (size_t)(E * C) * sizeof(float));
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  assert_int_equal(sparq_moe_forward(st, &f.d, &w, f.x, y, N), SPARQ_OK);
  sparq_moe_stats s;
  sparq_moe_state_stats(st, &s);
  assert_true(fabs(s.aux - 1.0) < 1e-6);
  for (int64_t t = 0; t < N; t++) assert_int_equal(s.active[t], k);
  sparq_moe_state_free(st);
  free(y), free(gates);
  unmake(&f);
}

/* ------------------------------ the layer in double, for central differences */

static const float *pert_arr;
static int64_t pert_i;
static double pert_h;
static double V(const float *a, int64_t i) { return (double)a[i] + (a == pert_arr && i == pert_i ? pert_h : 0.0); }

/* J = <dy, y> + reg_scale reg (relu; l1 kind) + aux_scale aux (topk), the
 * counts held at `counts`. */
static double objective_f64(const fixture *f, const float *dy, const int64_t *counts, sparq_moe_l1 l1,
                            double reg_scale, double aux_scale) {
  const sparq_moe_dims *d = &f->d;
  const int64_t N = f->N, C = d->C, H = d->H, E = d->E, k = d->k;
  double J = 0.0, reg = 0.0, aux = 0.0;
  double *h = malloc((size_t)H * sizeof(double));
  for (int64_t t = 0; t < N; t++) {
    double z[SPARQ_MOE_MAX_EXPERTS], R[SPARQ_MOE_MAX_EXPERTS], p[SPARQ_MOE_MAX_EXPERTS];
    for (int64_t e = 0; e < E; e++) {
      z[e] = 0;
      for (int64_t c = 0; c < C; c++) z[e] += V(f->router, e * C + c) * V(f->x, t * C + c);
    }
    if (d->router == SPARQ_MOE_RELU) {
      for (int64_t e = 0; e < E; e++) R[e] = z[e] > 0 ? z[e] : 0;
    } else {
      double m = z[0], s = 0;
      for (int64_t e = 1; e < E; e++) m = fmax(m, z[e]);
      for (int64_t e = 0; e < E; e++) s += (p[e] = exp(z[e] - m));
      for (int64_t e = 0; e < E; e++) p[e] /= s;
      unsigned char chosen[SPARQ_MOE_MAX_EXPERTS] = {0};
      for (int64_t j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t e = 0; e < E; e++)
          if (!chosen[e] && (best < 0 || p[e] > p[best])) best = e;
        if (best < 0) break;
    chosen[best] = 1;
      }
      for (int64_t e = 0; e < E; e++) {
        R[e] = chosen[e] ? p[e] : 0;
        aux += p[e] * (double)counts[e];
      }
    }
    for (int64_t e = 0; e < E; e++) {
      if (R[e] == 0) continue;
      reg += (l1 == SPARQ_MOE_L1_PLAIN ? 1.0 : (double)E / ((double)k * N) * (double)counts[e]) * R[e];
      for (int64_t j = 0; j < H; j++) {
        double a = f->bias ? V(f->fc_b, e * H + j) : 0.0;
        for (int64_t c = 0; c < C; c++) a += V(f->fc_w, (e * H + j) * C + c) * V(f->x, t * C + c);
        h[j] = 0.5 * a * (1.0 + erf(a / sqrt(2.0)));
      }
      for (int64_t c = 0; c < C; c++) {
        double a = f->bias ? V(f->proj_b, e * C + c) : 0.0;
        for (int64_t j = 0; j < H; j++) a += V(f->proj_w, (e * C + c) * H + j) * h[j];
        J += dy[t * C + c] * R[e] * a;
      }
    }
  }
  free(h);
  if (d->router == SPARQ_MOE_RELU) J += reg_scale * reg / (double)N;
  else J += aux_scale * aux * (double)E / ((double)k * (double)N * (double)N);
  return J;
}

static double rms(const float *a, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
  return sqrt(s / (double)n);
}

static double check_grad(const fixture *f, const float *dy, const int64_t *counts, sparq_moe_l1 l1, double rs,
                         double as, const float *arr, const float *grad, int64_t n, sparq_rng *rng) {
  const double scale = rms(grad, (size_t)n);
  double worst = 0.0;
  for (int trial = 0; trial < 8; trial++) {
    const int64_t i = (int64_t)(sparq_rng_uniform(rng) * (float)n) % n;
    double v[2];
    for (int s = 0; s < 2; s++) {
      pert_arr = arr, pert_i = i, pert_h = s ? -1e-3 : 1e-3;
      v[s] = objective_f64(f, dy, counts, l1, rs, as);
    }
    pert_arr = NULL;
    const double fd = (v[0] - v[1]) / 2e-3;
    const double err = fabs(grad[i] - fd) / (fabs(fd) + scale + 1e-12);
    worst = err > worst ? err : worst;
  }
  return worst;
}

/* Invariant 8's check: forward and every gradient of one layer with its
 * regulariser (relu) or aux loss (topk) against the double definition. */
static void check_backward(sparq_moe_router r, sparq_moe_l1 l1, bool bias, uint64_t seed) {
  const int64_t N = 19, C = 10, H = 14, E = 5, k = 2;
  fixture f = make(r, N, C, H, E, k, bias, seed);
  sparq_moe_weights w = weights(&f);
  float *y = calloc((size_t)(N * C), sizeof(float)), *dy = calloc((size_t)(N * C), sizeof(float));
  float *dx = calloc((size_t)(N * C), sizeof(float));
  float *g_r = calloc((size_t)(E * C), sizeof(float)), *g_fw = calloc((size_t)(E * H * C), sizeof(float));
  float *g_fb = calloc((size_t)(E * H), sizeof(float)), *g_pw = calloc((size_t)(E * C * H), sizeof(float));
  float *g_pb = calloc((size_t)(E * C), sizeof(float));
  sparq_rng rng = sparq_rng_make(seed, 9);
  fill(&rng, dy, (size_t)(N * C), 1.0f);
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  assert_int_equal(sparq_moe_forward(st, &f.d, &w, f.x, y, N), SPARQ_OK);
  sparq_moe_stats s;
  sparq_moe_state_stats(st, &s);
  const double rs = 0.7, as = 0.3;
  sparq_moe_grads g = {g_r, g_fw, bias ? g_fb : NULL, g_pw, bias ? g_pb : NULL};
  assert_int_equal(sparq_moe_backward(st, &f.d, &w, &g, f.x, dy, dx, l1, (float)rs, (float)as), SPARQ_OK);
  /* the forward: J without the losses equals <dy, y> */
  double J = 0;
  for (int64_t i = 0; i < N * C; i++) J += (double)dy[i] * y[i];
  const double Jref = objective_f64(&f, dy, s.counts, l1, 0.0, 0.0);
  assert_true(fabs(J - Jref) <= 1e-5 * (fabs(Jref) + 1));
  double worst = 0;
  const struct {
    const float *arr, *grad;
    int64_t n;
  } t[] = {{f.router, g_r, E * C}, {f.fc_w, g_fw, E * H * C}, {f.proj_w, g_pw, E * C * H}, {f.x, dx, N * C},
           {f.fc_b, g_fb, E * H},   {f.proj_b, g_pb, E * C}};
  for (int i = 0; i < (bias ? 6 : 4); i++) {
    double e = check_grad(&f, dy, s.counts, l1, rs, as, t[i].arr, t[i].grad, t[i].n, &rng);
    worst = e > worst ? e : worst;
  }
  printf("# %s l1 %d bias %d: worst gradient error %.2e (relative to |fd| + rms)\n", sparq_moe_router_name(r),
         (int)l1, (int)bias, worst);
  assert_true(worst < 1e-4);
  sparq_moe_state_free(st);
  free(y), free(dy), free(dx), free(g_r), free(g_fw), free(g_fb), free(g_pw), free(g_pb);
  unmake(&f);
}

static void test_backward_double_reference(void **state) {
  (void)state;
  check_backward(SPARQ_MOE_RELU, SPARQ_MOE_L1_LB, true, 21);
  check_backward(SPARQ_MOE_RELU, SPARQ_MOE_L1_PLAIN, false, 22);
  check_backward(SPARQ_MOE_TOPK, SPARQ_MOE_L1_LB, true, 23);
  check_backward(SPARQ_MOE_TOPK, SPARQ_MOE_L1_LB, false, 24);
}

/* 1 and 2 threads give the same bits (large enough for the parallel loops). */
static void run_at(int threads, const fixture *f, float *y, float *dx, float *gr, float *gw) {
  sparq_set_threads(threads);
  sparq_moe_weights w = weights(f);
  const int64_t N = f->N, C = f->d.C;
  float *dy = malloc((size_t)(N * C) * sizeof(float));
  for (int64_t i = 0; i < N * C; i++) dy[i] = (float)((i * 7919) % 23) / 23.0f - 0.5f;
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  assert_int_equal(sparq_moe_forward(st, &f->d, &w, f->x, y, N), SPARQ_OK);
  sparq_moe_grads g = {.router = gr, .fc_w = gw};
  assert_int_equal(sparq_moe_backward(st, &f->d, &w, &g, f->x, dy, dx, SPARQ_MOE_L1_LB, 0.5f, 0.1f), SPARQ_OK);
  sparq_moe_state_free(st);
  free(dy);
}

static void test_thread_count_independent(void **state) {
  (void)state;
  for (int r = 1; r <= 2; r++) {
    const int64_t N = 600, C = 64, H = 96, E = 8, k = 1;
    fixture f = make((sparq_moe_router)r, N, C, H, E, k, true, 31);
    const size_t ny = (size_t)(N * C), nr = (size_t)(E * C), nw = (size_t)(E * H * C);
    float *y[2], *dx[2], *gr[2], *gw[2];
    for (int i = 0; i < 2; i++) {
      y[i] = calloc(ny, sizeof(float)), dx[i] = calloc(ny, sizeof(float));
      gr[i] = calloc(nr, sizeof(float)), gw[i] = calloc(nw, sizeof(float));
      run_at(i + 1, &f, y[i], dx[i], gr[i], gw[i]);
    }
    assert_memory_equal(y[0], y[1], ny * sizeof(float));
    assert_memory_equal(dx[0], dx[1], ny * sizeof(float));
    assert_memory_equal(gr[0], gr[1], nr * sizeof(float));
    assert_memory_equal(gw[0], gw[1], nw * sizeof(float));
    for (int i = 0; i < 2; i++) free(y[i]), free(dx[i]), free(gr[i]), free(gw[i]);
    unmake(&f);
  }
  sparq_set_threads(2);
}

static void test_bad_arguments(void **state) {
  (void)state;
  sparq_moe_dims d = {.router = SPARQ_MOE_RELU, .C = 4, .H = 4, .E = 4, .k = 5};
  assert_int_equal(sparq_moe_dims_check(&d), SPARQ_ERR_ARG);
  d.k = 1, d.E = 0;
  assert_int_equal(sparq_moe_dims_check(&d), SPARQ_ERR_ARG);
  d.E = 4, d.router = SPARQ_MOE_NONE;
  assert_int_equal(sparq_moe_dims_check(&d), SPARQ_ERR_ARG);
  sparq_moe_router r;
  assert_int_equal(sparq_moe_router_parse("softmax", &r), SPARQ_ERR_ARG);
  assert_int_equal(sparq_moe_router_parse("topk", &r), SPARQ_OK);
  assert_int_equal(r, SPARQ_MOE_TOPK);
  /* backward before any forward */
  fixture f = make(SPARQ_MOE_RELU, 2, 4, 4, 4, 1, false, 1);
  sparq_moe_weights w = weights(&f);
  sparq_moe_state *st = NULL;
  assert_int_equal(sparq_moe_state_create(&st), SPARQ_OK);
  float dy[8] = {0}, dx[8];
  sparq_moe_grads g = {0};
  assert_int_equal(sparq_moe_backward(st, &f.d, &w, &g, f.x, dy, dx, SPARQ_MOE_L1_LB, 0, 0), SPARQ_ERR_ARG);
  sparq_moe_state_free(st);
  unmake(&f);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dispatch_matches_dense), cmocka_unit_test(test_hand_fixture),
      cmocka_unit_test(test_no_active_expert),       cmocka_unit_test(test_reg_gradient),
      cmocka_unit_test(test_lambda_controller),      cmocka_unit_test(test_topk_router),
      cmocka_unit_test(test_backward_double_reference), cmocka_unit_test(test_thread_count_independent),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
