/* AVX-512 row kernels of the Sage pre-pass: max |x - s| and the symmetric
 * quantization clamp(round_half_even((x - s) / delta)) of one row. Scalar
 * twins: sage_row_absmax_ref, sage_row_quant_ref (attn_sage_prep.c); the same
 * IEEE operations per element, so identical results (max is exact in any
 * order). dp is a multiple of 32. */
#include "kernels/attn_sage_internal.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

TARGET_AVX512 float sage_row_absmax_avx512(const float *x, const float *s, int64_t dp) {
  __m512 m = _mm512_setzero_ps();
  for (int64_t c = 0; c < dp; c += 16) {
    __m512 y = _mm512_loadu_ps(x + c);
    if (s) y = _mm512_sub_ps(y, _mm512_loadu_ps(s + c));
    m = _mm512_max_ps(_mm512_abs_ps(y), m);
  }
  return _mm512_reduce_max_ps(m);
}

TARGET_AVX512 void sage_row_quant_avx512(const float *x, const float *s, int64_t dp, float delta, float qmax,
                                         int8_t *q) {
  const __m512 d = _mm512_set1_ps(delta), hi = _mm512_set1_ps(qmax), lo = _mm512_set1_ps(-qmax);
  for (int64_t c = 0; c < dp; c += 16) {
    __m512 y = _mm512_loadu_ps(x + c);
    if (s) y = _mm512_sub_ps(y, _mm512_loadu_ps(s + c));
    __m512 v = _mm512_roundscale_ps(_mm512_div_ps(y, d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_max_ps(_mm512_min_ps(v, hi), lo);
    _mm_storeu_si128((__m128i *)(q + c), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
}
#endif
