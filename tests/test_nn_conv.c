/* The image layers of sparq/nn.h: conv2d (im2col + GEMM), 2 x 2 max
 * pooling and ReLU. Every backward against central finite differences of a
 * double-precision forward written here from the definitions (L = sum out
 * * R with R random, so dL/dx is the backward of dout = R), every FP32
 * forward against that double forward, on odd sizes, with and without
 * padding, stride 1 and 2; the accumulate (+=) rule, NULL gradients,
 * argument errors, and 1 vs 2 threads bit-identical. */
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
 * the largest gradient of the check (FP32 rounding of sums of a few hundred
 * terms; h = 1e-6 differences in double are good to about 1e-9). */
#define GRAD_TOL 1e-5
#define FWD_TOL 1e-5

static float *frand(size_t n, uint64_t seed) { return frand_stream(n, seed, 11, 0.0f, 1.0f); }

/* ---------------------------------------------------------------- conv2d */

typedef struct conv_ctx {
  sparq_conv2d_geom g;
  int64_t HO, WO;
  const double *inp, *w, *b;
} conv_ctx;

static void conv_f64(const void *p, double *out) {
  const conv_ctx *c = p;
  const sparq_conv2d_geom *g = &c->g;
  for (int64_t n = 0; n < g->N; n++)
    for (int64_t o = 0; o < g->OC; o++)
      for (int64_t y = 0; y < c->HO; y++)
        for (int64_t x = 0; x < c->WO; x++) {
          double s = c->b ? c->b[o] : 0.0;
          for (int64_t ci = 0; ci < g->C; ci++)
            for (int64_t ky = 0; ky < g->K; ky++)
              for (int64_t kx = 0; kx < g->K; kx++) {
                const int64_t iy = y * g->stride - g->pad + ky, ix = x * g->stride - g->pad + kx;
                if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W) continue;
                s += c->w[((o * g->C + ci) * g->K + ky) * g->K + kx] * c->inp[((n * g->C + ci) * g->H + iy) * g->W + ix];
              }
          out[((n * g->OC + o) * c->HO + y) * c->WO + x] = s;
        }
}

static void check_conv(sparq_conv2d_geom g, bool bias) {
  int64_t HO, WO;
  assert_int_equal(sparq_nn_conv2d_check(&g, &HO, &WO), SPARQ_OK);
  assert_int_equal(HO, (g.H + 2 * g.pad - g.K) / g.stride + 1);
  const size_t ni = (size_t)(g.N * g.C * g.H * g.W), nw = (size_t)(g.OC * g.C * g.K * g.K);
  const size_t no = (size_t)(g.N * g.OC * HO * WO), nwork = sparq_nn_conv2d_work_floats(&g);
  assert_true(nwork > 0);
  float *inp = frand(ni, 1), *w = frand(nw, 2), *b = bias ? frand((size_t)g.OC, 3) : NULL, *r = frand(no, 4);
  float *out = falloc(no), *work = falloc(nwork);
  float *dinp = falloc(ni), *dw = falloc(nw), *db = falloc((size_t)g.OC);
  assert_int_equal(sparq_nn_conv2d_forward(out, work, inp, w, b, &g), SPARQ_OK);
  double *i64 = to_double(inp, ni), *w64 = to_double(w, nw), *b64 = bias ? to_double(b, (size_t)g.OC) : NULL;
  double *o64 = dalloc(no);
  conv_ctx ctx = {g, HO, WO, i64, w64, b64};
  conv_f64(&ctx, o64);
  char what[128];
  snprintf(what, sizeof what, "conv2d N%lld C%lld %lldx%lld OC%lld K%lld S%lld P%lld%s", (long long)g.N,
           (long long)g.C, (long long)g.H, (long long)g.W, (long long)g.OC, (long long)g.K, (long long)g.stride,
           (long long)g.pad, bias ? "" : " no bias");
  expect_forward(what, out, o64, no, FWD_TOL);
  /* garbage in the work area must not matter */
  for (size_t i = 0; i < nwork; i++) work[i] = NAN;
  assert_int_equal(sparq_nn_conv2d_backward(dinp, dw, bias ? db : NULL, work, r, inp, w, &g), SPARQ_OK);
  fd_var vars[3] = {{"inp", i64, ni, dinp}, {"w", w64, nw, dw}, {"bias", b64, (size_t)g.OC, db}};
  fd_check(what, conv_f64, &ctx, r, no, vars, bias ? 3 : 2, GRAD_TOL);
  /* += rule: a second backward doubles every gradient; NULL gradients skip */
  float *dinp2 = falloc(ni), *dw2 = falloc(nw);
  memcpy(dinp2, dinp, ni * sizeof(float));
  memcpy(dw2, dw, nw * sizeof(float));
  assert_int_equal(sparq_nn_conv2d_backward(dinp2, dw2, NULL, work, r, inp, w, &g), SPARQ_OK);
  for (size_t i = 0; i < ni; i++) assert_true(fabsf(dinp2[i] - 2 * dinp[i]) <= 1e-5f * (1 + fabsf(dinp[i])));
  for (size_t i = 0; i < nw; i++) assert_true(fabsf(dw2[i] - 2 * dw[i]) <= 1e-5f * (1 + fabsf(dw[i])));
  float *only = falloc(nw);
  assert_int_equal(sparq_nn_conv2d_backward(NULL, only, NULL, work, r, inp, NULL, &g), SPARQ_OK);
  assert_memory_equal(only, dw, nw * sizeof(float));
  sparq_free(inp), sparq_free(w), sparq_free(b), sparq_free(r), sparq_free(out), sparq_free(work);
  sparq_free(dinp), sparq_free(dw), sparq_free(db), sparq_free(dinp2), sparq_free(dw2), sparq_free(only);
  free(i64), free(w64), free(b64), free(o64);
}

