/* QK tile on vpdpbusd fused with dequantization and the online softmax
 * (spec §5): 4 query rows x 64 keys of int32 sums live in 16 zmm, and each
 * row goes through scale, mask, max, exp2, sum and the P conversion without
 * the score tile ever touching memory.
 *
 * Scalar twin: sage_qk_tile_ref (attn_sage_softmax.c). Same operations in
 * the same order, so the results agree bit for bit (tests check it). */
#include "kernels/attn_sage_internal.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <string.h>

#define TARGET_QK __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,fma")))

/* Sums of u8 (Q-hat + 128) x s8 K-hat over dp for 4 rows x 4 groups of 16 keys. */
static inline __attribute__((always_inline)) TARGET_QK void qk_sums(const sage_qk_tile *t, __m512i acc[4][4]) {
  const int64_t dp4 = t->dp / 4;
  for (int r = 0; r < 4; r++)
    for (int g = 0; g < 4; g++) acc[r][g] = _mm512_setzero_si512();
  const uint8_t *q = t->q;
  const int8_t *k = t->k;
  for (int64_t c4 = 0; c4 < dp4; c4++) {
    __m512i kv[4];
    for (int g = 0; g < 4; g++) kv[g] = _mm512_loadu_si512(k + (g * dp4 + c4) * 64);
    for (int r = 0; r < 4; r++) {
      int32_t qw;
      memcpy(&qw, q + r * t->dp + 4 * c4, 4);
      const __m512i qb = _mm512_set1_epi32(qw);
      for (int g = 0; g < 4; g++) acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], qb, kv[g]);
    }
  }
}

TARGET_QK void sage_qk_scores_vnni(const sage_qk_tile *t, int32_t *s) {
  __m512i acc[4][4];
  qk_sums(t, acc);
  for (int g = 0; g < 4; g++) {
    const __m512i corr = _mm512_loadu_si512(t->k_corr + 16 * g);
    for (int r = 0; r < 4; r++) _mm512_storeu_si512(s + r * SAGE_BK + 16 * g, _mm512_sub_epi32(acc[r][g], corr));
  }
}

/* sage_exp2 on 16 lanes: the same rounding, polynomial and 2^n scaling
 * (vscalefps is exact here because every kept result is a normal float). */
static inline __attribute__((always_inline)) TARGET_QK __m512 exp2_ps(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(SAGE_EXP2_C5), f, _mm512_set1_ps(SAGE_EXP2_C4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(SAGE_EXP2_C3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(SAGE_EXP2_C2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(SAGE_EXP2_C1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  /* not-less-than, unordered: NaN lanes are kept and stay NaN */
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-125.0f), _CMP_NLT_UQ);
  return _mm512_maskz_scalef_ps(keep, p, n);
}

/* Horizontal max and sum in sage_sum64's lane tree (max is exact in any
 * order; the sum is not, so the tree is fixed). */
static inline __attribute__((always_inline)) TARGET_QK float hsum_tree(__m512 v) {
  __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

static inline __attribute__((always_inline)) TARGET_QK float hmax(__m512 v) {
  return _mm512_reduce_max_ps(v);
}

/* One row: dequantize, mask, online softmax, store P in t->fmt. */
static inline __attribute__((always_inline)) TARGET_QK void softmax_row(const sage_qk_tile *t, int r,
                                                                       const __m512i acc[4]) {
  const __m512 dq = _mm512_set1_ps(t->q_scale[r]);
  const float *ds = t->ds[r];
  const int from = t->masked ? sage_mask_from(t, r) : SAGE_BK;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 s[4];
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int g = 0; g < 4; g++) {
    const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[g], _mm512_loadu_si512(t->k_corr + 16 * g)));
    const __m512 sc = _mm512_mul_ps(dq, _mm512_loadu_ps(t->k_scale + 16 * g));
    __m512 v = ds ? _mm512_fmadd_ps(x, sc, _mm512_loadu_ps(ds + 16 * g)) : _mm512_mul_ps(x, sc);
    if (from < SAGE_BK) {
      const __mmask16 m =
          _mm512_cmpge_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(16 * g)), _mm512_set1_epi32(from));
      v = _mm512_mask_mov_ps(v, m, _mm512_set1_ps(SAGE_MASK));
    }
    s[g] = v;
    mx = _mm512_max_ps(v, mx); /* v > mx ? v : mx: a NaN score never becomes the max */
  }
  const __m512 bias = _mm512_set1_ps(sage_row_begin(t, r, hmax(mx)));
  __m512 p[4];
  for (int g = 0; g < 4; g++) p[g] = exp2_ps(_mm512_sub_ps(s[g], bias));
  sage_row_end(t, r, hsum_tree(_mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3]))));
  switch (t->fmt) {
    case SAGE_P_F32: {
      float *dst = (float *)t->p + r * SAGE_BK;
      for (int g = 0; g < 4; g++) _mm512_storeu_ps(dst + 16 * g, p[g]);
      break;
    }
    case SAGE_P_BF16: {
      uint16_t *dst = (uint16_t *)t->p + r * SAGE_BK;
      _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(p[1], p[0]));
      _mm512_storeu_si512(dst + 32, (__m512i)_mm512_cvtne2ps_pbh(p[3], p[2]));
      break;
    }
    case SAGE_P_F16: {
      uint16_t *dst = (uint16_t *)t->p + r * SAGE_BK;
      for (int g = 0; g < 4; g++)
        _mm256_storeu_si256((__m256i *)(dst + 16 * g), _mm512_cvtps_ph(p[g], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    }
    case SAGE_P_U8: {
      uint8_t *dst = (uint8_t *)t->p + r * SAGE_BK;
      const __m512 scale = _mm512_set1_ps(t->u8_scale);
      for (int g = 0; g < 4; g++) {
        __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(p[g], scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
        _mm_storeu_si128((__m128i *)(dst + 16 * g), _mm512_cvtepi32_epi8(q));
      }
      break;
    }
  }
}

TARGET_QK void sage_qk_tile_vnni(const sage_qk_tile *t) {
  __m512i acc[4][4];
  qk_sums(t, acc);
  for (int r = 0; r < 4; r++) softmax_row(t, r, acc[r]);
}
#endif
