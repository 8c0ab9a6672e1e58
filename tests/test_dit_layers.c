/* The DiT layers of sparq/nn.h: every backward against central finite
 * differences of a double-precision forward written here from the
 * definitions (L = sum out * R with R random, so dL/dx is the backward of
 * dout = R), every FP32 forward against that double forward, the
 * accumulate (+=) rule (gradients start at a non-zero value), tanh-GELU's
 * vector path against its double reference over the whole useful range,
 * the portable and AVX-512 instantiations bit for bit, the patch
 * permutations exactly, and 1 vs 2 threads bit-identical. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/base.h"
#include "sparq/nn.h"
#include "fd_test_util.h"

/* FP32 analytic gradients against double finite differences, relative to
 * the largest gradient of the check (FP32 rounding is ~1e-7; central
 * differences with h = 1e-6 in double are good to ~1e-9). */
#define GRAD_TOL 2e-5
/* FP32 forwards against double forwards, relative to max(1, max |ref|). */
#define FWD_TOL 2e-5
/* Gradients start here, so a backward that overwrites is caught. */
#define GRAD_START 0.25f

/* ------------------------------------------------------------- helpers */

static float *frand(size_t n, uint64_t seed, float mean, float sd) { return frand_stream(n, seed, 3, mean, sd); }

static float *ffill(size_t n, float v) {
  float *x = sparq_alloc((n ? n : 1) * sizeof(float), "test");
  for (size_t i = 0; i < n; i++) x[i] = v;
  return x;
}


/* grad[i] - start must match dL/dx[i], L = sum out * R, by central differences
 * (x is one of the arrays the forward reads). */
static void expect_gradient(const char *what, fd_forward f, const void *ctx, double *x, size_t n, const double *R,
                            size_t nout, const float *grad, float start) {
  double *up = malloc(nout * sizeof(double)), *down = malloc(nout * sizeof(double));
  double *fd = malloc(n * sizeof(double));
  double scale = 1e-30, err = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < n; i++) {
    const double keep = x[i], h = 1e-6 * fmax(1.0, fabs(keep));
    x[i] = keep + h;
    f(ctx, up);
    x[i] = keep - h;
    f(ctx, down);
    x[i] = keep;
    double d = 0.0;
    for (size_t o = 0; o < nout; o++) d += (up[o] - down[o]) * R[o];
    fd[i] = d / (2 * h);
    scale = fmax(scale, fabs(fd[i]));
  }
  for (size_t i = 0; i < n; i++) {
    const double e = fabs(((double)grad[i] - start) - fd[i]);
    if (e > err) err = e, worst = i;
  }
  if (!(err <= GRAD_TOL * scale))
    fail_msg("%s: gradient error %.3g at %zu (backward %.9g, finite differences %.9g, scale %.3g)", what, err, worst,
             (double)grad[worst] - start, fd[worst], scale);
  free(up), free(down), free(fd);
}

/* ---------------------------------------------------------- tanh GELU */