static void conv2d_gradients(void **state) {
  (void)state;
  check_conv((sparq_conv2d_geom){.N = 2, .C = 3, .H = 7, .W = 5, .OC = 4, .K = 3, .stride = 1, .pad = 1}, true);
  check_conv((sparq_conv2d_geom){.N = 1, .C = 2, .H = 9, .W = 8, .OC = 3, .K = 3, .stride = 2, .pad = 0}, true);
  check_conv((sparq_conv2d_geom){.N = 3, .C = 1, .H = 6, .W = 7, .OC = 5, .K = 2, .stride = 1, .pad = 1}, false);
  check_conv((sparq_conv2d_geom){.N = 2, .C = 2, .H = 11, .W = 10, .OC = 3, .K = 5, .stride = 2, .pad = 2}, true);
  check_conv((sparq_conv2d_geom){.N = 1, .C = 1, .H = 3, .W = 3, .OC = 1, .K = 3, .stride = 3, .pad = 0}, true);
  check_conv((sparq_conv2d_geom){.N = 2, .C = 4, .H = 5, .W = 13, .OC = 6, .K = 1, .stride = 1, .pad = 0}, true);
}

static void conv2d_errors(void **state) {
  (void)state;
  sparq_conv2d_geom g = {.N = 1, .C = 1, .H = 4, .W = 4, .OC = 1, .K = 3, .stride = 1, .pad = 3};
  assert_int_equal(sparq_nn_conv2d_check(&g, NULL, NULL), SPARQ_ERR_ARG); /* pad >= K */
  g.pad = 0, g.K = 5;
  assert_int_equal(sparq_nn_conv2d_check(&g, NULL, NULL), SPARQ_ERR_ARG); /* kernel larger than the input */
  assert_int_equal(sparq_nn_conv2d_work_floats(&g), 0);
  g.K = 3, g.stride = 0;
  assert_int_equal(sparq_nn_conv2d_check(&g, NULL, NULL), SPARQ_ERR_ARG);
  g.stride = 1, g.C = 0;
  assert_int_equal(sparq_nn_conv2d_check(&g, NULL, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_nn_conv2d_check(NULL, NULL, NULL), SPARQ_ERR_ARG);
  g.C = 1;
  float x[16] = {0}, w[9] = {0}, out[4], work[76]; /* 2 R CKK + R OC, R = 4, CKK = 9 */
  assert_int_equal(sparq_nn_conv2d_work_floats(&g), 76);
  assert_int_equal(sparq_nn_conv2d_forward(NULL, work, x, w, NULL, &g), SPARQ_ERR_ARG);
  assert_int_equal(sparq_nn_conv2d_forward(out, work, x, w, NULL, &g), SPARQ_OK);
  assert_int_equal(sparq_nn_conv2d_backward(x, NULL, NULL, work, out, x, NULL, &g), SPARQ_ERR_ARG); /* dinp needs w */
  assert_int_equal(sparq_nn_conv2d_backward(NULL, w, NULL, work, out, NULL, w, &g), SPARQ_ERR_ARG); /* dw needs inp */
}

/* --------------------------------------------------------------- maxpool */

typedef struct pool_ctx {
  const double *inp;
  int64_t N, C, H, W;
} pool_ctx;

static void pool_f64(const void *p, double *out) {
  const pool_ctx *c = p;
  const int64_t HO = c->H / 2, WO = c->W / 2;
  for (int64_t pl = 0; pl < c->N * c->C; pl++)
    for (int64_t y = 0; y < HO; y++)
      for (int64_t x = 0; x < WO; x++) {
        const double *q = c->inp + pl * c->H * c->W;
        double m = q[2 * y * c->W + 2 * x];
        m = fmax(m, q[2 * y * c->W + 2 * x + 1]);
        m = fmax(m, q[(2 * y + 1) * c->W + 2 * x]);
        m = fmax(m, q[(2 * y + 1) * c->W + 2 * x + 1]);
        out[(pl * HO + y) * WO + x] = m;
      }
}

static void check_pool(int64_t N, int64_t C, int64_t H, int64_t W) {
  const size_t ni = (size_t)(N * C * H * W), no = (size_t)(N * C * (H / 2) * (W / 2));
  float *inp = frand(ni, 21), *r = frand(no, 22), *out = falloc(no), *dinp = falloc(ni);
  int32_t *arg = sparq_calloc(no ? no : 1, sizeof(int32_t), "argmax");
  sparq_nn_maxpool2_forward(out, arg, inp, N, C, H, W);
  double *i64 = to_double(inp, ni), *o64 = dalloc(no);
  pool_ctx ctx = {i64, N, C, H, W};
  pool_f64(&ctx, o64);
  expect_forward("maxpool2", out, o64, no, FWD_TOL);
  sparq_nn_maxpool2_backward(dinp, r, arg, N, C, H, W);
  fd_var v = {"inp", i64, ni, dinp};
  fd_check("maxpool2", pool_f64, &ctx, r, no, &v, 1, GRAD_TOL);
  /* the dropped odd row and column get no gradient */
  for (int64_t pl = 0; pl < N * C; pl++) {
    if (H % 2)
      for (int64_t x = 0; x < W; x++) assert_true(dinp[(pl * H + H - 1) * W + x] == 0.0f);
    if (W % 2)
      for (int64_t y = 0; y < H; y++) assert_true(dinp[(pl * H + y) * W + W - 1] == 0.0f);
  }
  sparq_free(inp), sparq_free(r), sparq_free(out), sparq_free(dinp), sparq_free(arg);
  free(i64), free(o64);
}

static void maxpool_gradients(void **state) {
  (void)state;
  check_pool(2, 3, 6, 8);
  check_pool(1, 2, 7, 5); /* odd: floor */
  check_pool(3, 1, 3, 3);
}

static void maxpool_ties_and_nan(void **state) {
  (void)state;
  /* one window: ties go to the first maximum; a NaN wins */
  float x[4] = {1, 3, 3, 2}, out[1];
  int32_t arg[1];
  sparq_nn_maxpool2_forward(out, arg, x, 1, 1, 2, 2);
  assert_true(out[0] == 3.0f && arg[0] == 1);
  float g[1] = {2}, d[4] = {1, 1, 1, 1};
  sparq_nn_maxpool2_backward(d, g, arg, 1, 1, 2, 2); /* accumulates */
  assert_true(d[0] == 1 && d[1] == 3 && d[2] == 1 && d[3] == 1);
  x[2] = NAN;
  sparq_nn_maxpool2_forward(out, arg, x, 1, 1, 2, 2);
  assert_true(isnan(out[0]) && arg[0] == 2);
  /* sizes below 2 produce nothing and touch nothing */
  sparq_nn_maxpool2_forward(out, arg, x, 1, 1, 1, 4);
  sparq_nn_maxpool2_backward(d, g, arg, 1, 1, 1, 4);
}

/* ------------------------------------------------------------------ ReLU */

static void relu_f64(const void *p, double *out) {
  const double *const *x = p;
  for (int i = 0; i < 37; i++) out[i] = (*x)[i] > 0 ? (*x)[i] : 0.0;
}

static void relu_layer(void **state) {
  (void)state;
  enum { N = 37 };
  float *x = frand(N, 31), *r = frand(N, 32), out[N], dx[N] = {0};
  for (int i = 0; i < N; i++)
    if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f; /* keep the finite differences off the kink */
  sparq_nn_relu_forward(out, x, N);
  double *x64 = to_double(x, N), o64[N];
  relu_f64(&x64, o64);
  expect_forward("relu", out, o64, N, FWD_TOL);
  /* backward from the output (the in-place way) and from the input agree */
  sparq_nn_relu_backward(dx, out, r, N);
  fd_var v = {"x", x64, N, dx};
  fd_check("relu", relu_f64, &x64, r, N, &v, 1, GRAD_TOL);
  float dx2[N] = {0};
  sparq_nn_relu_backward(dx2, x, r, N);
  assert_memory_equal(dx, dx2, sizeof dx);
  /* in place, NaN passes, gradient at 0 is 0 */
  float y[3] = {-1.0f, 0.0f, NAN}, dy[3] = {0}, one[3] = {1, 1, 1};
  sparq_nn_relu_forward(y, y, 3);
  assert_true(y[0] == 0.0f && y[1] == 0.0f && isnan(y[2]));
  sparq_nn_relu_backward(dy, y, one, 3);
  assert_true(dy[0] == 0.0f && dy[1] == 0.0f);
  sparq_free(x), sparq_free(r);
  free(x64);
}

/* -------------------------------------------------------- 1 vs 2 threads */

/* Sizes past every parallel threshold. */
static void run_layers(float **res, size_t *sizes) {
  const sparq_conv2d_geom g = {.N = 16, .C = 8, .H = 14, .W = 14, .OC = 16, .K = 3, .stride = 1, .pad = 1};
  const size_t ni = (size_t)(16 * 8 * 14 * 14), nw = 16 * 8 * 9, no = (size_t)(16 * 16 * 14 * 14);
  float *inp = frand(ni, 41), *w = frand(nw, 42), *b = frand(16, 43), *r = frand(no, 44);
  float *work = falloc(sparq_nn_conv2d_work_floats(&g));
  sizes[0] = no, sizes[1] = ni, sizes[2] = nw, sizes[3] = 16, sizes[4] = no / 4, sizes[5] = no;
  for (int i = 0; i < 6; i++) res[i] = falloc(sizes[i]);
  assert_int_equal(sparq_nn_conv2d_forward(res[0], work, inp, w, b, &g), SPARQ_OK);
  assert_int_equal(sparq_nn_conv2d_backward(res[1], res[2], res[3], work, r, inp, w, &g), SPARQ_OK);
  int32_t *arg = sparq_alloc(no / 4 * sizeof(int32_t), "argmax");
  sparq_nn_maxpool2_forward(res[4], arg, res[0], 16, 16, 14, 14);
  sparq_nn_relu_backward(res[5], res[0], r, no);
  sparq_nn_maxpool2_backward(res[5], res[4], arg, 16, 16, 14, 14);
  sparq_free(inp), sparq_free(w), sparq_free(b), sparq_free(r), sparq_free(work), sparq_free(arg);
}

static void threads_bit_identical(void **state) {
  (void)state;
  const int before = sparq_threads();
  float *a[6], *b[6];
  size_t n[6];
  sparq_set_threads(1);
  run_layers(a, n);
  sparq_set_threads(2);
  run_layers(b, n);
  sparq_set_threads(before);
  const char *names[] = {"conv out", "conv dinp", "conv dw", "conv dbias", "maxpool out", "relu/maxpool grad"};
  for (int i = 0; i < 6; i++) {
    if (memcmp(a[i], b[i], n[i] * sizeof(float))) fail_msg("%s differs between 1 and 2 threads", names[i]);
    sparq_free(a[i]), sparq_free(b[i]);
  }
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(conv2d_gradients),   cmocka_unit_test(conv2d_errors),
      cmocka_unit_test(maxpool_gradients),  cmocka_unit_test(maxpool_ties_and_nan),
      cmocka_unit_test(relu_layer),         cmocka_unit_test(threads_bit_identical),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
