/* The spec's FP16 two-level PV on AVX512-FP16 (Sapphire Rapids and later):
 * vfmadd231ph of a broadcast P-tilde into FP16 accumulators over one 64-key
 * block, then vcvtph2ps and O = alpha O + R in FP32. Exactly the arithmetic
 * that sage_pv_f16_ref and sage_pv_f16_avx512 emulate, so the three agree
 * bit for bit. Built with gcc >= 12 or clang >= 15 (the _Float16 intrinsics). */
#include "kernels/attn_sage_internal.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#if (defined(__clang__) && __clang_major__ >= 15) || (!defined(__clang__) && __GNUC__ >= 12)
#define SAGE_HAVE_FP16_KERNEL 1
#endif

bool sage_pv_f16_hw_built(void) {
#ifdef SAGE_HAVE_FP16_KERNEL
  return true;
#else
  return false;
#endif
}

#ifdef SAGE_HAVE_FP16_KERNEL
#define TARGET_FP16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512fp16,fma")))

/* 4 rows x W vectors of 32 channels from c0. */
static inline __attribute__((always_inline)) TARGET_FP16 void pv_f16_tile(const uint16_t *p, const uint16_t *v,
                                                                          int64_t dp, int64_t c0, const int W,
                                                                          float *o, const float *alpha) {
  __m512h acc[4][2];
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < W; w++) acc[r][w] = _mm512_setzero_ph();
  for (int k = 0; k < SAGE_BK; k++) {
    __m512h vv[2];
    for (int w = 0; w < W; w++) vv[w] = _mm512_castsi512_ph(_mm512_loadu_si512(v + k * dp + c0 + 32 * w));
    for (int r = 0; r < 4; r++) {
      const __m512h pb = _mm512_castsi512_ph(_mm512_set1_epi16((short)p[r * SAGE_BK + k]));
      for (int w = 0; w < W; w++) acc[r][w] = _mm512_fmadd_ph(pb, vv[w], acc[r][w]);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < W; w++) {
      const __m512i bits = _mm512_castph_si512(acc[r][w]);
      const __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(bits));
      const __m512 hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(bits, 1));
      float *dst = o + r * dp + c0 + 32 * w;
      const __m512 a = _mm512_set1_ps(alpha[r]);
      _mm512_storeu_ps(dst, _mm512_fmadd_ps(_mm512_loadu_ps(dst), a, lo));
      _mm512_storeu_ps(dst + 16, _mm512_fmadd_ps(_mm512_loadu_ps(dst + 16), a, hi));
    }
}

TARGET_FP16 void sage_pv_f16_avx512fp16(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                                        const float *alpha) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    int64_t c0 = 0;
    for (; c0 + 64 <= dp; c0 += 64) pv_f16_tile(p + r0 * SAGE_BK, v, dp, c0, 2, o + r0 * dp, alpha + r0);
    if (c0 < dp) pv_f16_tile(p + r0 * SAGE_BK, v, dp, c0, 1, o + r0 * dp, alpha + r0);
  }
}
#else
void sage_pv_f16_avx512fp16(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                            const float *alpha) {
  sage_pv_f16_ref(p, v, rows, dp, o, alpha);
}
#endif
#endif
