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
#include <stdbool.h>
#include <string.h>

#define TARGET_QK __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,fma")))

/* Sums of u8 (Q-hat + 128) x s8 K-hat over dp for 4 rows x the first ng
 * groups of 16 keys (ng is a constant after inlining; the other groups are
 * set to 0); with refine_k (t->k_lo) the sums are scaled by 128 and a
 * second pass adds those of K-lo. Named accumulators: with an array gcc 12
 * shuffles all 16 through register copies every iteration (and spills),
 * halving the VNNI rate. */
static inline __attribute__((always_inline)) TARGET_QK void qk_sums(const sage_qk_tile *t, __m512i acc[4][4],
                                                                    const int ng) {
  const int64_t dp = t->dp, dp4 = dp / 4;
  const uint8_t *q0 = t->q, *q1 = q0 + dp, *q2 = q1 + dp, *q3 = q2 + dp;
  __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  __m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
  const int passes = t->k_lo ? 2 : 1;
  for (int pass = 0; pass < passes; pass++) {
    const int8_t *k0 = pass ? t->k_lo : t->k, *k1 = k0 + dp4 * 64, *k2 = k1 + dp4 * 64, *k3 = k2 + dp4 * 64;
    if (pass) {
#define QK_SHIFT(r)                                                                                 \
  a##r##0 = _mm512_slli_epi32(a##r##0, 7), a##r##1 = _mm512_slli_epi32(a##r##1, 7);                 \
  a##r##2 = _mm512_slli_epi32(a##r##2, 7), a##r##3 = _mm512_slli_epi32(a##r##3, 7);
      QK_SHIFT(0) QK_SHIFT(1) QK_SHIFT(2) QK_SHIFT(3)
#undef QK_SHIFT
    }
    for (int64_t c4 = 0; c4 < dp4; c4++) {
      const __m512i zero = _mm512_setzero_si512(), b0 = _mm512_loadu_si512(k0 + c4 * 64);
      const __m512i b1 = ng > 1 ? _mm512_loadu_si512(k1 + c4 * 64) : zero;
      const __m512i b2 = ng > 2 ? _mm512_loadu_si512(k2 + c4 * 64) : zero;
      const __m512i b3 = ng > 3 ? _mm512_loadu_si512(k3 + c4 * 64) : zero;
      int32_t w;
#define QK_ROW(r)                                                                                            \
  memcpy(&w, q##r + 4 * c4, 4);                                                                              \
  {                                                                                                          \
    const __m512i x = _mm512_set1_epi32(w);                                                                  \
    a##r##0 = _mm512_dpbusd_epi32(a##r##0, x, b0);                                                           \
    if (ng > 1) a##r##1 = _mm512_dpbusd_epi32(a##r##1, x, b1);                                               \
    if (ng > 2) a##r##2 = _mm512_dpbusd_epi32(a##r##2, x, b2);                                               \
    if (ng > 3) a##r##3 = _mm512_dpbusd_epi32(a##r##3, x, b3);                                               \
  }
      QK_ROW(0) QK_ROW(1) QK_ROW(2) QK_ROW(3)
#undef QK_ROW
    }
  }
  acc[0][0] = a00, acc[0][1] = a01, acc[0][2] = a02, acc[0][3] = a03;
  acc[1][0] = a10, acc[1][1] = a11, acc[1][2] = a12, acc[1][3] = a13;
  acc[2][0] = a20, acc[2][1] = a21, acc[2][2] = a22, acc[2][3] = a23;
  acc[3][0] = a30, acc[3][1] = a31, acc[3][2] = a32, acc[3][3] = a33;
}

TARGET_QK void sage_qk_scores_vnni(const sage_qk_tile *t, int32_t *s) {
  __m512i acc[4][4];
  qk_sums(t, acc, 4);
  for (int g = 0; g < 4; g++) {
    const __m512i corr = _mm512_loadu_si512(t->k_corr + 16 * g);
    for (int r = 0; r < 4; r++) _mm512_storeu_si512(s + r * SAGE_BK + 16 * g, _mm512_sub_epi32(acc[r][g], corr));
  }
}

/* sage_exp2 on 16 lanes: the same rounding, polynomial and 2^n scaling
 * (vscalefps is exact here because every kept result is a normal float). */
static inline __attribute__((always_inline)) TARGET_QK __m512 exp2_ps_keep(__m512 x, __mmask16 keep_also) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(SAGE_EXP2_C5), f, _mm512_set1_ps(SAGE_EXP2_C4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(SAGE_EXP2_C3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(SAGE_EXP2_C2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(SAGE_EXP2_C1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  /* not-less-than, unordered: NaN lanes are kept and stay NaN */
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-125.0f), _CMP_NLT_UQ);
  return _mm512_maskz_scalef_ps(keep & keep_also, p, n);
}

static inline __attribute__((always_inline)) TARGET_QK __m512 exp2_ps(__m512 x) { return exp2_ps_keep(x, 0xFFFF); }

/* Row maxima of 4 vectors as one __m128 (lane r = max of v[r]); max is
 * exact in any order. */
static inline __attribute__((always_inline)) TARGET_QK __m128 hmax4(const __m512 v[4]) {
  __m256 h[4];
  for (int r = 0; r < 4; r++)
    h[r] = _mm256_max_ps(_mm512_castps512_ps256(v[r]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[r]), 1)));
  __m128 q[4];
  for (int r = 0; r < 4; r++) q[r] = _mm_max_ps(_mm256_castps256_ps128(h[r]), _mm256_extractf128_ps(h[r], 1));
  const __m128 t01 = _mm_max_ps(_mm_unpacklo_ps(q[0], q[1]), _mm_unpackhi_ps(q[0], q[1]));
  const __m128 t23 = _mm_max_ps(_mm_unpacklo_ps(q[2], q[3]), _mm_unpackhi_ps(q[2], q[3]));
  return _mm_max_ps(_mm_movelh_ps(t01, t23), _mm_movehl_ps(t23, t01));
}

