/* AVX-512 twins of the sparq_vnm_gemm pieces in vnm_gemm.c: the register
 * tile and the 16 x 16 transposes in and out of token-major tiles.
 *
 * The tile keeps a x b zmm accumulators (a rows x 16b tokens) in registers.
 * Per row and group it broadcasts the 2 weights and issues 2b FMAs whose X
 * operand is loaded straight from the group's X^T rows: the 2 rows differ
 * from row to row of W (its 2:4 positions), so an X vector is not reused
 * across rows and the loop runs at one load per FMA plus the broadcasts,
 * which the load ports of Zen 4 sustain at about 3/4 of the FMA peak. */
#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <string.h>

#include "kernels/vnm_internal.h"

#define TARGET __attribute__((target("avx512f")))

/* One row's 2 FMAs per token vector for group g (k = its 2 positions). */
#define ROW_GROUP(r, g, k)                                                                                     \
  do {                                                                                                         \
    const float *base = xg + (g) * gstride;                                                                    \
    const float *p0 = base + ((k) & 0xFF) * VNM_TT, *p1 = base + ((k) >> 8) * VNM_TT;                          \
    const __m512 w0 = _mm512_set1_ps(vals[(r) * vstride + 2 * (g)]);                                           \
    const __m512 w1 = _mm512_set1_ps(vals[(r) * vstride + 2 * (g) + 1]);                                       \
    _Pragma("GCC unroll 4") for (int j = 0; j < B; j++) {                                                      \
      acc[r][j] = _mm512_fmadd_ps(w0, _mm512_load_ps(p0 + 16 * j), acc[r][j]);                                 \
      acc[r][j] = _mm512_fmadd_ps(w1, _mm512_load_ps(p1 + 16 * j), acc[r][j]);                                 \
    }                                                                                                          \
  } while (0)

static inline __attribute__((always_inline)) TARGET void tile_body(const int A, const int B, int64_t ng,
                                                                   const float *xg, int64_t gstride,
                                                                   const float *vals, int64_t vstride,
                                                                   const uint16_t *kpos, int64_t kstride, float *yt,
                                                                   int accumulate) {
  __m512 acc[VNM_MAX_A][4];
#pragma GCC unroll 8
  for (int r = 0; r < A; r++)
#pragma GCC unroll 4
    for (int j = 0; j < B; j++)
      acc[r][j] = accumulate ? _mm512_load_ps(yt + r * VNM_TT + 16 * j) : _mm512_setzero_ps();
  /* Loads are the bottleneck (one per FMA plus the broadcasts), so the
   * positions of two groups come in one 32-bit load. */
  int64_t g = 0;
  for (; g + 2 <= ng; g += 2) {
    /* The next tile's rows are short streams the hardware prefetcher only
     * picks up after a miss; fetch them a tile ahead (never faults). */
    if ((g & 7) == 0) {
#pragma GCC unroll 8
      for (int r = A; r < 2 * A; r++) _mm_prefetch((const char *)(vals + r * vstride + 2 * g), _MM_HINT_T0);
      if ((g & 31) == 0) {
#pragma GCC unroll 8
        for (int r = A; r < 2 * A; r++) _mm_prefetch((const char *)(kpos + r * kstride + g), _MM_HINT_T0);
      }
    }
    /* and its partial sums, which sit in L3 when the layer is wide */
    if (g == 16 && accumulate) {
#pragma GCC unroll 8
      for (int r = A; r < 2 * A; r++)
#pragma GCC unroll 4
        for (int j = 0; j < B; j++) _mm_prefetch((const char *)(yt + r * VNM_TT + 16 * j), _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int r = 0; r < A; r++) {
      uint32_t pair;
      memcpy(&pair, kpos + r * kstride + g, sizeof pair);
      const unsigned k0 = pair & 0xFFFF, k1 = pair >> 16;
      ROW_GROUP(r, g, k0);
      ROW_GROUP(r, g + 1, k1);
    }
  }
  for (; g < ng; g++) {
#pragma GCC unroll 8
    for (int r = 0; r < A; r++) {
      const unsigned k = kpos[r * kstride + g];
      ROW_GROUP(r, g, k);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < A; r++)
#pragma GCC unroll 4
    for (int j = 0; j < B; j++) _mm512_store_ps(yt + r * VNM_TT + 16 * j, acc[r][j]);
}

#define TILE(A, B)                                                                                              \
  TARGET static void tile_##A##_##B(int64_t ng, const float *xg, int64_t gs, const float *vals, int64_t vs,    \
                                    const uint16_t *kpos, int64_t ks, float *yt, int accumulate) {             \
    tile_body(A, B, ng, xg, gs, vals, vs, kpos, ks, yt, accumulate);                                           \
  }
/* a up to 8 for 1-2 token vectors (few accumulators per row), up to 4 for 3-4 */
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1) TILE(5, 1) TILE(6, 1) TILE(7, 1) TILE(8, 1)
TILE(1, 2) TILE(2, 2) TILE(3, 2) TILE(4, 2) TILE(5, 2) TILE(6, 2) TILE(7, 2) TILE(8, 2)
TILE(1, 3) TILE(2, 3) TILE(3, 3) TILE(4, 3)
TILE(1, 4) TILE(2, 4) TILE(3, 4) TILE(4, 4)
#undef TILE

