/* AVX-512 register tiles of the backward (see attn_flash.h): up to 4 rows x
 * 64 columns in 16 zmm accumulators, fed per step by 4 vector loads and 4
 * broadcasts. Every (rows, columns) combination is its own instantiation of
 * one always-inlined body, so the accumulators stay in registers. */
#ifdef SPARQ_HAVE_X86_SIMD
#include "kernels/attn_flash.h"
#include "kernels/attn_flash_simd.h"

#define TARGET FLASH_AVX512
#define INLINE FLASH_INLINE

TARGET INLINE void abt_body(const float *a, int64_t lda, const float *bt, int64_t dp, float *c, const int R,
                            const int C0) {
  __m512 s[FLASH_BR][4];
  flash_abt_tile(a, lda, bt + 16 * C0, dp, s, R, 4 - C0);
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int i = 0; i < 4 - C0; i++) _mm512_storeu_ps(c + r * 64 + 16 * (C0 + i), s[r][i]);
}

#define ABT(R, C0)                                                                                            \
  TARGET static void abt_##R##_##C0(const float *a, int64_t lda, const float *bt, int64_t dp, float *c) {    \
    abt_body(a, lda, bt, dp, c, R, C0);                                                                       \
  }
#define ABT_R(R) ABT(R, 0) ABT(R, 1) ABT(R, 2) ABT(R, 3)
ABT_R(1)
ABT_R(2)
ABT_R(3)
ABT_R(4)

typedef void (*abt_fn)(const float *a, int64_t lda, const float *bt, int64_t dp, float *c);
static const abt_fn abt_table[FLASH_BR][4] = {{abt_1_0, abt_1_1, abt_1_2, abt_1_3},
                                              {abt_2_0, abt_2_1, abt_2_2, abt_2_3},
                                              {abt_3_0, abt_3_1, abt_3_2, abt_3_3},
                                              {abt_4_0, abt_4_1, abt_4_2, abt_4_3}};

static void abt_avx512(const float *a, int64_t lda, const float *bt, int64_t dp, int R, int c0, float *c) {
  abt_table[R - 1][c0](a, lda, bt, dp, c);
}

TARGET INLINE void pv_body(const float *p, int64_t prs, int64_t pcs, int64_t j0, int64_t j1, const float *v,
                           int64_t ldv, float *o, int64_t ldo, bool init, const int R, const int NC) {
  __m512 acc[FLASH_BR][4];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) acc[r][i] = init ? _mm512_setzero_ps() : _mm512_loadu_ps(o + r * ldo + 16 * i);
  const float *pj = p + j0 * pcs;
  const float *vj = v + j0 * ldv;
#pragma GCC unroll 2
  for (int64_t j = j0; j < j1; j++, pj += pcs, vj += ldv) {
    __m512 vv[4];
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) vv[i] = _mm512_loadu_ps(vj + 16 * i);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const __m512 x = _mm512_set1_ps(pj[r * prs]);
#pragma GCC unroll 4
      for (int i = 0; i < NC; i++) acc[r][i] = _mm512_fmadd_ps(x, vv[i], acc[r][i]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int i = 0; i < NC; i++) _mm512_storeu_ps(o + r * ldo + 16 * i, acc[r][i]);
}

#define PV(R, NC)                                                                                             \
  TARGET static void pv_##R##_##NC(const float *p, int64_t prs, int64_t pcs, int64_t j0, int64_t j1,          \
                                   const float *v, int64_t ldv, float *o, int64_t ldo, bool init) {           \
    pv_body(p, prs, pcs, j0, j1, v, ldv, o, ldo, init, R, NC);                                                \
  }
#define PV_R(R) PV(R, 4) PV(R, 2)
PV_R(1)
PV_R(2)
PV_R(3)
PV_R(4)

typedef void (*pv_fn)(const float *p, int64_t prs, int64_t pcs, int64_t j0, int64_t j1, const float *v, int64_t ldv,
                      float *o, int64_t ldo, bool init);
static const pv_fn pv4_table[FLASH_BR] = {pv_1_4, pv_2_4, pv_3_4, pv_4_4};
static const pv_fn pv2_table[FLASH_BR] = {pv_1_2, pv_2_2, pv_3_2, pv_4_2};