static double gelu_tanh_d(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

typedef struct gelu_ctx {
  double *x;
  size_t n;
} gelu_ctx;

static void gelu_fd_forward(const void *ctx, double *out) {
  const gelu_ctx *c = ctx;
  for (size_t i = 0; i < c->n; i++) out[i] = gelu_tanh_d(c->x[i]);
}

static void gelu_tanh_layer(void **state) {
  (void)state;
  const size_t n = 301;
  float *x = frand(n, 1, 0.0f, 2.5f), *r = frand(n, 2, 0.0f, 1.0f);
  float *out = ffill(n, 0), *dinp = ffill(n, 0);
  sparq_nn_gelu_tanh_forward(out, x, n);
  sparq_nn_gelu_tanh_backward(dinp, x, r, n);
  double *xd = to_double(x, n), *rd = to_double(r, n), *ref = malloc(n * sizeof(double));
  gelu_ctx c = {xd, n};
  gelu_fd_forward(&c, ref);
  expect_forward("gelu_tanh", out, ref, n, FWD_TOL);
  expect_gradient("gelu_tanh dinp", gelu_fd_forward, &c, xd, n, rd, n, dinp, 0.0f);
  /* in place: out = inp and dinp = dout give the same bits */
  float *inplace = ffill(n, 0);
  memcpy(inplace, x, n * sizeof(float));
  sparq_nn_gelu_tanh_forward(inplace, inplace, n);
  assert_memory_equal(inplace, out, n * sizeof(float));
  memcpy(inplace, r, n * sizeof(float));
  sparq_nn_gelu_tanh_backward(inplace, x, inplace, n);
  assert_memory_equal(inplace, dinp, n * sizeof(float));
  sparq_free(x), sparq_free(r), sparq_free(out), sparq_free(dinp), sparq_free(inplace);
  free(xd), free(rd), free(ref);
}

/* The vector kernel against the double references on a dense sweep of
 * [-12, 12] plus the special values. The exponential's argument -2u
 * carries the float roundings of u (a few ulp of u), which become a
 * relative error of a few |2u| ulp in exp(-2u); so the forward must be
 * within (4 + 4|2u|) ulp (relative) or 1e-36 (absolute: the clamped left
 * tail), and the derivative within (4 + 4|2u|) ulp of max(|g|, 0.25):
 * g = s + 2 x u' s (1 - s) cancels on the left (the two terms reach 0.3
 * and g crosses zero near x = -0.75). Where |2u| is large on the left the values
 * are small (|out| < 1.2e-3 from |2u| > 8 on). */
static void gelu_tanh_matches_reference(void **state) {
  (void)state;
  const size_t n = 240001 + 6;
  float *x = ffill(n, 0), *one = ffill(n, 1.0f);
  for (size_t i = 0; i < 240001; i++) x[i] = -12.0f + (float)i * 1e-4f;
  const float special[6] = {0.0f, -0.0f, INFINITY, 1e-30f, -1e-30f, 3e5f};
  memcpy(x + 240001, special, sizeof special);
  float *out = ffill(n, 0), *ref = ffill(n, 0), *g = ffill(n, 0), *gref = ffill(n, 0);
  sparq_nn_gelu_tanh_forward(out, x, n);
  sparq_nn_gelu_tanh_forward_ref(ref, x, n);
  sparq_nn_gelu_tanh_backward(g, x, one, n);
  sparq_nn_gelu_tanh_backward_ref(gref, x, one, n);
  double worst_f = 0, worst_g = 0;
  for (size_t i = 0; i < n; i++) {
    const double xc = fmin(fabs((double)x[i]), 10.0);
    const double ulps = (4.0 + 8.0 * sqrt(2.0 / M_PI) * (xc + 0.044715 * xc * xc * xc)) * 0x1p-24;
    const double ef = out[i] == ref[i] ? 0.0 : fabs((double)out[i] - ref[i]), tf = fmax(ulps * fabs(ref[i]), 1e-36);
    const double eg = g[i] == gref[i] ? 0.0 : fabs((double)g[i] - gref[i]), tg = ulps * fmax(fabs(gref[i]), 0.25);
    worst_f = fmax(worst_f, ef / tf), worst_g = fmax(worst_g, eg / tg);
    if (!(ef <= tf)) fail_msg("gelu_tanh(%.9g) = %.9g, reference %.9g", (double)x[i], (double)out[i], (double)ref[i]);
    if (!(eg <= tg)) fail_msg("gelu_tanh'(%.9g) = %.9g, reference %.9g", (double)x[i], (double)g[i], (double)gref[i]);
  }
  print_message("tanh GELU: worst error / tolerance forward %.2f, derivative %.2f\n", worst_f, worst_g);
  /* NaN stays NaN; +inf gives inf and slope 1; -inf gives a tiny value and slope ~0 */
  float nan_in = NAN, nan_out = 0, ninf = -INFINITY, ninf_out = 1;
  sparq_nn_gelu_tanh_forward(&nan_out, &nan_in, 1);
  assert_true(isnan(nan_out));
  sparq_nn_gelu_tanh_forward(&ninf_out, &ninf, 1);
  assert_true(fabsf(ninf_out) < 1e-36f);
  assert_true(isinf(out[240003]) && out[240003] > 0 && g[240003] == 1.0f);
  sparq_free(x), sparq_free(one), sparq_free(out), sparq_free(ref), sparq_free(g), sparq_free(gref);
}

/* ------------------------------------------------- LayerNorm, no affine */

typedef struct ln_ctx {
  double *x;
  int64_t N, C;
  double eps;
} ln_ctx;

static void ln_fd_forward(const void *ctx, double *out) {
  const ln_ctx *c = ctx;
  for (int64_t n = 0; n < c->N; n++) {
    const double *x = c->x + n * c->C;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < c->C; i++) mean += x[i];
    mean /= (double)c->C;
    for (int64_t i = 0; i < c->C; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (double)c->C;
    for (int64_t i = 0; i < c->C; i++) out[n * c->C + i] = (x[i] - mean) / sqrt(var + c->eps);
  }
}

static void layernorm_plain_layer(void **state) {
  (void)state;
  const int64_t N = 5, C = 37;
  const size_t nc = (size_t)(N * C);
  /* a large eps (0.5) on rows of small variance shows that eps is used */
  const float eps_list[2] = {1e-6f, 0.5f};
  for (int e = 0; e < 2; e++) {
    float *x = frand(nc, 10 + e, 0.3f, e ? 0.4f : 1.5f), *r = frand(nc, 12, 0, 1);
    float *out = ffill(nc, 0), *mean = ffill((size_t)N, 0), *rstd = ffill((size_t)N, 0), *dinp = ffill(nc, GRAD_START);
    sparq_nn_layernorm_plain_forward(out, mean, rstd, x, eps_list[e], N, C);
    sparq_nn_layernorm_plain_backward(dinp, r, x, mean, rstd, N, C);
    double *xd = to_double(x, nc), *rd = to_double(r, nc), *ref = malloc(nc * sizeof(double));
    ln_ctx c = {xd, N, C, eps_list[e]};
    ln_fd_forward(&c, ref);
    expect_forward("layernorm_plain", out, ref, nc, FWD_TOL);
    expect_gradient("layernorm_plain dinp", ln_fd_forward, &c, xd, nc, rd, nc, dinp, GRAD_START);
    sparq_free(x), sparq_free(r), sparq_free(out), sparq_free(mean), sparq_free(rstd), sparq_free(dinp);
    free(xd), free(rd), free(ref);
  }
}

/* ------------------------------------------- modulate and gated residual */

typedef struct cond_ctx {
  double *x, *y, *v1, *v2; /* tokens [B,T,C]; v1, v2 [B, ld] rows */
  int64_t B, T, C, ld;
  bool gated;
} cond_ctx;

/* modulate: x (1 + v2) + v1 (v1 = shift, v2 = scale); gated: x + v1 y (v1 = gate). */
static void cond_fd_forward(const void *ctx, double *out) {
  const cond_ctx *c = ctx;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t t = 0; t < c->T; t++)
      for (int64_t i = 0; i < c->C; i++) {
        const int64_t n = (b * c->T + t) * c->C + i, k = b * c->ld + i;
        out[n] = c->gated ? c->x[n] + c->v1[k] * c->y[n] : c->x[n] * (1.0 + c->v2[k]) + c->v1[k];
      }
}

