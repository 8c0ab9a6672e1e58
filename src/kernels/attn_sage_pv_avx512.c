/* AVX-512 PV kernels for one key block (scalar twins in attn_sage_pv.c):
 *   BF16: vdpbf16ps, 4 rows x 64 channels = 16 zmm accumulators, one
 *         vpbroadcastd of a P-tilde key pair per row, V packed in key pairs;
 *   U8:   vpdpbusd, same tiling with key quads;
 *   FP16: the FP16 block accumulator emulated exactly in FP32 for CPUs
 *         without AVX512-FP16 (an accuracy mode, about 10x slower).
 * Rows come in multiples of 4, channels in multiples of 32. */
#include "kernels/attn_sage_internal.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define INLINE static inline __attribute__((always_inline))

static inline int32_t load_i32(const void *p) {
  int32_t x;
  memcpy(&x, p, 4);
  return x;
}

/* ------------------------------------------------------------------ BF16 */

/* 4 rows x W vectors of 16 channels starting at channel c0, in the
 * accumulation mode `accum` (constant after inlining). The FP22 modes carry
 * a second set of accumulators for the 32-key step sums, so they run with
 * W = 2 to stay within the 32 zmm registers. */
INLINE TARGET_BF16 void pv_bf16_tile(const uint16_t *p, const uint16_t *v, int64_t dp, int64_t c0, const int W,
                                     float *o, const float *alpha, const sage_accum accum, int npairs) {
  const bool single = accum == SAGE_ACC_SINGLE_F32 || accum == SAGE_ACC_SINGLE_F22;
  const bool f22 = accum == SAGE_ACC_SINGLE_F22 || accum == SAGE_ACC_TWO_F22;
  const int steps = f22 ? 2 : 1, pairs = SAGE_BK / 2 / steps;
  const __m512i mant13 = _mm512_set1_epi32((int)0xFFFFFC00u);
  __m512 acc[4][4], t[4][4];
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < W; w++)
      acc[r][w] = single ? _mm512_mul_ps(_mm512_loadu_ps(o + r * dp + c0 + 16 * w), _mm512_set1_ps(alpha[r]))
                         : _mm512_setzero_ps();
  for (int st = 0; st < steps; st++) {
    for (int r = 0; r < 4; r++)
      for (int w = 0; w < W; w++) t[r][w] = f22 ? _mm512_setzero_ps() : acc[r][w];
    const int end = (st + 1) * pairs < npairs ? (st + 1) * pairs : npairs;
    for (int kk = st * pairs; kk < end; kk++) {
      __m512i vv[4];
      for (int w = 0; w < W; w++) vv[w] = _mm512_loadu_si512(v + (kk * dp + c0 + 16 * w) * 2);
      for (int r = 0; r < 4; r++) {
        const __m512i pb = _mm512_set1_epi32(load_i32(p + r * SAGE_BK + 2 * kk));
        for (int w = 0; w < W; w++) t[r][w] = _mm512_dpbf16_ps(t[r][w], (__m512bh)pb, (__m512bh)vv[w]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int w = 0; w < W; w++)
        acc[r][w] = f22 ? _mm512_castsi512_ps(_mm512_and_si512(
                              _mm512_castps_si512(_mm512_add_ps(acc[r][w], t[r][w])), mant13))
                        : t[r][w];
  }
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < W; w++) {
      float *dst = o + r * dp + c0 + 16 * w;
      if (single) _mm512_storeu_ps(dst, acc[r][w]);
      else _mm512_storeu_ps(dst, _mm512_fmadd_ps(_mm512_loadu_ps(dst), _mm512_set1_ps(alpha[r]), acc[r][w]));
    }
}

INLINE TARGET_BF16 void pv_bf16_rows(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                                     const float *alpha, const sage_accum accum, const uint8_t *pairs) {
  const bool f22 = accum == SAGE_ACC_SINGLE_F22 || accum == SAGE_ACC_TWO_F22;
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const uint16_t *pr = p + r0 * SAGE_BK;
    float *orow = o + r0 * dp;
    const int np = pairs ? pairs[r0 / 4] : SAGE_BK / 2;
    int64_t c0 = 0;
    if (!f22)
      for (; c0 + 64 <= dp; c0 += 64) pv_bf16_tile(pr, v, dp, c0, 4, orow, alpha + r0, accum, np);
    for (; c0 < dp; c0 += 32) pv_bf16_tile(pr, v, dp, c0, 2, orow, alpha + r0, accum, np);
  }
}

