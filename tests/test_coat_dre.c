/* COAT's FP8 group codec (spec coat-fp8.md sections 1-3, invariants 9.1-9.4):
 * what test_num_formats leaves of 9.1 (an explicit monotonicity walk, the
 * spec's closed-form tables, -0), the plain per-group error bound, the DRE
 * round trip and its edge cases, and DRE against plain quantisation on a
 * fixture of Adam moments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num/float_bits.h"
#include "sparq/sparq.h"

static uint8_t enc(sparq_fp8_format f, float x) {
  return f == SPARQ_FP8_E5M2 ? sparq_e5m2_from_f32(x) : sparq_e4m3_from_f32(x);
}
static float dec(sparq_fp8_format f, uint8_t c) { return f == SPARQ_FP8_E5M2 ? sparq_e5m2_to_f32(c) : sparq_e4m3_to_f32(c); }
static bool is_nan_code(sparq_fp8_format f, uint8_t c) {
  return f == SPARQ_FP8_E5M2 ? (c & 0x7F) > 0x7C : (c & 0x7F) == 0x7F;
}

/* ----------------------------------------------------------- 9.1 gaps */

/* The spec's closed forms, literally: E4M3 (-1)^s 2^(e-7) (1 + m/8),
 * subnormals 2^-6 m/8; E5M2 (-1)^s 2^(e-15) (1 + m/4), subnormals
 * 2^-14 m/4 (e = 31 is inf / NaN). */
static void closed_form_tables(void **state) {
  (void)state;
  for (unsigned code = 0; code < 256; code++) {
    const unsigned s = code >> 7;
    const double sign = s ? -1.0 : 1.0;
    {
      const unsigned e = (code >> 3) & 15, m = code & 7;
      if (!(e == 15 && m == 7)) {
        const double want = e ? sign * pow(2.0, (double)e - 7) * (1 + m / 8.0) : sign * pow(2.0, -6) * (m / 8.0);
        const float got = sparq_e4m3_to_f32((uint8_t)code);
        if ((double)got != want || (signbit(got) != 0) != (s != 0)) fail_msg("E4M3 0x%02x: %a, want %a", code, (double)got, want);
      }
    }
    {
      const unsigned e = (code >> 2) & 31, m = code & 3;
      if (e != 31) {
        const double want = e ? sign * pow(2.0, (double)e - 15) * (1 + m / 4.0) : sign * pow(2.0, -14) * (m / 4.0);
        const float got = sparq_e5m2_to_f32((uint8_t)code);
        if ((double)got != want || (signbit(got) != 0) != (s != 0)) fail_msg("E5M2 0x%02x: %a, want %a", code, (double)got, want);
      }
    }
  }
  assert_int_equal(sparq_e4m3_from_f32(-0.0f), 0x80);
  assert_int_equal(sparq_e5m2_from_f32(-0.0f), 0x80);
  assert_int_equal(f32_bits(sparq_e4m3_to_f32(0x80)), 0x80000000u);
  assert_int_equal(f32_bits(sparq_e5m2_to_f32(0x80)), 0x80000000u);
}