static void modulate_and_gate_layers(void **state) {
  (void)state;
  const int64_t B = 3, T = 5, C = 19, ld = 2 * C + 3;
  const size_t nt = (size_t)(B * T * C), nv = (size_t)(B * ld);
  float *x = frand(nt, 20, 0, 1), *y = frand(nt, 21, 0, 1), *r = frand(nt, 22, 0, 1);
  float *mod = frand(nv, 23, 0, 0.5f); /* shift at column 0, scale / gate at column C + 3 */
  float *v1 = mod, *v2 = mod + C + 3;
  double *xd = to_double(x, nt), *yd = to_double(y, nt), *rd = to_double(r, nt), *md = to_double(mod, nv);
  double *ref = malloc(nt * sizeof(double));
  /* modulate */
  {
    float *out = ffill(nt, 0), *dx = ffill(nt, GRAD_START), *dm = ffill(nv, GRAD_START);
    sparq_nn_modulate_forward(out, x, v1, v2, ld, B, T, C);
    sparq_nn_modulate_backward(dx, dm, dm + C + 3, r, x, v2, ld, B, T, C);
    cond_ctx c = {xd, yd, md, md + C + 3, B, T, C, ld, false};
    cond_fd_forward(&c, ref);
    expect_forward("modulate", out, ref, nt, FWD_TOL);
    expect_gradient("modulate dinp", cond_fd_forward, &c, xd, nt, rd, nt, dx, GRAD_START);
    expect_gradient("modulate dshift/dscale", cond_fd_forward, &c, md, nv, rd, nt, dm, GRAD_START);
    /* in place */
    float *inplace = ffill(nt, 0);
    memcpy(inplace, x, nt * sizeof(float));
    sparq_nn_modulate_forward(inplace, inplace, v1, v2, ld, B, T, C);
    assert_memory_equal(inplace, out, nt * sizeof(float));
    /* NULL gradients are skipped */
    sparq_nn_modulate_backward(NULL, NULL, NULL, r, x, v2, ld, B, T, C);
    sparq_free(out), sparq_free(dx), sparq_free(dm), sparq_free(inplace);
  }
  /* gated residual */
  {
    float *out = ffill(nt, 0), *dx = ffill(nt, GRAD_START), *dy = ffill(nt, GRAD_START), *dm = ffill(nv, GRAD_START);
    sparq_nn_gated_residual_forward(out, x, v2, y, ld, B, T, C);
    sparq_nn_gated_residual_backward(dx, dm + C + 3, dy, r, v2, y, ld, B, T, C);
    cond_ctx c = {xd, yd, md + C + 3, NULL, B, T, C, ld, true};
    cond_fd_forward(&c, ref);
    expect_forward("gated residual", out, ref, nt, FWD_TOL);
    expect_gradient("gated residual dx", cond_fd_forward, &c, xd, nt, rd, nt, dx, GRAD_START);
    expect_gradient("gated residual dy", cond_fd_forward, &c, yd, nt, rd, nt, dy, GRAD_START);
    /* only columns C + 3 .. of each row are the gate */
    float *dgate = ffill(nv, GRAD_START);
    for (size_t i = 0; i < nv; i++) dgate[i] = dm[i];
    expect_gradient("gated residual dgate", cond_fd_forward, &c, md + C + 3, nv - (size_t)(C + 3), rd, nt,
                    dgate + C + 3, GRAD_START);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < C + 3; i++) assert_true(dm[b * ld + i] == GRAD_START); /* untouched */
    float *inplace = ffill(nt, 0);
    memcpy(inplace, x, nt * sizeof(float));
    sparq_nn_gated_residual_forward(inplace, inplace, v2, y, ld, B, T, C);
    assert_memory_equal(inplace, out, nt * sizeof(float));
    sparq_free(out), sparq_free(dx), sparq_free(dy), sparq_free(dm), sparq_free(dgate), sparq_free(inplace);
  }
  sparq_free(x), sparq_free(y), sparq_free(r), sparq_free(mod);
  free(xd), free(yd), free(rd), free(md), free(ref);
}

