/* AVX-512 pieces shared by the flash_f32 kernels. Include only inside
 * #ifdef SPARQ_HAVE_X86_SIMD; every function carries its own target. */
#ifndef SPARQ_KERNELS_ATTN_FLASH_SIMD_H
#define SPARQ_KERNELS_ATTN_FLASH_SIMD_H

#include <immintrin.h>

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

#endif
