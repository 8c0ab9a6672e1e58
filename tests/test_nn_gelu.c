/* GELU (exact erf): the dispatched kernels (AVX-512, and the portable twin
 * at the scalar and AVX2 caps) against the double-precision references
 * sparq_nn_gelu_forward_ref / backward_ref over a dense sweep (every 1/64
 * in [-10, 10]), random inputs out to the underflow region, and the
 * special values; in-place calls; 1 vs 2 threads.
 *
 * Tolerances. Forward: at most GELU_ULP units in the last place of the
 * reference wherever the reference is a normal float; below that (x < -13,
 * where x Phi(x) underflows and FTZ flushes) within 2^-125 absolutely.
 * Backward: at most GELU_ULP ulp of max(Phi(x), |x phi(x)|), the size of
 * the two terms GELU'(x) = Phi(x) + x phi(x) adds (their sum cancels to 0
 * near x = -0.75, so a relative bound on the sum means nothing there).
 * Measured on every float in [-15, 15] (2.16e9 inputs; beyond, the results
 * are exactly x and -0): the AVX-512 forward is within 1 ulp on 98.8% of
 * them, 4 ulp on 13648 and 5 ulp (the worst) on 46; its backward within 5.
 * The portable twin (double inside): 1 and 2 on every fifth float. */
#include <float.h>
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

#define GELU_ULP 6
#define TINY 0x1p-125

/* Position of a float on the ordered integer line (+0 and -0 both 0), so
 * the distance of two finite floats is their ulp distance. */
static int64_t ordinal(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i < 0 ? (int64_t)INT32_MIN - i : i;
}

/* The sweep: every 1/64 in [-10, 10], the special values, and random
 * inputs (normal with sd 3, and uniform over [-15, 15] into the tails). */
static float *make_inputs(size_t *count) {
  const float specials[] = {0.0f,      -0.0f,     INFINITY,  -INFINITY, NAN,      -NAN,      FLT_MAX, -FLT_MAX,
                            1e30f,     -1e30f,    FLT_MIN,   -FLT_MIN,  1e-30f,   -1e-30f,   1e-40f,  -1e-40f,
                            13.0f,     -13.0f,    14.0f,     -14.0f,    14.5f,    -14.5f,    15.0f,   -15.0f,
                            16.0f,     -16.0f,    -12.95f,   -13.2f,    5.3f,     -0.7518f,  1e-3f,   -1e-3f,
                            0x1p-20f, -0x1p-20f, 100.0f,    -100.0f};
  const size_t ns = sizeof specials / sizeof specials[0], nsweep = 20 * 64 + 1, nrand = 40000;
  const size_t n = ns + nsweep + nrand;
  float *x = sparq_alloc(n * sizeof(float), "gelu inputs");
  memcpy(x, specials, sizeof specials);
  for (size_t i = 0; i < nsweep; i++) x[ns + i] = -10.0f + (float)i / 64.0f;
  sparq_rng rng = sparq_rng_make(2024, 1);
  sparq_rng_fill_normal(&rng, x + ns + nsweep, nrand / 2, 0.0f, 3.0f);
  sparq_rng_fill_uniform(&rng, x + ns + nsweep + nrand / 2, nrand / 2, -15.0f, 15.0f);
  *count = n;
  return x;
}

static double scale_of_grad(double x) {
  const double phi = 0.5 * erfc(-x / sqrt(2.0)), xp = fabs(x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI));
  return phi > xp ? phi : xp;
}

/* ulp of a positive double at float precision */
static double float_ulp(double v) { return ldexp(1.0, ilogb(v) - 23); }