/* ------------------------------------------------ patchify, unpatchify */

static void patch_layers(void **state) {
  (void)state;
  const int64_t B = 2, C = 3, H = 6, W = 10, p = 2, gw = W / p, T = (H / p) * gw, K = C * p * p;
  const size_t n = (size_t)(B * C * H * W);
  float *img = ffill(n, 0), *tok = ffill(n, -1), *back = ffill(n, 0), *tok2 = ffill(n, -1);
  for (size_t i = 0; i < n; i++) img[i] = (float)i;
  sparq_nn_patchify_forward(tok, img, B, C, H, W, p);
  sparq_nn_unpatchify_forward(back, tok, B, C, H, W, p);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < p; i++)
          for (int64_t j = 0; j < p; j++) {
            const float pix = img[((b * C + c) * H + (t / gw) * p + i) * W + (t % gw) * p + j];
            /* Conv2d weight order (c, i, j) for patchify; DiT's (i, j, c) for unpatchify */
            assert_true(tok[(b * T + t) * K + (c * p + i) * p + j] == pix);
            tok2[(b * T + t) * K + (i * p + j) * C + c] = pix;
          }
  sparq_nn_unpatchify_forward(back, tok2, B, C, H, W, p);
  assert_memory_equal(back, img, n * sizeof(float));
  /* the backwards are the adjoint permutations, accumulated */
  float *acc = ffill(n, 1.0f);
  sparq_nn_patchify_backward(acc, tok, B, C, H, W, p);
  for (size_t i = 0; i < n; i++) assert_true(acc[i] == img[i] + 1.0f);
  float *tacc = ffill(n, 1.0f);
  sparq_nn_unpatchify_backward(tacc, img, B, C, H, W, p);
  for (size_t i = 0; i < n; i++) assert_true(tacc[i] == tok2[i] + 1.0f);
  sparq_free(img), sparq_free(tok), sparq_free(back), sparq_free(tok2), sparq_free(acc), sparq_free(tacc);
}