typedef void (*tile_ab_fn)(int64_t, const float *, int64_t, const float *, int64_t, const uint16_t *, int64_t, float *,
                           int);
static const tile_ab_fn tiles[4][VNM_MAX_A] = {
    {tile_1_1, tile_2_1, tile_3_1, tile_4_1, tile_5_1, tile_6_1, tile_7_1, tile_8_1},
    {tile_1_2, tile_2_2, tile_3_2, tile_4_2, tile_5_2, tile_6_2, tile_7_2, tile_8_2},
    {tile_1_3, tile_2_3, tile_3_3, tile_4_3, NULL, NULL, NULL, NULL},
    {tile_1_4, tile_2_4, tile_3_4, tile_4_4, NULL, NULL, NULL, NULL},
};

void vnm_tile_avx512(int a, int b, int64_t ng, const float *xg, int64_t gstride, const float *vals, int64_t vstride,
                     const uint16_t *kpos, int64_t kstride, float *yt, int accumulate) {
  const tile_ab_fn fn = tiles[b - 1][a - 1];
  if (fn) {
    fn(ng, xg, gstride, vals, vstride, kpos, kstride, yt, accumulate);
    return;
  }
  /* the driver never asks for a > 4 with b > 2; split rather than fail */
  for (int r = 0; r < a; r += 4)
    vnm_tile_avx512(a - r < 4 ? a - r : 4, b, ng, xg, gstride, vals + r * vstride, vstride, kpos + r * kstride,
                    kstride, yt + r * VNM_TT, accumulate);
}

/* In-register transpose of 16 rows of 16 floats. */
static inline __attribute__((always_inline)) TARGET void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  /* r[4q + k] now holds element k of each 4-row group q, per 128-bit lane */
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

TARGET void vnm_transpose_in_avx512(const float *x, int64_t ldx, int64_t nt, int64_t cols, const int32_t *perm,
                                    int64_t c0, int64_t c1, float *xt) {
  int64_t c = c0;
  if (nt == VNM_TT) {
    const __m512i limit = _mm512_set1_epi32((int)cols);
    for (; c + 16 <= c1; c += 16) {
      __m512i idx = _mm512_setzero_si512();
      if (perm) idx = _mm512_loadu_si512(perm + c);
      /* blocks that touch padding columns take the scalar path */
      if (perm ? _mm512_cmpge_epi32_mask(idx, limit) != 0 : c + 16 > cols) {
        vnm_transpose_in_portable(x, ldx, nt, cols, perm, c, c + 16, xt);
        continue;
      }
      for (int t = 0; t < VNM_TT; t += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++)
          r[i] = perm ? _mm512_i32gather_ps(idx, x + (t + i) * ldx, 4) : _mm512_loadu_ps(x + (t + i) * ldx + c);
        transpose16(r);
        for (int i = 0; i < 16; i++) _mm512_store_ps(xt + (c + i) * VNM_TT + t, r[i]);
      }
    }
  }
  vnm_transpose_in_portable(x, ldx, nt, cols, perm, c, c1, xt);
}

TARGET void vnm_transpose_out_avx512(const float *yt, const int32_t *row_inv, int64_t nt, int64_t r0, int64_t r1,
                                     float *y, int64_t ldy) {
  int64_t r = r0;
  int64_t full_t = nt / 16 * 16;
  for (; r + 16 <= r1; r += 16) {
    for (int64_t t = 0; t < full_t; t += 16) {
      __m512 v[16];
      for (int i = 0; i < 16; i++) v[i] = _mm512_load_ps(yt + (int64_t)row_inv[r + i] * VNM_TT + t);
      transpose16(v);
      for (int i = 0; i < 16; i++) _mm512_storeu_ps(y + (t + i) * ldy + r, v[i]);
    }
    for (int64_t t = full_t; t < nt; t++)
      for (int i = 0; i < 16; i++) y[t * ldy + r + i] = yt[(int64_t)row_inv[r + i] * VNM_TT + t];
  }
  vnm_transpose_out_portable(yt, row_inv, nt, r, r1, y, ldy);
}
#endif