static int cmp_float(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Encoding is monotone: over a sorted walk through every code value, the
 * neighbours of each, the midpoints, values past the max and random
 * floats, the decoded value of the code never decreases. */
static void encoding_is_monotone(void **state) {
  (void)state;
  const sparq_fp8_format fmts[2] = {SPARQ_FP8_E4M3, SPARQ_FP8_E5M2};
  for (int f = 0; f < 2; f++) {
    const size_t cap = 256 * 6 + 20000;
    float *x = malloc(cap * sizeof *x);
    size_t n = 0;
    for (unsigned c = 0; c < 256; c++) {
      if (is_nan_code(fmts[f], (uint8_t)c)) continue;
      const float v = dec(fmts[f], (uint8_t)c);
      if (!isfinite(v)) continue;
      x[n++] = v;
      x[n++] = nextafterf(v, INFINITY);
      x[n++] = nextafterf(v, -INFINITY);
      const float up = dec(fmts[f], (uint8_t)(c + 1));
      if (c != 127 && c != 255 && isfinite(up)) x[n++] = (v + up) / 2;
    }
    const float fmax = sparq_fp8_max(fmts[f]);
    sparq_rng rng = sparq_rng_make(3, (uint64_t)f);
    while (n < cap) {
      const float u = sparq_rng_uniform(&rng) * 2 - 1;
      x[n++] = u * 2.5f * fmax * powf(2.0f, -20.0f * sparq_rng_uniform(&rng));
    }
    qsort(x, n, sizeof *x, cmp_float);
    float prev = -INFINITY;
    for (size_t i = 0; i < n; i++) {
      const float v = dec(fmts[f], enc(fmts[f], x[i]));
      if (v < prev) fail_msg("%s: %a encodes below the value before it", sparq_fp8_format_name(fmts[f]), (double)x[i]);
      if (fabsf(v) > fmax) fail_msg("%s: %a does not saturate", sparq_fp8_format_name(fmts[f]), (double)x[i]);
      prev = v;
    }
    free(x);
  }
}

/* ------------------------------------------------------------ helpers */

/* A group of n values with magnitudes spread over `decades`, random signs,
 * and every `zero_every`-th element exactly 0 (0 = none). */
static void make_group(float *x, size_t n, uint64_t seed, double decades, size_t zero_every, bool positive) {
  sparq_rng rng = sparq_rng_make(seed, 11);
  const float top = powf(10.0f, 4.0f * sparq_rng_uniform(&rng) - 2.0f);
  for (size_t i = 0; i < n; i++) {
    float v = top * powf(10.0f, -(float)decades * sparq_rng_uniform(&rng));
    if (!positive && (sparq_rng_u32(&rng) & 1)) v = -v;
    x[i] = zero_every && i % zero_every == zero_every - 1 ? 0.0f : v;
  }
}

/* --------------------------------------------------------------- 9.2 */

/* Plain per-group: in the scaled domain x / scale, every value in the
 * format's normal range comes back within half an ulp: 2^-4 relative for
 * E4M3, 2^-3 for E5M2. */
static void plain_error_bound(void **state) {
  (void)state;
  const sparq_fp8_format fmts[2] = {SPARQ_FP8_E4M3, SPARQ_FP8_E5M2};
  const float min_normal[2] = {0x1p-6f, 0x1p-14f}, bound[2] = {0x1p-4f, 0x1p-3f};
  for (int f = 0; f < 2; f++) {
    size_t checked = 0;
    double worst = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
      float x[SPARQ_FP8_GROUP], back[SPARQ_FP8_GROUP];
      uint8_t codes[SPARQ_FP8_GROUP];
      const size_t n = seed % 7 == 0 ? 1 + seed % SPARQ_FP8_GROUP : SPARQ_FP8_GROUP;
      make_group(x, n, seed, 1.0 + (double)(seed % 6), 0, false);
      sparq_fp8_group g;
      sparq_fp8_quantize_group(x, n, fmts[f], false, codes, &g);
      assert_true(g.k == 1.0f && g.c == 1.0f && g.scale > 0);
      sparq_fp8_dequantize_group(codes, n, fmts[f], &g, back);
      for (size_t i = 0; i < n; i++) {
        const float y = x[i] / g.scale, q = dec(fmts[f], codes[i]);
        assert_true(back[i] == q * g.scale);
        if (fabsf(y) < min_normal[f]) continue;
        const double rel = fabs((double)q - (double)y) / fabs((double)y);
        if (rel > worst) worst = rel;
        if (rel > bound[f]) fail_msg("%s: %a scaled %a comes back %a (%.4g relative)", sparq_fp8_format_name(fmts[f]),
                                     (double)x[i], (double)y, (double)q, rel);
        checked++;
      }
    }
    assert_true(checked > 10000);
    assert_true(worst > bound[f] / 2); /* the bound is nearly reached: the check is not vacuous */
  }
  /* an all-zero group gets a positive scale and comes back as zeros */
  float z[5] = {0}, back[5];
  uint8_t codes[5];
  sparq_fp8_group g;
  sparq_fp8_quantize_group(z, 5, SPARQ_FP8_E4M3, false, codes, &g);
  assert_true(g.scale > 0 && g.k == 1.0f && g.c == 1.0f);
  sparq_fp8_dequantize_group(codes, 5, SPARQ_FP8_E4M3, &g, back);
  for (int i = 0; i < 5; i++) assert_true(back[i] == 0.0f);
}

/* --------------------------------------------------------------- 9.3 */

