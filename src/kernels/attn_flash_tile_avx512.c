/* The AVX-512 flash_f32 tile kernel. For each key block and each group of
 * FLASH_RG = 6 query rows:
 *   1. S (6 x 64) = Q K^T in 24 zmm accumulators: per channel, 4 loads of the
 *      packed K^T row and 6 broadcasts of Q feed 24 FMAs;
 *   2. the online softmax runs on those registers (mask, row max, exp2 by
 *      polynomial + vscalefps, running sums) and leaves P in a 6 x 64 tile;
 *   3. O (6 x 64 columns at a time) = alpha O + P V in 24 zmm accumulators:
 *      per key, 4 loads of V and 6 broadcasts of P feed 24 FMAs.
 * Key blocks are the outer loop so one K^T block and one V block (32 KiB
 * each at d = 128) serve all 16 row groups of the item from L1/L2. */
#ifdef SPARQ_HAVE_X86_SIMD
#include "kernels/attn_flash.h"
#include "kernels/attn_flash_simd.h"

#define TARGET FLASH_AVX512
#define INLINE FLASH_INLINE

/* Steps 1 and 2 for rows r0 .. r0 + 5 and keys key0 .. key0 + 63. */
TARGET INLINE void scores_softmax(const flash_item *it, int64_t r0, int64_t key0) {
  const int64_t dp = it->dp;
  const float *q = it->q + r0 * dp, *kt = it->kt + key0 * dp;
  __m512 s[FLASH_RG][4];
  flash_abt_tile(q, dp, kt, dp, s);
  const __m512 mask_value = _mm512_set1_ps(FLASH_MASK);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++) {
    const int64_t vis = it->visible[r0 + r];
    if (vis < key0 + FLASH_BK) {
      const int lim = vis - key0 < 0 ? 0 : (int)(vis - key0);
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        const __mmask16 keep =
            _mm512_cmplt_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32(16 * i)), _mm512_set1_epi32(lim));
        s[r][i] = _mm512_mask_blend_ps(keep, mask_value, s[r][i]);
      }
    }
    const __m512 mx = _mm512_max_ps(_mm512_max_ps(s[r][0], s[r][1]), _mm512_max_ps(s[r][2], s[r][3]));
    const float mb = _mm512_reduce_max_ps(mx);
    const float m_old = it->m[r0 + r], m_new = mb > m_old ? mb : m_old;
    const __m512 mv = _mm512_set1_ps(m_new);
    const __m512 alpha = flash_exp2_ps(_mm512_sub_ps(_mm512_set1_ps(m_old), mv));
    float *pt = it->pt + r * FLASH_BK;
    __m512 p[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
      p[i] = flash_exp2_ps(_mm512_sub_ps(s[r][i], mv));
      _mm512_storeu_ps(pt + 16 * i, p[i]);
    }
    float *l = it->l + (r0 + r) * 16;
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3]));
    _mm512_storeu_ps(l, _mm512_fmadd_ps(_mm512_loadu_ps(l), alpha, sum));
    it->m[r0 + r] = m_new;
    it->alpha[r] = _mm512_cvtss_f32(alpha);
  }
}

/* Step 3 for NC zmm columns (16 NC output channels) starting at `col`.
 * Keys below `shared` are visible to all 6 rows; from there to nk (the
 * diagonal of a causal mask) each row adds only the keys it sees, so a key
 * masked for a row never reaches it, not even as 0 * NaN. */
TARGET INLINE void pv_cols(const flash_item *it, int64_t r0, int64_t key0, int64_t shared, int64_t nk, int64_t col,
                           const int NC) {
  const int64_t dp = it->dp;
  const float *v = it->v + key0 * dp + col, *pt = it->pt;
  float *o = it->o + r0 * dp + col;
  __m512 acc[FLASH_RG][4];
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++) {
    const __m512 a = _mm512_set1_ps(it->alpha[r]);
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) acc[r][i] = _mm512_mul_ps(_mm512_loadu_ps(o + r * dp + 16 * i), a);
  }
#pragma GCC unroll 2
  for (int64_t j = 0; j < shared; j++) {
    __m512 vv[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) vv[i] = _mm512_loadu_ps(v + j * dp + 16 * i);
#pragma GCC unroll 6
    for (int r = 0; r < FLASH_RG; r++) {
      const __m512 pb = _mm512_set1_ps(pt[r * FLASH_BK + j]);
#pragma GCC unroll 4
      for (int i = 0; i < NC; i++) acc[r][i] = _mm512_fmadd_ps(pb, vv[i], acc[r][i]);
    }
  }
  for (int64_t j = shared; j < nk; j++) {
    __m512 vv[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) vv[i] = _mm512_loadu_ps(v + j * dp + 16 * i);
#pragma GCC unroll 6
    for (int r = 0; r < FLASH_RG; r++) {
      const __mmask16 sees = key0 + j < it->visible[r0 + r] ? 0xFFFF : 0;
      const __m512 pb = _mm512_set1_ps(pt[r * FLASH_BK + j]);
#pragma GCC unroll 4
      for (int i = 0; i < NC; i++) acc[r][i] = _mm512_mask3_fmadd_ps(pb, vv[i], acc[r][i], sees);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++)
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) _mm512_storeu_ps(o + r * dp + 16 * i, acc[r][i]);
}

TARGET static void pv_cols4(const flash_item *it, int64_t r0, int64_t key0, int64_t shared, int64_t nk,
                            int64_t col) {
  pv_cols(it, r0, key0, shared, nk, col, 4);
}
TARGET static void pv_cols2(const flash_item *it, int64_t r0, int64_t key0, int64_t shared, int64_t nk,
                            int64_t col) {
  pv_cols(it, r0, key0, shared, nk, col, 2);
}

TARGET void flash_item_run_avx512(const flash_item *it) {
  const int64_t dp = it->dp;
  int64_t most = 0;
  for (int64_t r = 0; r < it->rows; r++)
    if (it->visible[r] > most) most = it->visible[r];
  for (int64_t key0 = 0; key0 < most; key0 += FLASH_BK) {
    for (int64_t r0 = 0; r0 < it->rows; r0 += FLASH_RG) {
      int64_t vis = 0, least = it->visible[r0];
      for (int r = 0; r < FLASH_RG; r++) {
        if (it->visible[r0 + r] > vis) vis = it->visible[r0 + r];
        if (it->visible[r0 + r] < least) least = it->visible[r0 + r];
      }
      if (key0 >= vis) continue;
      scores_softmax(it, r0, key0);
      /* keys past every row's limit have P = 0 for the whole group */
      const int64_t nk = vis - key0 < FLASH_BK ? vis - key0 : FLASH_BK;
      const int64_t shared = least <= key0 ? 0 : least - key0 < nk ? least - key0 : nk;
      int64_t col = 0;
      for (; col + 64 <= dp; col += 64) pv_cols4(it, r0, key0, shared, nk, col);
      if (col < dp) pv_cols2(it, r0, key0, shared, nk, col);
    }
  }
}
#endif