/* Row sums of 4 vectors as one __m128, each in sage_sum64's lane tree:
 * lane i + lane i+8, then + i+4, then + i+2, then lane 0 + lane 1. */
static inline __attribute__((always_inline)) TARGET_QK __m128 hsum4(const __m512 v[4]) {
  __m128 q[4];
  for (int r = 0; r < 4; r++) {
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(v[r]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[r]), 1)));
    q[r] = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  }
  /* [a0+a2, b0+b2, a1+a3, b1+b3] and the same for rows 2, 3 */
  const __m128 t01 = _mm_add_ps(_mm_unpacklo_ps(q[0], q[1]), _mm_unpackhi_ps(q[0], q[1]));
  const __m128 t23 = _mm_add_ps(_mm_unpacklo_ps(q[2], q[3]), _mm_unpackhi_ps(q[2], q[3]));
  return _mm_add_ps(_mm_movelh_ps(t01, t23), _mm_movehl_ps(t23, t01));
}

/* sage_e4m3_round on 16 lanes. */
static inline __attribute__((always_inline)) TARGET_QK __m512 e4m3_round_ps(__m512 x) {
  const __m512i u = _mm512_castps_si512(x), sign = _mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u));
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  __m512i normal = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(0x7FFFF)),
                                    _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1)));
  normal = _mm512_and_si512(normal, _mm512_set1_epi32((int)0xFFF00000u));
  normal = _mm512_min_epu32(normal, _mm512_set1_epi32(0x43E00000));
  const __m512 big = _mm512_set1_ps(24576.0f);
  const __m512i sub = _mm512_castps_si512(_mm512_sub_ps(_mm512_add_ps(_mm512_castsi512_ps(a), big), big));
  __m512i r = _mm512_mask_mov_epi32(normal, _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(0x3C800000)), sub);
  r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000)), _mm512_set1_epi32(0x7FC00000));
  return _mm512_castsi512_ps(_mm512_or_si512(r, sign));
}

