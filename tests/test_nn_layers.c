/* The training layers of sparq/nn.h: every backward against central finite
 * differences of a double-precision forward written here from the
 * definitions (L = sum out * R with R random, so dL/dx is the backward of
 * dout = R), every FP32 forward against that double forward, the
 * accumulate (+=) rule, NULL gradient pointers, bias-free paths, odd sizes,
 * ignored and invalid cross-entropy targets, argument errors, and 1 vs 2
 * threads bit-identical. GELU's vector path has its own test
 * (test_nn_gelu.c); here it is differentiated like the other layers. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sparq/base.h"
#include "sparq/nn.h"
#include "fd_test_util.h"

/* Largest error of the FP32 analytic gradients against the finite
 * differences, relative to the largest gradient of the check. The measured
 * errors are 5e-9..1.6e-7 (FP32 rounding; NN_TEST_VERBOSE=1 prints them);
 * finite differences in double with h = 1e-6 are good to about 1e-9. */
#define GRAD_TOL 1e-5
/* FP32 forwards against the double forwards, relative to max(1, max |out|). */
#define FWD_TOL 2e-5

/* ------------------------------------------------------------- helpers */

static float *frand(size_t n, uint64_t seed, float mean, float sd) { return frand_stream(n, seed, 7, mean, sd); }

static float *fcopy(const float *x, size_t n) {
  float *y = falloc(n);
  memcpy(y, x, n * sizeof(float));
  return y;
}

static bool same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* twice == 2 once within rounding (a second call of a backward doubled the
 * first), relative to the largest element: column sums restart from the
 * first call's result, so small sums of large terms round differently. */
static void expect_doubled(const char *what, const float *once, const float *twice, size_t n) {
  double scale = 1e-30;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, 2.0 * fabs(once[i]));
  for (size_t i = 0; i < n; i++) {
    const double want = 2.0 * once[i];
    if (!(fabs(twice[i] - want) <= 1e-6 * scale))
      fail_msg("%s[%zu]: second backward gives %.9g, expected 2 x %.9g", what, i, (double)twice[i], (double)once[i]);
  }
}

/* ------------------------------------------------------------ embedding */

typedef struct emb_ctx {
  const int32_t *tok;
  const double *wte, *wpe;
  int64_t B, T, C;
} emb_ctx;

static void emb_f64(const void *p, double *out) {
  const emb_ctx *c = p;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t t = 0; t < c->T; t++)
      for (int64_t j = 0; j < c->C; j++)
        out[(b * c->T + t) * c->C + j] = c->wte[c->tok[b * c->T + t] * c->C + j] + c->wpe[t * c->C + j];
}

static void embedding_layer(void **state) {
  (void)state;
  const int64_t B = 2, T = 5, C = 13, V = 7, TP = T + 2; /* wpe has rows no position uses */
  const int32_t tok[] = {3, 0, 3, 6, 3, 1, 1, 5, 3, 0};  /* repeats: rows of wte shared */
  const size_t n = (size_t)(B * T * C);
  float *wte = frand((size_t)(V * C), 1, 0, 1), *wpe = frand((size_t)(TP * C), 2, 0, 1);
  float *out = falloc(n), *r = frand(n, 3, 0, 1);
  float *dwte = falloc((size_t)(V * C)), *dwpe = falloc((size_t)(TP * C));
  sparq_nn_embedding_forward(out, tok, wte, wpe, B, T, C);
  double *wte64 = to_double(wte, (size_t)(V * C)), *wpe64 = to_double(wpe, (size_t)(TP * C)), *o64 = dalloc(n);
  emb_ctx ctx = {tok, wte64, wpe64, B, T, C};
  emb_f64(&ctx, o64);
  expect_forward("embedding", out, o64, n, 1e-7);
  sparq_nn_embedding_backward(dwte, dwpe, r, tok, B, T, C);
  fd_var vars[] = {{"wte", wte64, (size_t)(V * C), dwte}, {"wpe", wpe64, (size_t)(TP * C), dwpe}};
  fd_check("embedding", emb_f64, &ctx, r, n, vars, 2, GRAD_TOL);
  /* += rule, and NULL gradients skip */
  float *dwte2 = fcopy(dwte, (size_t)(V * C)), *dwpe2 = fcopy(dwpe, (size_t)(TP * C));
  sparq_nn_embedding_backward(dwte2, dwpe2, r, tok, B, T, C);
  expect_doubled("embedding dwte", dwte, dwte2, (size_t)(V * C));
  expect_doubled("embedding dwpe", dwpe, dwpe2, (size_t)(TP * C));
  float *only = falloc((size_t)(V * C));
  sparq_nn_embedding_backward(only, NULL, r, tok, B, T, C);
  assert_true(same_bits(only, dwte, (size_t)(V * C)));
  sparq_nn_embedding_backward(NULL, NULL, r, tok, B, T, C);
  sparq_free(wte), sparq_free(wpe), sparq_free(out), sparq_free(r), sparq_free(dwte), sparq_free(dwpe);
  sparq_free(dwte2), sparq_free(dwpe2), sparq_free(only);
  free(wte64), free(wpe64), free(o64);
}

