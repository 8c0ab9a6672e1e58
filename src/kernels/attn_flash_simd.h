/* AVX-512 pieces shared by the flash_f32 kernels. Include only inside
 * #ifdef SPARQ_HAVE_X86_SIMD; every function carries its own target. */
#ifndef SPARQ_KERNELS_ATTN_FLASH_SIMD_H
#define SPARQ_KERNELS_ATTN_FLASH_SIMD_H

#include <immintrin.h>

#include "kernels/attn_flash.h"

#define FLASH_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define FLASH_INLINE static inline __attribute__((always_inline))

/* 2^x, the vector twin of flash_exp2: round to nearest, Cephes polynomial on
 * |f| <= 1/2, vscalefps for the exponent (0 for very negative x, even the
 * mask). max(-200, x) keeps a NaN x (vmaxps returns its second operand). */
FLASH_AVX512 FLASH_INLINE __m512 flash_exp2_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

/* s[r][i] = sum_k a[r * lda + k] * bt[k * 64 + 16 i ..] for rows r < R and
 * zmm columns i < NC of a packed [dp][64] B^T block: the Q K^T shaped tile
 * of the forward (R = FLASH_RG) and the backward (R <= FLASH_BR), NC loads
 * and R broadcasts feeding R NC FMAs per k. Always inlined with constant R
 * and NC, so s stays in the caller's registers. */
FLASH_AVX512 FLASH_INLINE void flash_abt_tile(const float *a, int64_t lda, const float *bt, int64_t dp,
                                              __m512 s[][4], const int R, const int NC) {
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) s[r][i] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < dp; k++) {
    const float *b = bt + k * 64;
    __m512 bv[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) bv[i] = _mm512_loadu_ps(b + 16 * i);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m512 x = _mm512_set1_ps(a[r * lda + k]);
#pragma GCC unroll 4
      for (int i = 0; i < NC; i++) s[r][i] = _mm512_fmadd_ps(x, bv[i], s[r][i]);
    }
  }
}

#endif
