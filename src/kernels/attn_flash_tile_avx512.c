/* The AVX-512 flash_f32 tile kernel. For each key block and each group of
 * FLASH_RG = 6 query rows:
 *   1. S (6 x 64) = Q K^T in 24 zmm accumulators: per channel, 4 loads of the
 *      packed K^T row and 6 broadcasts of Q feed 24 FMAs (fewer columns on
 *      the diagonal of a causal mask);
 *   2. the online softmax runs on those registers (mask, row max, exp2 by
 *      polynomial + vscalefps, running sums) and leaves P in a 6 x 64 tile;
 *   3. O (6 x 64 columns at a time) = alpha O + P V in 24 zmm accumulators:
 *      per key, 4 loads of V (row stride ldv) and 6 broadcasts of P feed 24
 *      FMAs.
 * Key blocks are the outer loop so one K^T block and one V block (32 KiB
 * each at d = 128) serve all 16 row groups of the item from L1/L2. The rows
 * of Q come in and those of O go out at the caller's strides. */
#ifdef SPARQ_HAVE_X86_SIMD
#include "kernels/attn_flash.h"
#include "kernels/attn_flash_simd.h"

#define TARGET FLASH_AVX512
#define INLINE FLASH_INLINE

/* Steps 1 and 2 for rows r0 .. r0 + 5 and keys key0 .. key0 + 16 NC - 1: on
 * the diagonal of a causal mask the zmm columns no row sees are never
 * computed (their P would be exactly 0, and the sums below add the same).
 * `first`: the first key block, where m starts at the mask value and l at 0. */
TARGET INLINE void scores_softmax(const flash_item *it, int64_t r0, int64_t key0, bool first, const int NC) {
  const int64_t dp = it->dp;
  const float *q = it->q + r0 * dp, *kt = it->kt + key0 * dp;
  __m512 s[FLASH_RG][4];
  flash_abt_tile(q, dp, kt, dp, s, FLASH_RG, NC);
  const __m512 mask_value = _mm512_set1_ps(FLASH_MASK);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  float m_old[16], m_new[16];
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++) {
    const int64_t vis = it->visible[r0 + r];
    if (vis < key0 + 16 * NC) {
      const int lim = vis - key0 < 0 ? 0 : (int)(vis - key0);
#pragma GCC unroll 4
      for (int i = 0; i < NC; i++) {
        const __mmask16 keep =
            _mm512_cmplt_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32(16 * i)), _mm512_set1_epi32(lim));
        s[r][i] = _mm512_mask_blend_ps(keep, mask_value, s[r][i]);
      }
    }
    __m512 mx = s[r][0];
#pragma GCC unroll 4
    for (int i = 1; i < NC; i++) mx = _mm512_max_ps(mx, s[r][i]);
    const float mb = _mm512_reduce_max_ps(mx);
    m_old[r] = first ? FLASH_MASK : it->m[r0 + r];
    m_new[r] = mb > m_old[r] ? mb : m_old[r];
    it->m[r0 + r] = m_new[r];
  }
  /* the six rescale factors in one exp2 */
  const __mmask16 rows = (1u << FLASH_RG) - 1;
  const __m512 alpha =
      flash_exp2_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(rows, m_old), _mm512_maskz_loadu_ps(rows, m_new)));
  _mm512_storeu_ps(it->alpha, alpha);
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++) {
    const __m512 mv = _mm512_set1_ps(m_new[r]);
    float *pt = it->pt + r * FLASH_BK;
    __m512 p[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) {
      p[i] = flash_exp2_ps(_mm512_sub_ps(s[r][i], mv));
      _mm512_storeu_ps(pt + 16 * i, p[i]);
    }
    /* (p0 + p1) + (p2 + p3) with the columns not computed as exact zeros */
    __m512 sum = p[0];
    if (NC >= 2) sum = _mm512_add_ps(p[0], p[1]);
    if (NC == 3) sum = _mm512_add_ps(sum, p[2]);
    if (NC == 4) sum = _mm512_add_ps(sum, _mm512_add_ps(p[2], p[3]));
    float *l = it->l + (r0 + r) * 16;
    /* l = l alpha + sum; the first block's l is 0, so l = sum exactly */
    _mm512_storeu_ps(l, first ? sum : _mm512_fmadd_ps(_mm512_loadu_ps(l), _mm512_set1_ps(it->alpha[r]), sum));
  }
}

TARGET static void scores_softmax1(const flash_item *it, int64_t r0, int64_t key0, bool first) {
  scores_softmax(it, r0, key0, first, 1);
}
TARGET static void scores_softmax2(const flash_item *it, int64_t r0, int64_t key0, bool first) {
  scores_softmax(it, r0, key0, first, 2);
}
TARGET static void scores_softmax3(const flash_item *it, int64_t r0, int64_t key0, bool first) {
  scores_softmax(it, r0, key0, first, 3);
}
TARGET static void scores_softmax4(const flash_item *it, int64_t r0, int64_t key0, bool first) {
  scores_softmax(it, r0, key0, first, 4);
}