/* ------------------------------------------------------------ layernorm */

typedef struct ln_ctx {
  const double *inp, *w, *b;
  int64_t N, C;
  double *mean, *rstd; /* optional outputs */
} ln_ctx;

static void ln_f64(const void *p, double *out) {
  const ln_ctx *c = p;
  for (int64_t n = 0; n < c->N; n++) {
    const double *x = c->inp + n * c->C;
    double m = 0, v = 0;
    for (int64_t j = 0; j < c->C; j++) m += x[j];
    m /= (double)c->C;
    for (int64_t j = 0; j < c->C; j++) v += (x[j] - m) * (x[j] - m);
    v /= (double)c->C;
    const double s = 1.0 / sqrt(v + 1e-5);
    for (int64_t j = 0; j < c->C; j++) out[n * c->C + j] = (x[j] - m) * s * c->w[j] + (c->b ? c->b[j] : 0.0);
    if (c->mean) c->mean[n] = m, c->rstd[n] = s;
  }
}

static void layernorm_case(int64_t N, int64_t C, bool bias, uint64_t seed) {
  char name[64];
  snprintf(name, sizeof name, "layernorm N=%lld C=%lld%s", (long long)N, (long long)C, bias ? "" : " no bias");
  const size_t n = (size_t)(N * C);
  float *inp = frand(n, seed, 0.7f, 2.0f), *w = frand((size_t)C, seed + 1, 1.0f, 0.3f);
  float *b = bias ? frand((size_t)C, seed + 2, 0.0f, 0.5f) : NULL, *r = frand(n, seed + 3, 0, 1);
  float *out = falloc(n), *mean = falloc((size_t)N), *rstd = falloc((size_t)N);
  float *dinp = falloc(n), *dw = falloc((size_t)C), *db = falloc((size_t)C);
  sparq_nn_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
  double *inp64 = to_double(inp, n), *w64 = to_double(w, (size_t)C), *b64 = bias ? to_double(b, (size_t)C) : NULL;
  double *o64 = dalloc(n), *m64 = dalloc((size_t)N), *s64 = dalloc((size_t)N);
  ln_ctx ctx = {inp64, w64, b64, N, C, m64, s64};
  ln_f64(&ctx, o64);
  expect_forward(name, out, o64, n, FWD_TOL);
  expect_forward("layernorm mean", mean, m64, (size_t)N, FWD_TOL);
  for (int64_t i = 0; i < N; i++) assert_true(fabs(rstd[i] - s64[i]) <= 1e-5 * s64[i]);
  ctx.mean = ctx.rstd = NULL;

  sparq_nn_layernorm_backward(dinp, dw, bias ? db : NULL, r, inp, w, mean, rstd, N, C);
  fd_var vars[] = {{"inp", inp64, n, dinp}, {"w", w64, (size_t)C, dw}, {"b", b64, (size_t)C, db}};
  fd_check(name, ln_f64, &ctx, r, n, vars, bias ? 3 : 2, GRAD_TOL);

  /* += rule */
  float *dinp2 = fcopy(dinp, n), *dw2 = fcopy(dw, (size_t)C), *db2 = fcopy(db, (size_t)C);
  sparq_nn_layernorm_backward(dinp2, dw2, db2, r, inp, w, mean, rstd, N, C);
  expect_doubled("layernorm dinp", dinp, dinp2, n);
  expect_doubled("layernorm dw", dw, dw2, (size_t)C);
  /* each gradient alone is the same bits as with the others */
  float *a = falloc(n), *bw = falloc((size_t)C), *bb = falloc((size_t)C);
  sparq_nn_layernorm_backward(a, NULL, NULL, r, inp, w, mean, rstd, N, C);
  sparq_nn_layernorm_backward(NULL, bw, NULL, r, inp, w, mean, rstd, N, C);
  sparq_nn_layernorm_backward(NULL, NULL, bb, r, inp, w, mean, rstd, N, C);
  assert_true(same_bits(a, dinp, n));
  assert_true(same_bits(bw, dw, (size_t)C));
  if (bias) assert_true(same_bits(bb, db, (size_t)C));

  sparq_free(inp), sparq_free(w), sparq_free(b), sparq_free(r), sparq_free(out), sparq_free(mean), sparq_free(rstd);
  sparq_free(dinp), sparq_free(dw), sparq_free(db), sparq_free(dinp2), sparq_free(dw2), sparq_free(db2);
  sparq_free(a), sparq_free(bw), sparq_free(bb);
  free(inp64), free(w64), free(b64), free(o64), free(m64), free(s64);
}

