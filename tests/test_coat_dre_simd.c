/* The FP8 optimizer's vector paths against their scalar references: DRE's
 * power function (fp8_dre_pow.h) for accuracy against libm's double pow and
 * for bit equality of its AVX-512 twin, the element-wise DRE maps, the group
 * scans, and whole groups quantised and dequantised at every ISA. Inputs
 * include zeros of both signs, subnormals, FLT_MIN / FLT_MAX, infinities,
 * NaN, the sqrt2 boundary of the log reduction and lengths that leave a
 * partial vector, with and without flush-to-zero. */
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
#include "train/fp8_dre_internal.h"
#include "train/fp8_group_scan.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#endif

/* Bit equality, with every NaN equal to every NaN. */
static bool same(float a, float b) { return (isnan(a) && isnan(b)) || f32_bits(a) == f32_bits(b); }

/* Distance in units in the last place between two finite floats of one sign. */
static int64_t ulps(float a, float b) { return llabs((int64_t)f32_bits(a) - (int64_t)f32_bits(b)); }

static bool simd_available(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  return sparq_isa_active() >= SPARQ_ISA_AVX512;
#else
  return false;
#endif
}

/* Flush-to-zero and denormals-are-zero on (the workers' setting) or off. */
static void set_ftz(bool on) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (on) sparq_thread_set_ftz();
  else _mm_setcsr(_mm_getcsr() & ~(0x8000u | 0x0040u));
#else
  (void)on;
#endif
}

/* Arguments worth special attention, as x of pow(x, e). */
static size_t special_values(float *out) {
  const float list[] = {0.0f, -0.0f, 1.0f, 2.0f, 0.5f, FLT_MIN, FLT_MAX, FLT_TRUE_MIN, 1e-40f, 3e-39f,
                        INFINITY, -INFINITY, NAN, -1.0f, 448.0f, 57344.0f, 1e-30f, 1e30f,
                        1.41421354f /* just below sqrt2 */, 1.41421366f /* just above */, 0.70710677f,
                        0.70710683f, nextafterf(1.0f, 0.0f), nextafterf(1.0f, 2.0f)};
  memcpy(out, list, sizeof list);
  return sizeof list / sizeof list[0];
}

/* ------------------------------------------------------------ accuracy */

/* Against (float) pow in double, which is the correctly rounded float but
 * for double rounding (about 2^-29 of arguments): never more than one ulp
 * away, and one ulp away only near a rounding boundary, i.e. rarely. The
 * arguments cover what DRE evaluates: dequantisation (x = code * scale over
 * 60 decades, e = 1/k in [1/4096, 16]) and expansion (x = |x| / c within
 * the group's range, e = k in [1/16, 4096], results in range). */
static void pow_is_nearly_correctly_rounded(void **state) {
  (void)state;
  set_ftz(true);
  sparq_rng rng = sparq_rng_make(17, 0);
  int64_t worst = 0;
  size_t off = 0, total = 0;
  for (int i = 0; i < 400000; i++) {
    float x, e;
    if (i % 2) {
      x = powf(10.0f, -40.0f + 50.0f * sparq_rng_uniform(&rng));
      e = 1.0f / (1.0f / 16 + floorf(16.0f * 4096.0f * sparq_rng_uniform(&rng)) / 16.0f);
    } else {
      e = 1.0f / 16 + floorf(16.0f * 64.0f * sparq_rng_uniform(&rng)) / 16.0f;
      x = powf(2.0f, (2.0f * sparq_rng_uniform(&rng) - 1.0f) * 100.0f / e);
    }
    const float want = (float)pow((double)x, (double)e);
    const float got = dre_pow_ref(x, e);
    if (want == 0.0f || isinf(want) || fabsf(want) < FLT_MIN) {
      assert_true(same(got, want));
      continue;
    }
    const int64_t d = ulps(got, want);
    if (d > worst) worst = d;
    off += d != 0;
    total++;
  }
  printf("dre_pow: %zu of %zu results one ulp off the correctly rounded float, worst %lld ulp\n", off, total,
         (long long)worst);
  assert_true(worst <= 1);
  assert_true(off * 10000 < total); /* under 1e-4 of the arguments */
}