/* Step 3 for NC zmm columns (16 NC output channels) starting at `col`.
 * Keys below `shared` are visible to all 6 rows; from there to nk (the
 * diagonal of a causal mask) each row adds only the keys it sees, so a key
 * masked for a row never reaches it, not even as 0 * NaN. The first key
 * block starts from 0 (alpha O would be 0 alpha). */
TARGET INLINE void pv_cols(const flash_item *it, int64_t r0, int64_t key0, bool first, int64_t shared, int64_t nk,
                           int64_t col, const int NC) {
  const int64_t dp = it->dp, ldv = it->ldv;
  const float *v = it->v + key0 * ldv + col, *pt = it->pt;
  float *o = it->o + r0 * dp + col;
  __m512 acc[FLASH_RG][4];
#pragma GCC unroll 6
  for (int r = 0; r < FLASH_RG; r++) {
    const __m512 a = _mm512_set1_ps(it->alpha[r]);
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++)
      acc[r][i] = first ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_loadu_ps(o + r * dp + 16 * i), a);
  }
#pragma GCC unroll 2
  for (int64_t j = 0; j < shared; j++) {
    __m512 vv[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) vv[i] = _mm512_loadu_ps(v + j * ldv + 16 * i);
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
    for (int i = 0; i < NC; i++) vv[i] = _mm512_loadu_ps(v + j * ldv + 16 * i);
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

TARGET static void pv_cols4(const flash_item *it, int64_t r0, int64_t key0, bool first, int64_t shared, int64_t nk,
                            int64_t col) {
  pv_cols(it, r0, key0, first, shared, nk, col, 4);
}
TARGET static void pv_cols2(const flash_item *it, int64_t r0, int64_t key0, bool first, int64_t shared, int64_t nk,
                            int64_t col) {
  pv_cols(it, r0, key0, first, shared, nk, col, 2);
}

TARGET void flash_item_run_avx512(const flash_item *it) {
  const int64_t dp = it->dp;
  const __m512 qscale = _mm512_set1_ps(it->qscale);
  for (int64_t r = 0; r < it->padded; r++)
    for (int64_t c = 0; c < dp; c += 16) {
      const __m512 x = r < it->rows ? _mm512_loadu_ps(it->qsrc + r * it->ldq + c) : _mm512_setzero_ps();
      _mm512_storeu_ps(it->q + r * dp + c, _mm512_mul_ps(x, qscale));
    }
  int64_t most = 0;
  for (int64_t r = 0; r < it->padded; r++)
    if (it->visible[r] > most) most = it->visible[r];
  for (int64_t key0 = 0; key0 < most; key0 += FLASH_BK) {
    const bool first = key0 == 0;
    for (int64_t r0 = 0; r0 < it->padded; r0 += FLASH_RG) {
      int64_t vis = 0, least = it->visible[r0];
      for (int r = 0; r < FLASH_RG; r++) {
        if (it->visible[r0 + r] > vis) vis = it->visible[r0 + r];
        if (it->visible[r0 + r] < least) least = it->visible[r0 + r];
      }
      if (key0 >= vis) continue;
      flash_prefetch_step(it->pf);
      /* keys past every row's limit have P = 0 for the whole group */
      const int64_t nk = vis - key0 < FLASH_BK ? vis - key0 : FLASH_BK;
      switch ((nk + 15) / 16) {
        case 1: scores_softmax1(it, r0, key0, first); break;
        case 2: scores_softmax2(it, r0, key0, first); break;
        case 3: scores_softmax3(it, r0, key0, first); break;
        default: scores_softmax4(it, r0, key0, first); break;
      }
      const int64_t shared = least <= key0 ? 0 : least - key0 < nk ? least - key0 : nk;
      int64_t col = 0;
      for (; col + 64 <= dp; col += 64) pv_cols4(it, r0, key0, first, shared, nk, col);
      if (col < dp) pv_cols2(it, r0, key0, first, shared, nk, col);
    }
  }
  for (int64_t r = 0; r < it->rows; r++) {
    if (it->visible[r] == 0) continue;
    const float l = flash_sum16(it->l + r * 16);
    const __m512 inv = _mm512_set1_ps(1.0f / l);
    it->lsum[r] = l;
    for (int64_t c = 0; c < dp; c += 16)
      _mm512_storeu_ps(it->out + r * it->ldo + c, _mm512_mul_ps(_mm512_loadu_ps(it->o + r * dp + c), inv));
  }
}
#endif
