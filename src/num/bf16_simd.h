/* The AVX-512 BF16 encoder shared by the bulk converter (half.c) and the
 * Sage V packer (attn_sage_prep_avx512.c): the same bits as
 * sparq_bf16_from_f32 for every input. */
#ifndef SPARQ_NUM_BF16_SIMD_H
#define SPARQ_NUM_BF16_SIMD_H

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

/* BF16 codes in the low 16 bits of each lane, from integer ops rather than
 * vcvtneps2bf16: that instruction flushes denormal inputs to ±0 whatever
 * MXCSR says (0x007FFFFF gives 0x0000, not 0x0080), so it cannot match the
 * scalar rounding. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static inline __m512i bf16_encode_512(__m512i u) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), _mm512_set1_epi32(0x7F800000));
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
  return _mm512_mask_blend_epi32(nan, r, q);
}
#endif
#endif