static void check_level(const char *level, const float *x, size_t n) {
  float *out = sparq_alloc(n * sizeof(float), "out"), *ref = sparq_alloc(n * sizeof(float), "ref");
  float *g = sparq_calloc(n, sizeof(float), "g"), *gref = sparq_calloc(n, sizeof(float), "gref");
  float *one = sparq_alloc(n * sizeof(float), "one");
  for (size_t i = 0; i < n; i++) one[i] = 1.0f;
  sparq_nn_gelu_forward(out, x, n);
  sparq_nn_gelu_forward_ref(ref, x, n);
  sparq_nn_gelu_backward(g, x, one, n);
  sparq_nn_gelu_backward_ref(gref, x, one, n);
  int64_t worst = 0;
  double worst_g = 0;
  for (size_t i = 0; i < n; i++) {
    const float xi = x[i];
    if (isnan(xi)) {
      if (!isnan(out[i]) || !isnan(g[i])) fail_msg("%s: GELU(NaN) = %g, GELU'(NaN) = %g", level, out[i], g[i]);
      continue;
    }
    if (isinf(xi)) {
      const bool ok = xi > 0 ? out[i] == INFINITY && g[i] == 1.0f : out[i] == 0.0f && g[i] == 0.0f;
      if (!ok) fail_msg("%s: GELU(%g) = %g, GELU' = %g", level, xi, out[i], g[i]);
      continue;
    }
    if (fabsf(ref[i]) >= 0x1p-126f) {
      const int64_t d = llabs(ordinal(out[i]) - ordinal(ref[i]));
      worst = d > worst ? d : worst;
      if (d > GELU_ULP)
        fail_msg("%s: GELU(%.9g) = %.9g, reference %.9g (%lld ulp)", level, xi, out[i], ref[i], (long long)d);
    } else if (!(fabs((double)out[i] - ref[i]) <= TINY)) {
      fail_msg("%s: GELU(%.9g) = %.9g, reference %.9g (underflow region)", level, xi, out[i], ref[i]);
    }
    const double s = scale_of_grad(xi), e = fabs((double)g[i] - gref[i]);
    if (s >= 0x1p-126) {
      worst_g = fmax(worst_g, e / float_ulp(s));
      if (e > GELU_ULP * float_ulp(s))
        fail_msg("%s: GELU'(%.9g) = %.9g, reference %.9g (%.1f ulp of %.3g)", level, xi, g[i], gref[i],
                 e / float_ulp(s), s);
    } else if (!(e <= TINY)) {
      fail_msg("%s: GELU'(%.9g) = %.9g, reference %.9g (underflow region)", level, xi, g[i], gref[i]);
    }
  }
  if (getenv("NN_TEST_VERBOSE")) printf("%s: forward %lld ulp, backward %.2f ulp\n", level, (long long)worst, worst_g);

  /* overwrite: dinp = dout GELU'(x) with random dout, whatever dinp held */
  sparq_rng rng = sparq_rng_make(7, 7);
  float *d0 = sparq_alloc(n * sizeof(float), "d0"), *dout = sparq_alloc(n * sizeof(float), "dout");
  sparq_rng_fill_normal(&rng, d0, n, 0, 1);
  sparq_rng_fill_normal(&rng, dout, n, 0, 1);
  memcpy(g, d0, n * sizeof(float));
  memcpy(gref, d0, n * sizeof(float));
  sparq_nn_gelu_backward(g, x, dout, n);
  sparq_nn_gelu_backward_ref(gref, x, dout, n);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) continue;
    const double bound = 1e-6 * fabs(dout[i]) * scale_of_grad(x[i]) + TINY;
    if (!(fabs((double)g[i] - gref[i]) <= bound))
      fail_msg("%s: GELU'(%.9g) * dout: %.9g, reference %.9g", level, x[i], g[i], gref[i]);
  }
  sparq_free(out), sparq_free(ref), sparq_free(g), sparq_free(gref), sparq_free(one), sparq_free(d0), sparq_free(dout);
}

static void gelu_matches_reference_at_every_isa(void **state) {
  (void)state;
  size_t n;
  float *x = make_inputs(&n);
  const sparq_isa top = sparq_isa_active();
  const sparq_isa levels[] = {SPARQ_ISA_SCALAR, SPARQ_ISA_AVX2, SPARQ_ISA_AVX512};
  for (int l = 0; l < 3; l++) {
    if (levels[l] > top) continue;
    sparq_set_isa_cap(levels[l]);
    check_level(sparq_isa_name(levels[l]), x, n);
    /* every length mod the vector width reaches the tail code */
    for (size_t len = 1; len <= 70; len++) check_level(sparq_isa_name(levels[l]), x + 40 + len, len);
  }
  sparq_set_isa_cap(top);
  sparq_free(x);
}