static void layernorm_layer(void **state) {
  (void)state;
  layernorm_case(7, 13, true, 10);  /* the row is all tail */
  layernorm_case(5, 40, true, 20);  /* vector lanes + tail */
  layernorm_case(3, 32, false, 30); /* whole vectors, no bias */
  layernorm_case(1, 1, true, 40);   /* C = 1: out = b, no gradient reaches inp or w */
}

/* The AVX-512 build of the row kernels runs the same expressions as the
 * portable one (ISO C: no FP contraction): same bits. */
static void layernorm_isa_levels_agree(void **state) {
  (void)state;
  const int64_t N = 64, C = 77;
  const size_t n = (size_t)(N * C);
  float *inp = frand(n, 50, 0.3f, 1.5f), *w = frand((size_t)C, 51, 1, 0.2f), *b = frand((size_t)C, 52, 0, 0.2f);
  float *r = frand(n, 53, 0, 1);
  float *out[2], *mean[2], *rstd[2], *dinp[2], *dw[2], *db[2];
  const sparq_isa top = sparq_isa_active();
  for (int k = 0; k < 2; k++) {
    sparq_set_isa_cap(k == 0 ? SPARQ_ISA_SCALAR : top);
    out[k] = falloc(n), mean[k] = falloc((size_t)N), rstd[k] = falloc((size_t)N);
    dinp[k] = falloc(n), dw[k] = falloc((size_t)C), db[k] = falloc((size_t)C);
    sparq_nn_layernorm_forward(out[k], mean[k], rstd[k], inp, w, b, N, C);
    sparq_nn_layernorm_backward(dinp[k], dw[k], db[k], r, inp, w, mean[k], rstd[k], N, C);
  }
  sparq_set_isa_cap(top);
  assert_true(same_bits(out[0], out[1], n) && same_bits(mean[0], mean[1], (size_t)N) &&
              same_bits(rstd[0], rstd[1], (size_t)N));
  assert_true(same_bits(dinp[0], dinp[1], n) && same_bits(dw[0], dw[1], (size_t)C) &&
              same_bits(db[0], db[1], (size_t)C));
  for (int k = 0; k < 2; k++)
    sparq_free(out[k]), sparq_free(mean[k]), sparq_free(rstd[k]), sparq_free(dinp[k]), sparq_free(dw[k]),
        sparq_free(db[k]);
  sparq_free(inp), sparq_free(w), sparq_free(b), sparq_free(r);
}

/* --------------------------------------------------------------- linear */

typedef struct lin_ctx {
  const double *inp, *w, *bias;
  int64_t N, C, OC;
} lin_ctx;

static void lin_f64(const void *p, double *out) {
  const lin_ctx *c = p;
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t o = 0; o < c->OC; o++) {
      double acc = c->bias ? c->bias[o] : 0.0;
      for (int64_t j = 0; j < c->C; j++) acc += c->inp[n * c->C + j] * c->w[o * c->C + j];
      out[n * c->OC + o] = acc;
    }
}