/* Returns whether the max came back bit-exact (it must be within an ulp). */
static bool check_round_trip(const float *x, size_t n, sparq_fp8_format fmt, const char *what) {
  uint8_t codes[SPARQ_FP8_GROUP];
  float back[SPARQ_FP8_GROUP];
  sparq_fp8_group g;
  sparq_fp8_quantize_group(x, n, fmt, true, codes, &g);
  sparq_fp8_dequantize_group(codes, n, fmt, &g, back);
  if (!(g.k * 16 == floorf(g.k * 16)) || !(g.k >= 1.0f / 16) || !(g.k <= 4096))
    fail_msg("%s: k = %a is not a multiple of 1/16 in [1/16, 4096]", what, (double)g.k);
  float amax = 0;
  size_t imax = 0;
  for (size_t i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) amax = fabsf(x[i]), imax = i;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(back[i])) fail_msg("%s: element %zu comes back %a", what, i, (double)back[i]);
    if (x[i] == 0) {
      if (back[i] != 0) fail_msg("%s: zero element %zu comes back %a", what, i, (double)back[i]);
      continue;
    }
    if (back[i] == 0) fail_msg("%s: element %zu = %a comes back 0 (k %g)", what, i, (double)x[i], (double)g.k);
    if (signbit(back[i]) != signbit(x[i])) fail_msg("%s: element %zu changed sign", what, i);
  }
  const float b = fabsf(back[imax]);
  if (b != amax && b != nextafterf(amax, 0.0f) && b != nextafterf(amax, INFINITY))
    fail_msg("%s: the max %a comes back %a (k %g, c %a, scale %a)", what, (double)amax, (double)back[imax],
             (double)g.k, (double)g.c, (double)g.scale);
  return b == amax;
}

static void dre_round_trip(void **state) {
  (void)state;
  const sparq_fp8_format fmts[2] = {SPARQ_FP8_E4M3, SPARQ_FP8_E5M2};
  char what[128];
  size_t exact = 0, total = 0;
  for (int f = 0; f < 2; f++)
    for (uint64_t seed = 0; seed < 2000; seed++) {
      float x[SPARQ_FP8_GROUP];
      const size_t n = seed % 5 == 0 ? 1 + seed % SPARQ_FP8_GROUP : SPARQ_FP8_GROUP;
      /* ranges from 1 decade to 12 (k from ~16 down to below 1/2) */
      const double decades = 0.05 + (double)(seed % 13);
      make_group(x, n, seed, decades, seed % 3 == 0 ? 5 : 0, seed % 4 == 1);
      snprintf(what, sizeof what, "%s seed %llu (n %zu, %.2f decades)", sparq_fp8_format_name(fmts[f]),
               (unsigned long long)seed, n, decades);
      exact += check_round_trip(x, n, fmts[f], what);
      total++;
    }
  /* the max comes back bit-exact but for the rare groups where the (c,
   * scale) lattice steps over it (coat.h), and then within one ulp */
  print_message("max bit-exact in %zu of %zu groups\n", exact, total);
  assert_true(exact >= total - total / 200);
}

static void dre_k_for_max_1_min_1e3(void **state) {
  (void)state;
  float x[SPARQ_FP8_GROUP];
  for (int i = 0; i < SPARQ_FP8_GROUP; i++) x[i] = (i % 2 ? -1.0f : 1.0f) * (0.001f + 0.999f * (float)i / 127.0f);
  x[0] = 1e-3f, x[127] = -1.0f, x[5] = 0.0f; /* the zero does not count as the min */
  uint8_t codes[SPARQ_FP8_GROUP];
  sparq_fp8_group g;
  sparq_fp8_quantize_group(x, SPARQ_FP8_GROUP, SPARQ_FP8_E4M3, true, codes, &g);
  assert_true(g.k == 1.625f);
  /* the centre is the geometric mean of the range (to within the max fit's ulps) */
  assert_true(fabsf(g.c - sqrtf(1e-3f)) <= 4 * (nextafterf(g.c, INFINITY) - g.c));
  assert_int_equal(codes[127], 0xFE); /* -448 */
  assert_true(check_round_trip(x, SPARQ_FP8_GROUP, SPARQ_FP8_E4M3, "max 1, min 1e-3"));
  /* the smallest lands on 448 / 1000^1.625, a subnormal code well above 0 */
  assert_true(codes[0] != 0);
}

