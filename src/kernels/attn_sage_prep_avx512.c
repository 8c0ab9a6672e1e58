/* AVX-512 kernels of the Sage pre-pass. Scalar twins in attn_sage_prep.c,
 * with the same IEEE operations per element, so identical results (max is
 * exact in any order, and the double sums run per channel in row order as
 * there):
 *   sage_row_finite_avx512  / sage_row_finite_ref
 *   sage_row_add_f64_avx512 / sage_row_add_f64_ref
 *   sage_row_absmax_avx512  / sage_row_absmax_ref
 *   sage_row_quant_avx512   / sage_row_quant_ref
 *   sage_pack_k_avx512      / sage_pack_k_ref
 *   sage_pack_v_bf16_avx512 / sage_pack_v_bf16_ref
 * dp is a multiple of 32 for the quantizer kernels; the others take any dp. */
#include "kernels/attn_sage_internal.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#include "base/simd_mask.h"
#include "num/bf16_simd.h"

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

TARGET_AVX512 bool sage_row_finite_avx512(const float *x, int64_t dp) {
  const __m512i e = _mm512_set1_epi32(0x7F800000);
  __mmask16 bad = 0;
  for (int64_t c = 0; c < dp; c += 16) {
    const __m512i u = _mm512_maskz_loadu_epi32(simd_tail16(dp - c), x + c);
    bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, e), e);
  }
  return bad == 0;
}

TARGET_AVX512 void sage_row_add_f64_avx512(const float *x, int64_t dp, double *acc) {
  for (int64_t c = 0; c < dp; c += 8) {
    const __mmask8 m = (__mmask8)simd_tail16(dp - c);
    const __m512d y = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + c));
    _mm512_mask_storeu_pd(acc + c, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, acc + c), y));
  }
}

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

/* One gather per (16 keys, 4 channels): lane j takes key j's 4 bytes. */
TARGET_AVX512 void sage_pack_k_avx512(const int8_t *k_hat, int64_t nk, int64_t nk_pad, int64_t dp, int8_t *packed,
                                      int32_t *corr) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32((int)dp));
  for (int64_t g = 0; g < nk_pad / 16; g++) {
    const __mmask16 live = nk > g * 16 ? simd_tail16(nk - g * 16) : 0;
    const int8_t *src = k_hat + g * 16 * dp;
    int8_t *dst = packed + g * (dp / 4) * 64;
    for (int64_t c4 = 0; c4 < dp / 4; c4++)
      _mm512_storeu_si512(dst + c4 * 64,
                          _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, rows, src + 4 * c4, 1));
  }
  for (int64_t j = 0; j < nk_pad; j++) {
    __m512i sum = _mm512_setzero_si512();
    for (int64_t c = 0; j < nk && c < dp; c += 16)
      sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(simd_tail16(dp - c), k_hat + j * dp + c)));
    corr[j] = 128 * _mm512_reduce_add_epi32(sum);
  }
}

/* Keys 2i and 2i+1 meet in one 32-bit lane per channel: low half, high half. */
TARGET_AVX512 void sage_pack_v_bf16_avx512(const float *v, int64_t nk, int64_t nk_pad, int64_t dp, uint16_t *dst) {
  for (int64_t j = 0; j < nk_pad; j += 2) {
    uint16_t *out = dst + j * dp;
    for (int64_t c = 0; c < dp; c += 16) {
      const __mmask16 m = simd_tail16(dp - c);
      const __m512i a = j < nk ? bf16_encode_512(_mm512_maskz_loadu_epi32(m, v + j * dp + c)) : _mm512_setzero_si512();
      const __m512i b =
          j + 1 < nk ? bf16_encode_512(_mm512_maskz_loadu_epi32(m, v + (j + 1) * dp + c)) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(out + 2 * c, m, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
    }
  }
}
#endif