static inline __attribute__((always_inline)) TARGET_QK void store_p(const sage_qk_tile *t, int r, const __m512 p[4]) {
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
        _mm256_storeu_si256((__m256i *)(dst + 16 * g),
                            _mm512_cvtps_ph(p[g], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    }
    case SAGE_P_E4M3_BF16: {
      /* E4M3 values are exact in BF16: the upper half of the float */
      uint16_t *dst = (uint16_t *)t->p + r * SAGE_BK;
      for (int g = 0; g < 4; g++)
        _mm256_storeu_si256((__m256i *)(dst + 16 * g),
                            _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(e4m3_round_ps(p[g])), 16)));
      break;
    }
    case SAGE_P_E4M3_F16: {
      /* ... and in FP16, where vcvtps2ph is exact (NaN 0x7FC00000 -> 0x7E00 as sage_exact_f16_bits) */
      uint16_t *dst = (uint16_t *)t->p + r * SAGE_BK;
      for (int g = 0; g < 4; g++)
        _mm256_storeu_si256((__m256i *)(dst + 16 * g),
                            _mm512_cvtps_ph(e4m3_round_ps(p[g]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
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

/* The 4 rows of a tile: dequantize, mask, then one online-softmax step per
 * row with the state update done for the 4 rows at once (the same IEEE
 * operations per row as sage_row_begin / sage_row_end), P in t->fmt.
 * Groups from ng on are masked for every row: they take no arithmetic, but
 * their masked score still enters the max and their P-tilde is 0, exactly
 * as if they had been computed. */
static inline __attribute__((always_inline)) TARGET_QK void softmax_rows(const sage_qk_tile *t, __m512i acc[4][4],
                                                                         const int ng) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  /* ds is per row, but a tile either has dS for all rows or for none */
  const bool has_ds = t->ds[0] != NULL;
  __m512 s[4][4], mx[4];
  __mmask16 live[4][4];
  for (int r = 0; r < 4; r++) {
    const __m512 dq = _mm512_set1_ps(t->q_scale[r]);
    const float *ds = t->ds[r];
    const int from = t->masked ? sage_mask_from(t, r) : SAGE_BK;
    mx[r] = ng < 4 ? _mm512_set1_ps(SAGE_MASK) : _mm512_set1_ps(-INFINITY);
    for (int g = 0; g < ng; g++) {
      const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][g], _mm512_loadu_si512(t->k_corr + 16 * g)));
      const __m512 dk = _mm512_loadu_ps(t->k_scale + 16 * g);
      __m512 v = has_ds ? _mm512_fmadd_ps(x, _mm512_mul_ps(dq, dk), _mm512_loadu_ps(ds + 16 * g)) : _mm512_mul_ps(x, dk);
      live[r][g] = 0xFFFF;
      if (from < SAGE_BK) {
        live[r][g] =
            _mm512_cmplt_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(16 * g)), _mm512_set1_epi32(from));
        v = _mm512_mask_mov_ps(_mm512_set1_ps(SAGE_MASK), live[r][g], v);
      }
      s[r][g] = v;
      mx[r] = _mm512_max_ps(v, mx[r]); /* v > mx ? v : mx: a NaN score never becomes the max */
    }
  }
  /* sage_row_begin for 4 rows */
  const __m128 dq4 = _mm_loadu_ps(t->q_scale);
  const __m128 blk = has_ds ? hmax4(mx) : _mm_mul_ps(hmax4(mx), dq4);
  const __m128 m_old = _mm_setr_ps(t->state[0].m, t->state[1].m, t->state[2].m, t->state[3].m);
  const __m128 m_new = _mm_max_ps(blk, m_old);
  const __m128 m_use = _mm_blendv_ps(m_new, _mm_setzero_ps(), _mm_cmpeq_ps(m_new, _mm_set1_ps(-INFINITY)));
  const __m128 alpha = _mm512_castps512_ps128(exp2_ps(_mm512_zextps128_ps512(_mm_sub_ps(m_old, m_use))));
  const __m128 bias = _mm_sub_ps(m_use, _mm_set1_ps(t->sigma));
  _mm_storeu_ps(t->alpha, alpha);
  float mn[4];
  _mm_storeu_ps(mn, m_new);
  __m512 sum[4];
  for (int r = 0; r < 4; r++) {
    t->state[r].m = mn[r];
    const __m512 b = _mm512_permutexvar_ps(_mm512_set1_epi32(r), _mm512_zextps128_ps512(bias));
    const __m512 dq = _mm512_set1_ps(t->q_scale[r]), nb = _mm512_xor_ps(b, _mm512_set1_ps(-0.0f)); /* -b exactly */
    __m512 p[4];
    for (int g = 0; g < 4; g++)
      p[g] = g >= ng ? _mm512_setzero_ps()
                     : exp2_ps_keep(has_ds ? _mm512_sub_ps(s[r][g], b) : _mm512_fmadd_ps(s[r][g], dq, nb), live[r][g]);
    sum[r] = _mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3]));
    store_p(t, r, p);
  }
  /* sage_row_end for 4 rows */
  const __m128 l_old = _mm_setr_ps(t->state[0].l, t->state[1].l, t->state[2].l, t->state[3].l);
  float ln[4];
  _mm_storeu_ps(ln, _mm_fmadd_ps(alpha, l_old, hsum4(sum)));
  for (int r = 0; r < 4; r++) t->state[r].l = ln[r];
}

/* Key groups of 16 past every row's mask (the causal diagonal, a prefix
 * limit) are skipped: on the diagonal block of a causal item that is 3/8 of
 * the block's VNNI work. */
TARGET_QK void sage_qk_tile_vnni(const sage_qk_tile *t) {
  __m512i acc[4][4];
  switch (t->masked ? (sage_tile_key_end(t) + 15) / 16 : 4) {
    case 0:
    case 1: qk_sums(t, acc, 1), softmax_rows(t, acc, 1); break;
    case 2: qk_sums(t, acc, 2), softmax_rows(t, acc, 2); break;
    case 3: qk_sums(t, acc, 3), softmax_rows(t, acc, 3); break;
    default: qk_sums(t, acc, 4), softmax_rows(t, acc, 4); break;
  }
}
#endif