static void dre_edge_groups(void **state) {
  (void)state;
  const sparq_fp8_format fmts[2] = {SPARQ_FP8_E4M3, SPARQ_FP8_E5M2};
  for (int f = 0; f < 2; f++) {
    float x[SPARQ_FP8_GROUP], back[SPARQ_FP8_GROUP];
    uint8_t codes[SPARQ_FP8_GROUP];
    sparq_fp8_group g;
    /* all zero: zero codes, k = 1, c = 1, scale = 1 */
    memset(x, 0, sizeof x);
    memset(codes, 0xAA, sizeof codes);
    sparq_fp8_quantize_group(x, 100, fmts[f], true, codes, &g);
    assert_true(g.k == 1.0f && g.c == 1.0f && g.scale == 1.0f);
    sparq_fp8_dequantize_group(codes, 100, fmts[f], &g, back);
    for (int i = 0; i < 100; i++) assert_true(codes[i] == 0 && back[i] == 0.0f);
    /* constant groups, with and without signs: k = 1, every element exact */
    const float consts[4] = {3.0f, 1e-20f, 7.5e15f, 0.1f};
    for (int c = 0; c < 4; c++) {
      for (int i = 0; i < 77; i++) x[i] = i % 3 ? consts[c] : -consts[c];
      sparq_fp8_quantize_group(x, 77, fmts[f], true, codes, &g);
      assert_true(g.k == 1.0f);
      sparq_fp8_dequantize_group(codes, 77, fmts[f], &g, back);
      for (int i = 0; i < 77; i++)
        if (back[i] != x[i]) fail_msg("constant %g: element %d comes back %a", (double)consts[c], i, (double)back[i]);
    }
    /* nearly constant: R within a few ulps of 1 (k hits the cap); nothing
     * underflows, the max is exact, the rest within FP32 noise */
    for (int i = 0; i < 128; i++) x[i] = nextafterf(1.0f, (i % 2) ? INFINITY : 0.0f);
    x[7] = 1.0f;
    check_round_trip(x, 128, fmts[f], "nearly constant");
    sparq_fp8_quantize_group(x, 128, fmts[f], true, codes, &g);
    assert_true(g.k == 4096.0f);
    sparq_fp8_dequantize_group(codes, 128, fmts[f], &g, back);
    for (int i = 0; i < 128; i++) assert_true(fabsf(back[i] - x[i]) <= 1e-6f);
    /* one element; two of them; a group spanning most of FP32's range */
    x[0] = -2.5e-7f;
    check_round_trip(x, 1, fmts[f], "one element");
    x[0] = 1e-30f, x[1] = 1e30f;
    check_round_trip(x, 2, fmts[f], "1e-30 and 1e30");
    for (int i = 0; i < 128; i++) x[i] = powf(10.0f, -30.0f + 60.0f * (float)i / 127.0f);
    check_round_trip(x, 128, fmts[f], "60 decades");
    sparq_fp8_quantize_group(x, 128, fmts[f], true, codes, &g);
    assert_true(g.k < 1.0f);
  }
}

/* --------------------------------------------------------------- 9.4 */

/* Adam moments of a synthetic run: per-element gradient scales spread over
 * 1.25 decades and a per-element mean direction, so that the moments of a
 * group span about 1e2 (m) to 1e3 (v), as the spec's fixture. */
typedef struct fixture {
  size_t n;
  float *m, *v;
} fixture;

static fixture make_fixture(size_t n) {
  fixture fx = {.n = n, .m = calloc(n, sizeof(float)), .v = calloc(n, sizeof(float))};
  sparq_rng rng = sparq_rng_make(77, 1);
  float *s = malloc(n * sizeof *s), *b = malloc(n * sizeof *b);
  for (size_t i = 0; i < n; i++) {
    s[i] = 1e-3f * powf(10.0f, 1.25f * sparq_rng_uniform(&rng));
    b[i] = (0.2f + 0.8f * sparq_rng_uniform(&rng)) * ((sparq_rng_u32(&rng) & 1) ? 1.0f : -1.0f);
  }
  for (int t = 0; t < 30; t++)
    for (size_t i = 0; i < n; i++) {
      const float g = s[i] * (b[i] + 0.5f * sparq_rng_normal(&rng));
      fx.m[i] = 0.9f * fx.m[i] + 0.1f * g;
      fx.v[i] = 0.95f * fx.v[i] + 0.05f * g * g;
    }
  free(s);
  free(b);
  return fx;
}