/* ----------------------------------------------------- full attention */

typedef struct attn_ctx {
  double *q, *k, *v;
  int64_t B, T, NH, hd;
} attn_ctx;

static void attn_fd_forward(const void *ctx, double *out) {
  const attn_ctx *c = ctx;
  const int64_t C = c->NH * c->hd;
  double s[64];
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t h = 0; h < c->NH; h++)
      for (int64_t i = 0; i < c->T; i++) {
        const double *q = c->q + (b * c->T + i) * C + h * c->hd;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < c->T; j++) { /* every key: no mask */
          const double *k = c->k + (b * c->T + j) * C + h * c->hd;
          double d = 0;
          for (int64_t e = 0; e < c->hd; e++) d += q[e] * k[e];
          s[j] = d / sqrt((double)c->hd);
          mx = fmax(mx, s[j]);
        }
        for (int64_t j = 0; j < c->T; j++) sum += s[j] = exp(s[j] - mx);
        for (int64_t e = 0; e < c->hd; e++) {
          double o = 0;
          for (int64_t j = 0; j < c->T; j++) o += s[j] / sum * c->v[(b * c->T + j) * C + h * c->hd + e];
          out[(b * c->T + i) * C + h * c->hd + e] = o;
        }
      }
}

static void attention_full_layer(void **state) {
  (void)state;
  const int64_t B = 2, T = 7, NH = 2, hd = 5, C = NH * hd;
  const size_t n = (size_t)(B * T * C);
  float *q = frand(n, 30, 0, 1), *k = frand(n, 31, 0, 1), *v = frand(n, 32, 0, 1), *r = frand(n, 33, 0, 1);
  float *out = ffill(n, 0), *lse = ffill((size_t)(B * NH * T), 0);
  float *dq = ffill(n, 0), *dk = ffill(n, 0), *dv = ffill(n, 0);
  assert_int_equal(sparq_nn_attention_full_forward(out, lse, q, k, v, B, T, NH, hd), SPARQ_OK);
  assert_int_equal(sparq_nn_attention_full_backward(dq, dk, dv, r, q, k, v, out, lse, B, T, NH, hd), SPARQ_OK);
  double *qd = to_double(q, n), *kd = to_double(k, n), *vd = to_double(v, n), *rd = to_double(r, n);
  double *ref = malloc(n * sizeof(double));
  attn_ctx c = {qd, kd, vd, B, T, NH, hd};
  attn_fd_forward(&c, ref);
  expect_forward("attention_full", out, ref, n, FWD_TOL);
  expect_gradient("attention_full dq", attn_fd_forward, &c, qd, n, rd, n, dq, 0.0f);
  expect_gradient("attention_full dk", attn_fd_forward, &c, kd, n, rd, n, dk, 0.0f);
  expect_gradient("attention_full dv", attn_fd_forward, &c, vd, n, rd, n, dv, 0.0f);
  /* the causal wrapper is still causal: its first query sees only key 0 */
  float *causal = ffill(n, 0);
  assert_int_equal(sparq_nn_attention_forward(causal, lse, q, k, v, B, T, NH, hd), SPARQ_OK);
  for (int64_t e = 0; e < C; e++) assert_true(fabsf(causal[e] - v[e]) <= 1e-6f);
  assert_int_equal(sparq_nn_attention_full_forward(out, lse, q, k, v, 0, T, NH, hd), SPARQ_ERR_ARG);
  assert_int_equal(sparq_nn_attention_full_forward(out, NULL, q, k, v, B, T, NH, hd), SPARQ_ERR_ARG);
  assert_int_equal(sparq_nn_attention_full_backward(dq, dk, dv, r, q, k, v, out, NULL, B, T, NH, hd), SPARQ_ERR_ARG);
  sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(r), sparq_free(out), sparq_free(lse);
  sparq_free(dq), sparq_free(dk), sparq_free(dv), sparq_free(causal);
  free(qd), free(kd), free(vd), free(rd), free(ref);
}

/* ------------------------------- ISA instantiations and thread counts */