static void pow_specials(void **state) {
  (void)state;
  for (int f = 0; f < 2; f++) {
    set_ftz(f);
    assert_true(same(dre_pow_ref(0.0f, 2.5f), 0.0f));
    assert_true(same(dre_pow_ref(-0.0f, 0.5f), 0.0f));
    assert_true(same(dre_pow_ref(INFINITY, 3.0f), INFINITY));
    assert_true(isnan(dre_pow_ref(NAN, 1.0f)));
    assert_true(isnan(dre_pow_ref(-2.0f, 1.5f)));
    assert_true(same(dre_pow_ref(1.0f, 4096.0f), 1.0f));
    assert_true(same(dre_pow_ref(4.0f, 0.5f), 2.0f));
    assert_true(same(dre_pow_ref(2.0f, 10.0f), 1024.0f));
    assert_true(same(dre_pow_ref(1e30f, 16.0f), INFINITY)); /* past FLT_MAX */
    assert_true(same(dre_pow_ref(1e-30f, 16.0f), 0.0f));    /* below every subnormal */
  }
  set_ftz(true);
}

/* ------------------------------------------------------ twins, bit for bit */

static void fill_mixed(sparq_rng *rng, float *x, size_t n) {
  float sp[32];
  const size_t ns = special_values(sp);
  for (size_t i = 0; i < n; i++) {
    const uint32_t pick = sparq_rng_u32(rng) % 8;
    if (pick == 0) x[i] = sp[sparq_rng_u32(rng) % ns];
    else if (pick == 1) x[i] = bits_f32(sparq_rng_u32(rng)); /* any bit pattern */
    else x[i] = (sparq_rng_uniform(rng) - 0.5f) * powf(10.0f, 8.0f * sparq_rng_uniform(rng) - 6.0f);
  }
}

static void pow_twins_agree(void **state) {
  (void)state;
  if (!simd_available()) skip();
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_rng rng = sparq_rng_make(5, 1);
  float x[131], got[131];
  const float exps[] = {1.0f / 4096, 1.0f / 16, 0.3f, 0.5f, 1.0f, 1.625f, 2.0f, 3.9375f, 16.0f, 100.0f, 4096.0f};
  for (int f = 0; f < 2; f++) {
    set_ftz(f);
    for (int rep = 0; rep < 300; rep++) {
      const size_t n = 1 + sparq_rng_u32(&rng) % 131;
      fill_mixed(&rng, x, n);
      for (size_t j = 0; j < n; j++) x[j] = fabsf(x[j]);
      const float e = exps[rep % (sizeof exps / sizeof exps[0])];
      dre_pow_n_avx512(x, e, got, n);
      for (size_t j = 0; j < n; j++) {
        if (!same(got[j], dre_pow_ref(x[j], e))) fail_msg("pow(%a, %a): %a vs %a", x[j], e, got[j], dre_pow_ref(x[j], e));
        assert_true(same(dre_pow(x[j], e), dre_pow_ref(x[j], e))); /* the FMA-compiled scalar */
      }
    }
  }
  set_ftz(true);
#endif
}

static void map_twins_agree(void **state) {
  (void)state;
  if (!simd_available()) skip();
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_rng rng = sparq_rng_make(6, 2);
  float x[128], a[128], b[128];
  const struct {
    float scale, k, c;
  } groups[] = {{1.0f, 1.0f, 1.0f}, {3.1e-4f, 1.625f, 2.2e-3f}, {1e-30f, 0.0625f, 5e-20f},
                {2.5f, 4096.0f, 0.99f}, {7e-9f, 3.9375f, 1.3e-6f}, {1e20f, 8.0f, 1e-10f}};
  for (int f = 0; f < 2; f++) {
    set_ftz(f);
    for (int rep = 0; rep < 240; rep++) {
      const size_t n = 1 + sparq_rng_u32(&rng) % 128;
      const size_t gi = (size_t)rep % (sizeof groups / sizeof groups[0]);
      const float scale = groups[gi].scale, k = groups[gi].k, c = groups[gi].c;
      fill_mixed(&rng, x, n);
      memcpy(a, x, n * sizeof(float));
      memcpy(b, x, n * sizeof(float));
      dre_decode_n_ref(a, n, scale, 1.0f / k, c);
      dre_decode_n_avx512(b, n, scale, 1.0f / k, c);
      for (size_t j = 0; j < n; j++)
        if (!same(a[j], b[j])) fail_msg("decode %a (scale %a k %a c %a): %a vs %a", x[j], scale, k, c, a[j], b[j]);
      dre_expand_n_ref(x, a, n, c, k, scale);
      dre_expand_n_avx512(x, b, n, c, k, scale);
      for (size_t j = 0; j < n; j++)
        if (!same(a[j], b[j])) fail_msg("expand %a (scale %a k %a c %a): %a vs %a", x[j], scale, k, c, a[j], b[j]);
    }
  }
  set_ftz(true);
#endif
}