/* Relative MSE of m / (sqrt(v) + eps) after quantising both moments. */
static double ratio_relmse(const fixture *fx, sparq_fp8_format fm, sparq_fp8_format fv, bool dre, double *range_m,
                           double *range_v) {
  double err = 0, ref = 0, log_range = 0, log_range_m = 0;
  size_t groups = 0;
  for (size_t at = 0; at < fx->n; at += SPARQ_FP8_GROUP) {
    const size_t n = fx->n - at < SPARQ_FP8_GROUP ? fx->n - at : SPARQ_FP8_GROUP;
    uint8_t cm[SPARQ_FP8_GROUP], cv[SPARQ_FP8_GROUP];
    float m[SPARQ_FP8_GROUP], v[SPARQ_FP8_GROUP];
    sparq_fp8_group gm, gv;
    sparq_fp8_quantize_group(fx->m + at, n, fm, dre, cm, &gm);
    sparq_fp8_quantize_group(fx->v + at, n, fv, dre, cv, &gv);
    sparq_fp8_dequantize_group(cm, n, fm, &gm, m);
    sparq_fp8_dequantize_group(cv, n, fv, &gv, v);
    float lo = INFINITY, hi = 0, mlo = INFINITY, mhi = 0;
    for (size_t i = 0; i < n; i++) {
      const float am = fabsf(fx->m[at + i]);
      if (am > mhi) mhi = am;
      if (am > 0 && am < mlo) mlo = am;
      const double r = fx->m[at + i] / (sqrt(fx->v[at + i]) + 1e-8);
      const double q = m[i] / (sqrt(v[i]) + 1e-8);
      err += (q - r) * (q - r), ref += r * r;
      if (fx->v[at + i] > hi) hi = fx->v[at + i];
      if (fx->v[at + i] < lo) lo = fx->v[at + i];
    }
    log_range += log10(hi / lo);
    log_range_m += log10(mhi / mlo);
    groups++;
  }
  if (range_v) *range_v = pow(10.0, log_range / (double)groups);
  if (range_m) *range_m = pow(10.0, log_range_m / (double)groups);
  return err / ref;
}

static void dre_beats_plain(void **state) {
  (void)state;
  fixture fx = make_fixture(128 * 200 + 77);
  double range_m = 0, range_v = 0;
  const double plain = ratio_relmse(&fx, SPARQ_FP8_E4M3, SPARQ_FP8_E4M3, false, &range_m, &range_v);
  const double dre = ratio_relmse(&fx, SPARQ_FP8_E4M3, SPARQ_FP8_E4M3, true, NULL, NULL);
  const double dre_m5 = ratio_relmse(&fx, SPARQ_FP8_E5M2, SPARQ_FP8_E4M3, true, NULL, NULL);
  const double plain_m5 = ratio_relmse(&fx, SPARQ_FP8_E5M2, SPARQ_FP8_E4M3, false, NULL, NULL);
  print_message("m/sqrt(v) relative MSE: plain E4M3/E4M3 %.3g, DRE E4M3/E4M3 %.3g (%.2fx lower), DRE E5M2/E4M3 %.3g, "
                "plain E5M2/E4M3 %.3g; typical range per group: m %.3g, v %.3g\n",
                plain, dre, plain / dre, dre_m5, plain_m5, range_m, range_v);
  /* the fixture is the spec's: groups spanning about 1e2 to 1e3 */
  assert_true(range_m > 50 && range_m < 5e3 && range_v > 50 && range_v < 5e3);
  assert_true(plain >= 1.5 * dre);
  assert_true(dre < dre_m5);
  assert_true(plain < plain_m5);
  free(fx.m);
  free(fx.v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(closed_form_tables),
      cmocka_unit_test(encoding_is_monotone),
      cmocka_unit_test(plain_error_bound),
      cmocka_unit_test(dre_round_trip),
      cmocka_unit_test(dre_k_for_max_1_min_1e3),
      cmocka_unit_test(dre_edge_groups),
      cmocka_unit_test(dre_beats_plain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