static void linear_case(int64_t N, int64_t C, int64_t OC, bool bias, uint64_t seed) {
  char name[64];
  snprintf(name, sizeof name, "linear N=%lld C=%lld OC=%lld%s", (long long)N, (long long)C, (long long)OC,
           bias ? "" : " no bias");
  const size_t ni = (size_t)(N * C), nw = (size_t)(OC * C), no = (size_t)(N * OC);
  float *inp = frand(ni, seed, 0, 1), *w = frand(nw, seed + 1, 0, 0.5f);
  float *b = bias ? frand((size_t)OC, seed + 2, 0, 1) : NULL, *r = frand(no, seed + 3, 0, 1);
  float *out = falloc(no), *dinp = falloc(ni), *dw = falloc(nw), *db = falloc((size_t)OC);
  assert_int_equal(sparq_nn_linear_forward(out, inp, w, b, N, C, OC), SPARQ_OK);
  double *inp64 = to_double(inp, ni), *w64 = to_double(w, nw), *b64 = bias ? to_double(b, (size_t)OC) : NULL;
  double *o64 = dalloc(no);
  lin_ctx ctx = {inp64, w64, b64, N, C, OC};
  lin_f64(&ctx, o64);
  expect_forward(name, out, o64, no, FWD_TOL);
  assert_int_equal(sparq_nn_linear_backward(dinp, dw, bias ? db : NULL, r, inp, w, N, C, OC), SPARQ_OK);
  fd_var vars[] = {{"inp", inp64, ni, dinp}, {"w", w64, nw, dw}, {"bias", b64, (size_t)OC, db}};
  fd_check(name, lin_f64, &ctx, r, no, vars, bias ? 3 : 2, GRAD_TOL);

  float *dinp2 = fcopy(dinp, ni), *dw2 = fcopy(dw, nw), *db2 = fcopy(db, (size_t)OC);
  assert_int_equal(sparq_nn_linear_backward(dinp2, dw2, db2, r, inp, w, N, C, OC), SPARQ_OK);
  expect_doubled("linear dinp", dinp, dinp2, ni);
  expect_doubled("linear dw", dw, dw2, nw);
  if (bias) expect_doubled("linear dbias", db, db2, (size_t)OC);
  /* one gradient at a time */
  float *a = falloc(ni), *bw = falloc(nw), *bb = falloc((size_t)OC);
  assert_int_equal(sparq_nn_linear_backward(a, NULL, NULL, r, inp, w, N, C, OC), SPARQ_OK);
  assert_int_equal(sparq_nn_linear_backward(NULL, bw, NULL, r, inp, w, N, C, OC), SPARQ_OK);
  assert_int_equal(sparq_nn_linear_backward(NULL, NULL, bb, r, NULL, NULL, N, C, OC), SPARQ_OK);
  assert_true(same_bits(a, dinp, ni));
  assert_true(same_bits(bw, dw, nw));
  if (bias) assert_true(same_bits(bb, db, (size_t)OC));

  sparq_free(inp), sparq_free(w), sparq_free(b), sparq_free(r), sparq_free(out), sparq_free(dinp), sparq_free(dw);
  sparq_free(db), sparq_free(dinp2), sparq_free(dw2), sparq_free(db2), sparq_free(a), sparq_free(bw), sparq_free(bb);
  free(inp64), free(w64), free(b64), free(o64);
}

static void linear_layer(void **state) {
  (void)state;
  linear_case(7, 13, 5, true, 60);
  linear_case(7, 13, 5, false, 70);
  linear_case(1, 1, 1, true, 80);
  linear_case(9, 32, 19, true, 90);
}

/* A block of rows of a larger weight (c_attn's q, k, v thirds) is a valid w. */
static void linear_weight_block(void **state) {
  (void)state;
  const int64_t N = 4, C = 6, OC = 9;
  float *inp = frand((size_t)(N * C), 100, 0, 1), *w = frand((size_t)(OC * C), 101, 0, 1);
  float *full = falloc((size_t)(N * OC)), *part = falloc((size_t)(N * 3));
  assert_int_equal(sparq_nn_linear_forward(full, inp, w, NULL, N, C, OC), SPARQ_OK);
  assert_int_equal(sparq_nn_linear_forward(part, inp, w + 3 * C, NULL, N, C, 3), SPARQ_OK);
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < 3; o++) assert_true(fabsf(part[n * 3 + o] - full[n * OC + 3 + o]) <= 1e-6f);
  sparq_free(inp), sparq_free(w), sparq_free(full), sparq_free(part);
}

/* ----------------------------------------------------------------- GELU */

typedef struct gelu_ctx {
  const double *x;
  size_t n;
} gelu_ctx;

static void gelu_f64(const void *p, double *out) {
  const gelu_ctx *c = p;
  for (size_t i = 0; i < c->n; i++) out[i] = 0.5 * c->x[i] * erfc(-c->x[i] / sqrt(2.0));
}