typedef struct outs {
  float *f[16];
  size_t n[16];
  int count;
} outs;

static float *keep(outs *o, size_t n, float v) {
  o->n[o->count] = n;
  return o->f[o->count++] = ffill(n, v);
}

/* Every new layer on sizes that take the parallel paths. */
static void run_layers(outs *o) {
  const int64_t B = 24, T = 49, C = 128, N = B * T, M = 4 * C, L = 6 * C;
  const size_t nt = (size_t)(N * C);
  float *x = frand(nt, 40, 0.1f, 1.2f), *y = frand(nt, 41, 0, 1), *r = frand(nt, 42, 0, 1);
  float *mod = frand((size_t)(B * L), 43, 0, 0.3f), *h = frand((size_t)(N * M), 44, 0, 2);
  float *mean = ffill((size_t)N, 0), *rstd = ffill((size_t)N, 0);
  float *ln = keep(o, nt, 0), *dln = keep(o, nt, 0);
  sparq_nn_layernorm_plain_forward(ln, mean, rstd, x, 1e-6f, N, C);
  sparq_nn_layernorm_plain_backward(dln, r, x, mean, rstd, N, C);
  float *mo = keep(o, nt, 0), *dmo = keep(o, nt, 0), *dmod = keep(o, (size_t)(B * L), 0);
  sparq_nn_modulate_forward(mo, x, mod, mod + C, L, B, T, C);
  sparq_nn_modulate_backward(dmo, dmod, dmod + C, r, x, mod + C, L, B, T, C);
  float *g = keep(o, nt, 0), *dgx = keep(o, nt, 0), *dgy = keep(o, nt, 0);
  sparq_nn_gated_residual_forward(g, x, mod + 2 * C, y, L, B, T, C);
  sparq_nn_gated_residual_backward(dgx, dmod + 2 * C, dgy, r, mod + 2 * C, y, L, B, T, C);
  float *ge = keep(o, (size_t)(N * M), 0), *dge = keep(o, (size_t)(N * M), 0);
  sparq_nn_gelu_tanh_forward(ge, h, (size_t)(N * M));
  sparq_nn_gelu_tanh_backward(dge, h, ge, (size_t)(N * M));
  float *pt = keep(o, nt, 0);
  sparq_nn_patchify_forward(pt, x, B, 2, 112, 28, 4);
  sparq_free(x), sparq_free(y), sparq_free(r), sparq_free(mod), sparq_free(h), sparq_free(mean), sparq_free(rstd);
}

static void compare_runs(outs *a, outs *b, const char *what) {
  static const char *names[] = {"layernorm out", "layernorm dinp", "modulate out",   "modulate dinp",
                                "dshift/dscale/dgate", "gated out", "gated dx",   "gated dy",
                                "gelu_tanh out", "gelu_tanh dinp", "patchify"};
  for (int i = 0; i < a->count; i++) {
    if (memcmp(a->f[i], b->f[i], a->n[i] * sizeof(float)) != 0) fail_msg("%s differs %s", names[i], what);
    sparq_free(a->f[i]), sparq_free(b->f[i]);
  }
}

static void threads_bit_identical(void **state) {
  (void)state;
  const int before = sparq_threads();
  outs o[2] = {0};
  sparq_set_threads(1);
  run_layers(&o[0]);
  sparq_set_threads(2);
  run_layers(&o[1]);
  sparq_set_threads(before);
  compare_runs(&o[0], &o[1], "between 1 and 2 threads");
}

static void isa_levels_agree(void **state) {
  (void)state;
  outs o[2] = {0};
  const sparq_isa top = sparq_isa_active();
  run_layers(&o[0]);
  sparq_set_isa_cap(SPARQ_ISA_SCALAR);
  run_layers(&o[1]);
  sparq_set_isa_cap(top);
  compare_runs(&o[0], &o[1], "between the portable and the AVX-512 kernels");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gelu_tanh_layer),
      cmocka_unit_test(gelu_tanh_matches_reference),
      cmocka_unit_test(layernorm_plain_layer),
      cmocka_unit_test(modulate_and_gate_layers),
      cmocka_unit_test(patch_layers),
      cmocka_unit_test(attention_full_layer),
      cmocka_unit_test(threads_bit_identical),
      cmocka_unit_test(isa_levels_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