static void pv_avx512(const float *p, int64_t prs, int64_t pcs, int64_t j0, int64_t j1, const float *v, int64_t ldv,
                      float *o, int64_t ldo, int64_t dp, int R, bool init) {
  int64_t col = 0;
  for (; col + 64 <= dp; col += 64) pv4_table[R - 1](p, prs, pcs, j0, j1, v + col, ldv, o + col, ldo, init);
  if (col < dp) pv2_table[R - 1](p, prs, pcs, j0, j1, v + col, ldv, o + col, ldo, init);
}

TARGET static void grad_avx512(const float *s, const float *dpt, const float *lse2, const float *dvec, const int *lo,
                               int hi, int R, int c0, float *p, float *ds) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int r = 0; r < R; r++) {
    const __m512i low = _mm512_set1_epi32(lo[r]), high = _mm512_set1_epi32(hi);
    for (int i = 0; i < c0; i++) {
      _mm512_storeu_ps(p + r * 64 + 16 * i, _mm512_setzero_ps());
      _mm512_storeu_ps(ds + r * 64 + 16 * i, _mm512_setzero_ps());
    }
    for (int i = c0; i < 4; i++) {
      const int at = r * 64 + 16 * i;
      const __m512i col = _mm512_add_epi32(iota, _mm512_set1_epi32(16 * i));
      const __mmask16 keep = _mm512_cmpge_epi32_mask(col, low) & _mm512_cmplt_epi32_mask(col, high);
      const __m512 x = _mm512_sub_ps(_mm512_loadu_ps(s + at), _mm512_loadu_ps(lse2 + 16 * i));
      const __m512 pr = _mm512_maskz_mov_ps(keep, flash_exp2_ps(x));
      _mm512_storeu_ps(p + at, pr);
      /* masked entries are exactly 0, even where dP is NaN */
      const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(dpt + at), _mm512_loadu_ps(dvec + 16 * i));
      _mm512_storeu_ps(ds + at, _mm512_maskz_mul_ps(keep, pr, d));
    }
  }
}

TARGET static void dots_avx512(const float *a, const float *b, int64_t lda, int64_t n, int64_t dp, float *out) {
  for (int64_t i = 0; i < n; i++) {
    const float *x = a + i * lda, *y = b + i * lda;
    __m512d acc = _mm512_setzero_pd();
    for (int64_t c = 0; c < dp; c += 8)
      acc = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + c)), _mm512_cvtps_pd(_mm256_loadu_ps(y + c)), acc);
    double l[8];
    _mm512_storeu_pd(l, acc);
    out[i] = (float)(((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])));
  }
}

/* 16 x 16 transpose of r[0..15] (rows) into out[0..15] (columns). */
TARGET INLINE void transpose16(const __m512 r[16], __m512 out[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  /* u[4 g + k], 128-bit lane L: column 4 L + k of rows 4 g .. 4 g + 3 */
#pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {
    u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {
    const __m512 v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88), v2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD), w2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
    out[k] = _mm512_shuffle_f32x4(v1, v2, 0x88);
    out[4 + k] = _mm512_shuffle_f32x4(w1, w2, 0x88);
    out[8 + k] = _mm512_shuffle_f32x4(v1, v2, 0xDD);
    out[12 + k] = _mm512_shuffle_f32x4(w1, w2, 0xDD);
  }
}

TARGET void flash_pack_t_avx512(const float *x, int64_t ld, int64_t n, int64_t dp, float scale, float *xt) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t j0 = 0; j0 < 64; j0 += 16) {
    if (j0 >= n) { /* columns past n are zero */
      for (int64_t c = 0; c < dp; c++) _mm512_storeu_ps(xt + c * 64 + j0, _mm512_setzero_ps());
      continue;
    }
    for (int64_t c0 = 0; c0 < dp; c0 += 16) {
      __m512 r[16], out[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; j++)
        r[j] = j0 + j < n ? _mm512_mul_ps(_mm512_loadu_ps(x + (j0 + j) * ld + c0), sc) : _mm512_setzero_ps();
      transpose16(r, out);
#pragma GCC unroll 16
      for (int c = 0; c < 16; c++) _mm512_storeu_ps(xt + (c0 + c) * 64 + j0, out[c]);
    }
  }
}

const flash_tiles flash_tiles_avx512 = {abt_avx512, pv_avx512, grad_avx512, dots_avx512};
#endif