static void gelu_layer(void **state) {
  (void)state;
  const size_t n = 53; /* three vectors and a tail */
  float *x = frand(n, 110, 0, 2.5f), *r = frand(n, 111, 0, 1), *out = falloc(n), *dx = falloc(n);
  x[0] = -6.5f, x[1] = 7.0f, x[2] = 0.0f, x[3] = -0.7518f; /* tails, 0, the minimum */
  sparq_nn_gelu_forward(out, x, n);
  double *x64 = to_double(x, n), *o64 = dalloc(n);
  gelu_ctx ctx = {x64, n};
  gelu_f64(&ctx, o64);
  expect_forward("gelu", out, o64, n, 1e-6);
  sparq_nn_gelu_backward(dx, x, r, n);
  fd_var vars[] = {{"x", x64, n, dx}};
  fd_check("gelu", gelu_f64, &ctx, r, n, vars, 1, GRAD_TOL);
  /* The one overwriting backward: a second call gives the same bits,
   * whatever dinp held. */
  float *dx2 = fcopy(dx, n);
  for (size_t i = 0; i < n; i++) dx2[i] = 1e30f;
  sparq_nn_gelu_backward(dx2, x, r, n);
  assert_memory_equal(dx, dx2, n * sizeof(float));
  sparq_free(x), sparq_free(r), sparq_free(out), sparq_free(dx), sparq_free(dx2);
  free(x64), free(o64);
}

/* ------------------------------------------------------------- residual */

typedef struct res_ctx {
  const double *a, *b;
  size_t n;
} res_ctx;

static void res_f64(const void *p, double *out) {
  const res_ctx *c = p;
  for (size_t i = 0; i < c->n; i++) out[i] = c->a[i] + c->b[i];
}

static void residual_layer(void **state) {
  (void)state;
  const size_t n = 37;
  float *a = frand(n, 120, 0, 1), *b = frand(n, 121, 0, 1), *r = frand(n, 122, 0, 1);
  float *out = falloc(n), *da = falloc(n), *db = falloc(n);
  sparq_nn_residual_forward(out, a, b, n);
  double *a64 = to_double(a, n), *b64 = to_double(b, n), *o64 = dalloc(n);
  res_ctx ctx = {a64, b64, n};
  res_f64(&ctx, o64);
  expect_forward("residual", out, o64, n, 1e-7);
  sparq_nn_residual_backward(da, db, r, n);
  fd_var vars[] = {{"a", a64, n, da}, {"b", b64, n, db}};
  fd_check("residual", res_f64, &ctx, r, n, vars, 2, GRAD_TOL);
  sparq_nn_residual_backward(da, NULL, r, n);
  expect_doubled("residual da", db, da, n);
  /* in place on either operand */
  float *a2 = fcopy(a, n), *b2 = fcopy(b, n);
  sparq_nn_residual_forward(a2, a2, b, n);
  sparq_nn_residual_forward(b2, a, b2, n);
  assert_true(same_bits(a2, out, n) && same_bits(b2, out, n));
  sparq_free(a), sparq_free(b), sparq_free(r), sparq_free(out), sparq_free(da), sparq_free(db), sparq_free(a2);
  sparq_free(b2);
  free(a64), free(b64), free(o64);
}

/* ------------------------------------------------------------ attention */

typedef struct att_ctx {
  const double *q, *k, *v;
  int64_t B, T, NH, hd;
  double *lse; /* optional [B,NH,T] */
} att_ctx;

/* Causal softmax(q k^T / sqrt(hd)) v in NHD layout, straight from the definition. */
static void att_f64(const void *p, double *out) {
  const att_ctx *c = p;
  const int64_t C = c->NH * c->hd;
  const double scale = 1.0 / sqrt((double)c->hd);
  double *s = malloc((size_t)c->T * sizeof(double));
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t h = 0; h < c->NH; h++)
      for (int64_t i = 0; i < c->T; i++) {
        const double *qi = c->q + (b * c->T + i) * C + h * c->hd;
        double m = -INFINITY, l = 0;
        for (int64_t j = 0; j <= i; j++) {
          const double *kj = c->k + (b * c->T + j) * C + h * c->hd;
          double acc = 0;
          for (int64_t d = 0; d < c->hd; d++) acc += qi[d] * kj[d];
          s[j] = acc * scale;
          m = fmax(m, s[j]);
        }
        for (int64_t j = 0; j <= i; j++) l += (s[j] = exp(s[j] - m));
        double *o = out + (b * c->T + i) * C + h * c->hd;
        for (int64_t d = 0; d < c->hd; d++) {
          double acc = 0;
          for (int64_t j = 0; j <= i; j++) acc += s[j] * c->v[(b * c->T + j) * C + h * c->hd + d];
          o[d] = acc / l;
        }
        if (c->lse) c->lse[(b * c->NH + h) * c->T + i] = m + log(l);
      }
  free(s);
}