TARGET_BF16 void sage_pv_bf16_avx512bf16(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                                         const float *alpha, sage_accum accum, const uint8_t *pairs) {
  switch (accum) {
    case SAGE_ACC_SINGLE_F32: pv_bf16_rows(p, v, rows, dp, o, alpha, SAGE_ACC_SINGLE_F32, pairs); break;
    case SAGE_ACC_SINGLE_F22: pv_bf16_rows(p, v, rows, dp, o, alpha, SAGE_ACC_SINGLE_F22, pairs); break;
    case SAGE_ACC_TWO_F22: pv_bf16_rows(p, v, rows, dp, o, alpha, SAGE_ACC_TWO_F22, pairs); break;
    default: pv_bf16_rows(p, v, rows, dp, o, alpha, SAGE_ACC_TWO_F32, pairs); break;
  }
}

/* -------------------------------------------------------------------- U8 */

INLINE TARGET_VNNI void pv_u8_tile(const uint8_t *p, const int8_t *v, int64_t dp, int64_t c0, const int W, float *o,
                                   const float *alpha) {
  __m512i acc[4][4];
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < W; w++) acc[r][w] = _mm512_setzero_si512();
  for (int kq = 0; kq < SAGE_BK / 4; kq++) {
    __m512i vv[4];
    for (int w = 0; w < W; w++) vv[w] = _mm512_loadu_si512(v + (kq * dp + c0 + 16 * w) * 4);
    for (int r = 0; r < 4; r++) {
      const __m512i pb = _mm512_set1_epi32(load_i32(p + r * SAGE_BK + 4 * kq));
      for (int w = 0; w < W; w++) acc[r][w] = _mm512_dpbusd_epi32(acc[r][w], pb, vv[w]);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < W; w++) {
      float *dst = o + r * dp + c0 + 16 * w;
      _mm512_storeu_ps(dst, _mm512_fmadd_ps(_mm512_loadu_ps(dst), _mm512_set1_ps(alpha[r]), _mm512_cvtepi32_ps(acc[r][w])));
    }
}

TARGET_VNNI void sage_pv_u8_vnni(const uint8_t *p, const int8_t *v, int64_t rows, int64_t dp, float *o,
                                 const float *alpha) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    int64_t c0 = 0;
    for (; c0 + 64 <= dp; c0 += 64) pv_u8_tile(p + r0 * SAGE_BK, v, dp, c0, 4, o + r0 * dp, alpha + r0);
    if (c0 < dp) pv_u8_tile(p + r0 * SAGE_BK, v, dp, c0, 2, o + r0 * dp, alpha + r0);
  }
}

/* ------------------------------------------------------- FP16 emulation */

/* sage_f16_fma on 16 lanes: exact product, TwoSum, round to odd, then one
 * RNE conversion to FP16 and back. */
INLINE TARGET_AVX512 __m512 f16_fma_ps(__m512 acc, __m512 p, __m512 v) {
  const __m512 prod = _mm512_mul_ps(p, v);
  const __m512 s = _mm512_add_ps(acc, prod);
  const __m512 bb = _mm512_sub_ps(s, acc);
  const __m512 e = _mm512_add_ps(_mm512_sub_ps(acc, _mm512_sub_ps(s, bb)), _mm512_sub_ps(prod, bb));
  const __m512i u = _mm512_castps_si512(s);
  const __mmask16 inexact = _mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_NEQ_OQ);
  const __mmask16 even = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(1));
  /* +1 when e and s share a sign (the exact sum lies further from 0), else -1 */
  const __m512i away = _mm512_srai_epi32(_mm512_xor_si512(_mm512_castps_si512(e), u), 31); /* 0 or -1 */
  const __m512i step = _mm512_or_si512(away, _mm512_set1_epi32(1));                          /* 1 or -1 */
  const __m512i odd = _mm512_mask_add_epi32(u, inexact & even, u, step);
  return _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_castsi512_ps(odd), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

TARGET_AVX512 void sage_pv_f16_avx512(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                                      const float *alpha) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    float pf[4][SAGE_BK];
    for (int r = 0; r < 4; r++)
      for (int g = 0; g < SAGE_BK / 16; g++)
        _mm512_storeu_ps(pf[r] + 16 * g,
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + (r0 + r) * SAGE_BK + 16 * g))));
    for (int64_t c0 = 0; c0 < dp; c0 += 16) {
      __m512 acc[4];
      for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_ps();
      for (int k = 0; k < SAGE_BK; k++) {
        const __m512 vf = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + k * dp + c0)));
        for (int r = 0; r < 4; r++) acc[r] = f16_fma_ps(acc[r], _mm512_set1_ps(pf[r][k]), vf);
      }
      for (int r = 0; r < 4; r++) {
        float *dst = o + (r0 + r) * dp + c0;
        _mm512_storeu_ps(dst, _mm512_fmadd_ps(_mm512_loadu_ps(dst), _mm512_set1_ps(alpha[r0 + r]), acc[r]));
      }
    }
  }
}
#endif
