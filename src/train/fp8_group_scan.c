/* Scalar references and AVX-512 twins of fp8_group_scan.h. */
#include "train/fp8_group_scan.h"

#include <math.h>

#include "sparq/base.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#include "base/simd_mask.h"

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#endif

void fp8_abs_range_ref(const float *x, size_t n, float *amax, float *amin) {
  float hi = 0.0f, lo = INFINITY;
  for (size_t i = 0; i < n; i++) {
    const float a = fabsf(x[i]);
    if (a > hi) hi = a;
    if (a != 0.0f && a < lo) lo = a;
  }
  *amax = hi;
  *amin = lo == INFINITY ? 0.0f : lo;
}

uint64_t fp8_count_nonfinite_ref(const float *x, size_t n) {
  uint64_t c = 0;
  for (size_t i = 0; i < n; i++) c += !isfinite(x[i]);
  return c;
}

void fp8_count_zeroed_ref(const float *x, const uint8_t *codes, size_t n, uint64_t *nonzero, uint64_t *zeroed) {
  uint64_t nz = 0, z = 0;
  for (size_t i = 0; i < n; i++) {
    const int nonz = x[i] != 0.0f;
    nz += (uint64_t)nonz;
    z += (uint64_t)(nonz && (codes[i] & 0x7Fu) == 0);
  }
  *nonzero = nz, *zeroed = z;
}

#ifdef SPARQ_HAVE_X86_SIMD
TARGET_AVX512 static void abs_range_avx512(const float *x, size_t n, float *amax, float *amin) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512 zero = _mm512_setzero_ps();
  __m512 hi = zero, lo = _mm512_set1_ps(INFINITY);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = simd_tail16((int64_t)(n - i));
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_loadu_epi32(k, x + i), magnitude));
    /* a NaN lane compares false both times, as in the reference */
    hi = _mm512_mask_mov_ps(hi, _mm512_cmp_ps_mask(a, hi, _CMP_GT_OQ), a);
    const __mmask16 smaller = _mm512_cmp_ps_mask(a, zero, _CMP_NEQ_OQ) & _mm512_cmp_ps_mask(a, lo, _CMP_LT_OQ);
    lo = _mm512_mask_mov_ps(lo, smaller, a);
  }
  const float h = _mm512_reduce_max_ps(hi), l = _mm512_reduce_min_ps(lo);
  *amax = h;
  *amin = l == INFINITY ? 0.0f : l;
}

TARGET_AVX512 static uint64_t count_nonfinite_avx512(const float *x, size_t n) {
  const __m512i e = _mm512_set1_epi32(0x7F800000);
  uint64_t c = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = simd_tail16((int64_t)(n - i));
    const __m512i u = _mm512_maskz_loadu_epi32(k, x + i);
    c += (uint64_t)__builtin_popcount(_mm512_mask_cmpeq_epi32_mask(k, _mm512_and_si512(u, e), e));
  }
  return c;
}

TARGET_AVX512 static void count_zeroed_avx512(const float *x, const uint8_t *codes, size_t n, uint64_t *nonzero,
                                              uint64_t *zeroed) {
  uint64_t nz = 0, z = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = simd_tail16((int64_t)(n - i));
    const __mmask16 nonz = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, x + i), _mm512_setzero_ps(), _CMP_NEQ_UQ);
    const __m128i c = _mm_maskz_loadu_epi8(k, codes + i);
    const __mmask16 code0 = _mm_testn_epi8_mask(c, _mm_set1_epi8(0x7F));
    nz += (uint64_t)__builtin_popcount(nonz);
    z += (uint64_t)__builtin_popcount(nonz & code0);
  }
  *nonzero = nz, *zeroed = z;
}
#endif

void fp8_abs_range(const float *x, size_t n, float *amax, float *amin) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) {
    abs_range_avx512(x, n, amax, amin);
    return;
  }
#endif
  fp8_abs_range_ref(x, n, amax, amin);
}

uint64_t fp8_count_nonfinite(const float *x, size_t n) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) return count_nonfinite_avx512(x, n);
#endif
  return fp8_count_nonfinite_ref(x, n);
}

void fp8_count_zeroed(const float *x, const uint8_t *codes, size_t n, uint64_t *nonzero, uint64_t *zeroed) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) {
    count_zeroed_avx512(x, codes, n, nonzero, zeroed);
    return;
  }
#endif
  fp8_count_zeroed_ref(x, codes, n, nonzero, zeroed);
}