static void gelu_special_values(void **state) {
  (void)state;
  const float x[] = {INFINITY, -INFINITY, NAN, 0.0f, 20.0f, -20.0f};
  float y[6], g[6] = {0}, one[6] = {1, 1, 1, 1, 1, 1};
  sparq_nn_gelu_forward(y, x, 6);
  sparq_nn_gelu_backward(g, x, one, 6);
  assert_true(y[0] == INFINITY && y[1] == 0.0f && isnan(y[2]) && y[3] == 0.0f && y[4] == 20.0f && y[5] == 0.0f);
  assert_true(g[0] == 1.0f && g[1] == 0.0f && isnan(g[2]) && g[4] == 1.0f && g[5] == 0.0f);
  assert_true(fabsf(g[3] - 0.5f) <= 0x1p-23f); /* GELU'(0) = 1/2 within 2 ulp */
}

/* out may alias inp; dinp may alias dout. */
static void gelu_in_place(void **state) {
  (void)state;
  const size_t n = 1000;
  float *x = sparq_alloc(n * sizeof(float), "x"), *y = sparq_alloc(n * sizeof(float), "y");
  float *g = sparq_calloc(n, sizeof(float), "g"), *d = sparq_alloc(n * sizeof(float), "d");
  sparq_rng rng = sparq_rng_make(3, 3);
  sparq_rng_fill_normal(&rng, x, n, 0, 2);
  sparq_rng_fill_normal(&rng, d, n, 0, 1);
  sparq_nn_gelu_forward(y, x, n);
  memset(g, 0x7f, n * sizeof(float)); /* overwritten, never read */
  sparq_nn_gelu_backward(g, x, d, n); /* g = d GELU'(x) */
  sparq_nn_gelu_backward(d, x, d, n); /* the same, in place */
  assert_memory_equal(g, d, n * sizeof(float));
  sparq_nn_gelu_forward(x, x, n);
  assert_memory_equal(x, y, n * sizeof(float));
  sparq_free(x), sparq_free(y), sparq_free(g), sparq_free(d);
}

static void gelu_threads_bit_identical(void **state) {
  (void)state;
  const size_t n = 100003; /* several chunks and a ragged end */
  const int before = sparq_threads();
  float *x = sparq_alloc(n * sizeof(float), "x"), *d = sparq_alloc(n * sizeof(float), "d");
  sparq_rng rng = sparq_rng_make(5, 5);
  sparq_rng_fill_normal(&rng, x, n, 0, 3);
  sparq_rng_fill_normal(&rng, d, n, 0, 1);
  float *y[2], *g[2];
  for (int t = 0; t < 2; t++) {
    sparq_set_threads(t + 1);
    y[t] = sparq_alloc(n * sizeof(float), "y");
    g[t] = sparq_calloc(n, sizeof(float), "g");
    sparq_nn_gelu_forward(y[t], x, n);
    sparq_nn_gelu_backward(g[t], x, d, n);
  }
  sparq_set_threads(before);
  assert_memory_equal(y[0], y[1], n * sizeof(float));
  assert_memory_equal(g[0], g[1], n * sizeof(float));
  sparq_free(x), sparq_free(d), sparq_free(y[0]), sparq_free(y[1]), sparq_free(g[0]), sparq_free(g[1]);
}

int main(void) {
  sparq_set_threads(0); /* FTZ/DAZ in every worker, as the CLI runs */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gelu_matches_reference_at_every_isa),
      cmocka_unit_test(gelu_special_values),
      cmocka_unit_test(gelu_in_place),
      cmocka_unit_test(gelu_threads_bit_identical),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