static void attention_layer(void **state) {
  (void)state;
  const int64_t B = 2, T = 17, NH = 3, hd = 8;
  const size_t n = (size_t)(B * T * NH * hd), nl = (size_t)(B * NH * T);
  float *q = frand(n, 130, 0, 1), *k = frand(n, 131, 0, 1), *v = frand(n, 132, 0, 1), *r = frand(n, 133, 0, 1);
  float *out = falloc(n), *lse = falloc(nl), *dq = falloc(n), *dk = falloc(n), *dv = falloc(n);
  assert_int_equal(sparq_nn_attention_forward(out, lse, q, k, v, B, T, NH, hd), SPARQ_OK);
  double *q64 = to_double(q, n), *k64 = to_double(k, n), *v64 = to_double(v, n), *o64 = dalloc(n), *l64 = dalloc(nl);
  att_ctx ctx = {q64, k64, v64, B, T, NH, hd, l64};
  att_f64(&ctx, o64);
  expect_forward("attention", out, o64, n, FWD_TOL);
  expect_forward("attention lse", lse, l64, nl, FWD_TOL);
  ctx.lse = NULL;
  /* backward overwrites: start from garbage */
  for (size_t i = 0; i < n; i++) dq[i] = dk[i] = dv[i] = 1e3f;
  assert_int_equal(sparq_nn_attention_backward(dq, dk, dv, r, q, k, v, out, lse, B, T, NH, hd), SPARQ_OK);
  fd_var vars[] = {{"q", q64, n, dq}, {"k", k64, n, dk}, {"v", v64, n, dv}};
  fd_check("attention B=2 T=17 NH=3 hd=8", att_f64, &ctx, r, n, vars, 3, GRAD_TOL);

  assert_int_equal(sparq_nn_attention_forward(out, lse, q, k, v, 0, T, NH, hd), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_nn_attention_forward"));
  assert_int_equal(sparq_nn_attention_backward(dq, dk, dv, r, q, k, v, out, NULL, B, T, NH, hd), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_nn_attention_backward"));
  sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(r), sparq_free(out), sparq_free(lse);
  sparq_free(dq), sparq_free(dk), sparq_free(dv);
  free(q64), free(k64), free(v64), free(o64), free(l64);
}

/* --------------------------------------------------------- cross-entropy */

typedef struct xent_ctx {
  const double *logits;
  const int32_t *targets;
  int64_t N, V;
} xent_ctx;

static void xent_f64(const void *p, double *out) {
  const xent_ctx *c = p;
  double sum = 0;
  int64_t valid = 0;
  for (int64_t n = 0; n < c->N; n++) {
    if (c->targets[n] < 0) continue;
    const double *x = c->logits + n * c->V;
    double m = -INFINITY, l = 0;
    for (int64_t j = 0; j < c->V; j++) m = fmax(m, x[j]);
    for (int64_t j = 0; j < c->V; j++) l += exp(x[j] - m);
    sum += m + log(l) - x[c->targets[n]];
    valid++;
  }
  out[0] = valid ? sum / (double)valid : 0.0;
}

static void xent_layer(void **state) {
  (void)state;
  const int64_t N = 7, V = 11;
  const int32_t targets[] = {3, -1, 10, 0, -1, 5, 3};
  const size_t n = (size_t)(N * V);
  float *logits = frand(n, 140, 0, 2), *probs = falloc(n), *dl = falloc(n);
  logits[2 * V + 4] = 30.0f; /* a large logit: the logsumexp must be the stable one */
  float loss = NAN, dloss = 0.7f;
  assert_int_equal(sparq_nn_xent_forward(&loss, probs, logits, targets, N, V), SPARQ_OK);
  double *l64 = to_double(logits, n), ref;
  xent_ctx ctx = {l64, targets, N, V};
  xent_f64(&ctx, &ref);
  assert_true(fabs(loss - ref) <= 1e-6 * fmax(1, fabs(ref)));
  for (int64_t i = 0; i < N; i++) { /* rows of probs sum to 1 */
    double s = 0;
    for (int64_t j = 0; j < V; j++) s += probs[i * V + j];
    assert_true(fabs(s - 1) <= 1e-6);
  }
  /* probs NULL: the same loss */
  float loss2 = NAN;
  assert_int_equal(sparq_nn_xent_forward(&loss2, NULL, logits, targets, N, V), SPARQ_OK);
  assert_true(loss2 == loss);

  sparq_nn_xent_backward(dl, probs, targets, N, V, dloss);
  for (int64_t j = 0; j < V; j++) assert_true(dl[1 * V + j] == 0.0f && dl[4 * V + j] == 0.0f); /* ignored rows */
  fd_var vars[] = {{"logits", l64, n, dl}};
  fd_check("xent N=7 V=11 (2 ignored)", xent_f64, &ctx, &dloss, 1, vars, 1, GRAD_TOL);
  float *dl2 = fcopy(dl, n);
  sparq_nn_xent_backward(dl2, probs, targets, N, V, dloss);
  expect_doubled("xent dlogits", dl, dl2, n);
  sparq_free(logits), sparq_free(probs), sparq_free(dl), sparq_free(dl2);
  free(l64);
}

static void xent_ignored_and_bad_targets(void **state) {
  (void)state;
  const int64_t N = 4, V = 5;
  const size_t n = (size_t)(N * V);
  float *logits = frand(n, 150, 0, 1), *probs = falloc(n), *dl = falloc(n);
  const int32_t none[] = {-1, -1, -5, -1};
  float loss = NAN;
  assert_int_equal(sparq_nn_xent_forward(&loss, probs, logits, none, N, V), SPARQ_OK);
  assert_true(loss == 0.0f);
  for (size_t i = 0; i < n; i++) assert_true(isfinite(probs[i]));
  sparq_nn_xent_backward(dl, probs, none, N, V, 1.0f);
  for (size_t i = 0; i < n; i++) assert_true(dl[i] == 0.0f);
  /* N = 0 is an empty batch */
  loss = NAN;
  assert_int_equal(sparq_nn_xent_forward(&loss, NULL, NULL, NULL, 0, V), SPARQ_OK);
  assert_true(loss == 0.0f);

  const int32_t bad[] = {0, 4, -1, 5};
  assert_int_equal(sparq_nn_xent_forward(&loss, probs, logits, bad, N, V), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_nn_xent_forward"));
  assert_non_null(strstr(sparq_last_error(), "row 3"));
  assert_int_equal(sparq_nn_xent_forward(&loss, probs, logits, none, N, 0), SPARQ_ERR_ARG);
  assert_int_equal(sparq_nn_xent_forward(NULL, probs, logits, none, N, V), SPARQ_ERR_ARG);
  sparq_free(logits), sparq_free(probs), sparq_free(dl);
}

static void linear_bad_arguments(void **state) {
  (void)state;
  float x[4] = {0};
  assert_int_equal(sparq_nn_linear_forward(x, x, x, NULL, -1, 2, 2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_nn_linear_forward"));
  assert_int_equal(sparq_nn_linear_forward(x, NULL, x, NULL, 1, 2, 2), SPARQ_ERR_ARG);
  assert_int_equal(sparq_nn_linear_backward(x, x, x, x, x, x, 1, -2, 2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_nn_linear_backward"));
  assert_int_equal(sparq_nn_linear_backward(x, NULL, NULL, x, x, NULL, 1, 2, 2), SPARQ_ERR_ARG);
  /* empty shapes are fine */
  assert_int_equal(sparq_nn_linear_forward(NULL, NULL, NULL, NULL, 0, 2, 2), SPARQ_OK);
  assert_int_equal(sparq_nn_linear_backward(NULL, NULL, NULL, NULL, NULL, NULL, 0, 2, 2), SPARQ_OK);
}

/* ---------------------------------------------------- 1 vs 2 threads */

typedef struct run_out {
  float *f[12];
  size_t n[12];
  int count;
} run_out;

static float *keep(run_out *o, size_t n) {
  o->n[o->count] = n;
  return o->f[o->count++] = falloc(n);
}

/* Every layer on sizes that take the parallel paths (rows beyond one
 * cross-entropy block, several column ranges, GEMM bias paths). */
static void run_layers(run_out *o) {
  const int64_t N = 700, C = 96, OC = 130, V = 100, B = 4, T = 175;
  const size_t nc = (size_t)(N * C);
  float *inp = frand(nc, 200, 0.2f, 1.3f), *w = frand((size_t)C, 201, 1, 0.2f), *b = frand((size_t)C, 202, 0, 0.2f);
  float *r = frand(nc, 203, 0, 1), *mean = falloc((size_t)N), *rstd = falloc((size_t)N);
  /* layernorm */
  float *out = keep(o, nc), *dinp = keep(o, nc), *dwb = keep(o, (size_t)(2 * C));
  sparq_nn_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
  sparq_nn_layernorm_backward(dinp, dwb, dwb + C, r, inp, w, mean, rstd, N, C);
  /* linear: bias add and bias gradient */
  float *lw = frand((size_t)(OC * C), 204, 0, 0.1f), *lb = frand((size_t)OC, 205, 0, 1);
  float *lr = frand((size_t)(N * OC), 206, 0, 1);
  float *lout = keep(o, (size_t)(N * OC)), *ldb = keep(o, (size_t)OC);
  assert_int_equal(sparq_nn_linear_forward(lout, inp, lw, lb, N, C, OC), SPARQ_OK);
  assert_int_equal(sparq_nn_linear_backward(NULL, NULL, ldb, lr, inp, lw, N, C, OC), SPARQ_OK);
  /* cross-entropy on more rows than one parallel block (2048) */
  const int64_t NX = 2100;
  float *logits = frand((size_t)(NX * V), 207, 0, 3);
  int32_t *t = malloc((size_t)NX * sizeof(int32_t));
  for (int64_t i = 0; i < NX; i++) t[i] = i % 9 == 4 ? -1 : (int32_t)((i * 37) % V);
  float *probs = keep(o, (size_t)(NX * V)), *dl = keep(o, (size_t)(NX * V)), *loss = keep(o, 1);
  assert_int_equal(sparq_nn_xent_forward(loss, probs, logits, t, NX, V), SPARQ_OK);
  sparq_nn_xent_backward(dl, probs, t, NX, V, 0.5f);
  /* embedding (tokens drawn from the same targets) */
  float *wte = frand((size_t)(V * C), 208, 0, 1), *wpe = frand((size_t)(T * C), 209, 0, 1);
  for (int64_t i = 0; i < N; i++) t[i] = (int32_t)((i * i) % V);
  float *eout = keep(o, nc), *dwte = keep(o, (size_t)(V * C + T * C));
  sparq_nn_embedding_forward(eout, t, wte, wpe, B, T, C);
  sparq_nn_embedding_backward(dwte, dwte + V * C, r, t, B, T, C);
  sparq_free(inp), sparq_free(w), sparq_free(b), sparq_free(r), sparq_free(mean), sparq_free(rstd);
  sparq_free(lw), sparq_free(lb), sparq_free(lr), sparq_free(logits), sparq_free(wte), sparq_free(wpe);
  free(t);
}

static void threads_bit_identical(void **state) {
  (void)state;
  const int before = sparq_threads();
  run_out o[2] = {0};
  sparq_set_threads(1);
  run_layers(&o[0]);
  sparq_set_threads(2);
  run_layers(&o[1]);
  sparq_set_threads(before);
  const char *names[] = {"layernorm out", "layernorm dinp", "layernorm dw db", "linear out", "linear dbias",
                         "xent probs", "xent dlogits", "xent loss"};
  for (int i = 0; i < o[0].count; i++) {
    if (!same_bits(o[0].f[i], o[1].f[i], o[0].n[i]))
      fail_msg("%s differs between 1 and 2 threads", i < 8 ? names[i] : "embedding");
    sparq_free(o[0].f[i]), sparq_free(o[1].f[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(embedding_layer),
      cmocka_unit_test(layernorm_layer),
      cmocka_unit_test(layernorm_isa_levels_agree),
      cmocka_unit_test(linear_layer),
      cmocka_unit_test(linear_weight_block),
      cmocka_unit_test(linear_bad_arguments),
      cmocka_unit_test(gelu_layer),
      cmocka_unit_test(residual_layer),
      cmocka_unit_test(attention_layer),
      cmocka_unit_test(xent_layer),
      cmocka_unit_test(xent_ignored_and_bad_targets),
      cmocka_unit_test(threads_bit_identical),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
