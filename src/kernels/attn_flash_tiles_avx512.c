/* AVX-512 register tiles of the backward (see attn_flash.h): 6 rows x 64
 * columns in 24 zmm accumulators, fed per step by 4 vector loads and 6
 * broadcasts, the same shape as the forward's QK^T and PV tiles. */
#ifdef SPARQ_HAVE_X86_SIMD
#include "kernels/attn_flash.h"
#include "kernels/attn_flash_simd.h"

#define TARGET FLASH_AVX512
#define INLINE FLASH_INLINE

TARGET static void abt_avx512(const float *a, int64_t lda, const float *bt, int64_t dp, float *c) {
  __m512 s[FLASH_RG][4];
  flash_abt_tile(a, lda, bt, dp, s);
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++)
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) _mm512_storeu_ps(c + r * FLASH_BK + 16 * i, s[r][i]);
}

TARGET INLINE void pv_cols(const float *p, int64_t ldp, const float *v, int64_t ldv, int64_t nk, float *o,
                           int64_t ldo, const int NC) {
  __m512 acc[FLASH_RG][4];
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++)
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) acc[r][i] = _mm512_loadu_ps(o + r * ldo + 16 * i);
#pragma GCC unroll 2
  for (int64_t j = 0; j < nk; j++) {
    __m512 vv[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) vv[i] = _mm512_loadu_ps(v + j * ldv + 16 * i);
#pragma GCC unroll 6
    for (int r = 0; r < FLASH_RG; r++) {
      const __m512 x = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 4
      for (int i = 0; i < NC; i++) acc[r][i] = _mm512_fmadd_ps(x, vv[i], acc[r][i]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++)
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) _mm512_storeu_ps(o + r * ldo + 16 * i, acc[r][i]);
}

TARGET static void pv_avx512(const float *p, int64_t ldp, const float *v, int64_t ldv, int64_t nk, float *o,
                             int64_t ldo, int64_t dp) {
  int64_t col = 0;
  for (; col + 64 <= dp; col += 64) pv_cols(p, ldp, v + col, ldv, nk, o + col, ldo, 4);
  if (col < dp) pv_cols(p, ldp, v + col, ldv, nk, o + col, ldo, 2);
}

TARGET static void grad_avx512(float *s, const float *dp, float *p, const float *lse2, const float *dvec,
                               const int *lim) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int r = 0; r < FLASH_RG; r++) {
    const __m512 l2 = _mm512_set1_ps(lse2[r]), d = _mm512_set1_ps(dvec[r]);
    const __m512i limit = _mm512_set1_epi32(lim[r]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
      const int at = r * FLASH_BK + 16 * i;
      const __mmask16 keep = _mm512_cmplt_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32(16 * i)), limit);
      const __m512 pr =
          _mm512_maskz_mov_ps(keep, flash_exp2_ps(_mm512_sub_ps(_mm512_loadu_ps(s + at), l2)));
      _mm512_storeu_ps(p + at, pr);
      /* masked entries are exactly 0, even where dP is NaN */
      _mm512_storeu_ps(s + at, _mm512_maskz_mul_ps(keep, pr, _mm512_sub_ps(_mm512_loadu_ps(dp + at), d)));
    }
  }
}

const flash_tiles flash_tiles_avx512 = {abt_avx512, pv_avx512, grad_avx512};
#endif