static void scans_agree(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(7, 3);
  float x[128];
  uint8_t codes[128];
  for (int f = 0; f < 2; f++) {
    set_ftz(f);
    for (int rep = 0; rep < 500; rep++) {
      const size_t n = 1 + sparq_rng_u32(&rng) % 128;
      fill_mixed(&rng, x, n);
      if (rep % 7 == 0) memset(x, 0, n * sizeof(float)); /* all zero */
      if (rep % 11 == 0)
        for (size_t j = 0; j < n; j++) x[j] = j % 2 ? -0.0f : 0.0f;
      for (size_t j = 0; j < n; j++) codes[j] = (uint8_t)(sparq_rng_u32(&rng) % 3 ? sparq_rng_u32(&rng) : 0x80u * (j % 2));
      float h1, l1, h2, l2;
      fp8_abs_range_ref(x, n, &h1, &l1);
      fp8_abs_range(x, n, &h2, &l2);
      assert_true(same(h1, h2) && same(l1, l2));
      assert_false(isnan(h1) || isnan(l1)); /* NaNs are skipped */
      assert_int_equal(fp8_count_nonfinite_ref(x, n), fp8_count_nonfinite(x, n));
      uint64_t nz1, z1, nz2, z2;
      fp8_count_zeroed_ref(x, codes, n, &nz1, &z1);
      fp8_count_zeroed(x, codes, n, &nz2, &z2);
      assert_int_equal(nz1, nz2);
      assert_int_equal(z1, z2);
    }
  }
  set_ftz(true);
}

/* Whole groups through the public codec at the widest ISA and at scalar:
 * the same codes, group parameters and dequantised values. */
static void codec_is_isa_independent(void **state) {
  (void)state;
  if (!simd_available()) skip();
  sparq_rng rng = sparq_rng_make(8, 4);
  float x[SPARQ_FP8_GROUP], d1[SPARQ_FP8_GROUP], d2[SPARQ_FP8_GROUP];
  uint8_t c1[SPARQ_FP8_GROUP], c2[SPARQ_FP8_GROUP];
  set_ftz(true);
  for (int rep = 0; rep < 400; rep++) {
    const size_t n = 1 + sparq_rng_u32(&rng) % SPARQ_FP8_GROUP;
    const float top = powf(10.0f, 8.0f * sparq_rng_uniform(&rng) - 10.0f);
    for (size_t j = 0; j < n; j++) {
      x[j] = top * powf(10.0f, -6.0f * sparq_rng_uniform(&rng)) * (rep % 2 && j % 3 ? -1.0f : 1.0f);
      if (rep % 5 == 0 && j % 9 == 0) x[j] = 0.0f;
      if (rep % 13 == 0 && j == n / 2) x[j] = NAN;
    }
    const sparq_fp8_format fmt = rep % 3 ? SPARQ_FP8_E4M3 : SPARQ_FP8_E5M2;
    const bool dre = rep % 4 != 3;
    sparq_fp8_group g1, g2;
    sparq_set_isa_cap(SPARQ_ISA_SCALAR);
    sparq_fp8_quantize_group(x, n, fmt, dre, c1, &g1);
    sparq_fp8_dequantize_group(c1, n, fmt, &g1, d1);
    sparq_set_isa_cap(SPARQ_ISA_AVX512);
    sparq_fp8_quantize_group(x, n, fmt, dre, c2, &g2);
    sparq_fp8_dequantize_group(c2, n, fmt, &g2, d2);
    assert_memory_equal(c1, c2, n);
    assert_true(same(g1.scale, g2.scale) && same(g1.k, g2.k) && same(g1.c, g2.c));
    for (size_t j = 0; j < n; j++) assert_true(same(d1[j], d2[j]));
  }
}

int main(void) {
  sparq_thread_set_ftz();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pow_is_nearly_correctly_rounded),
      cmocka_unit_test(pow_specials),
      cmocka_unit_test(pow_twins_agree),
      cmocka_unit_test(map_twins_agree),
      cmocka_unit_test(scans_agree),
      cmocka_unit_test(codec_is_isa_independent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
