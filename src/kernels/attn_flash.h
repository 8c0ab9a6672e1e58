/* flash_f32 internals shared by its driver (attn_flash.c), its tile kernels
 * (attn_flash_tile_*.c) and its backward (attn_flash_bwd*.c).
 *
 * Scores live in the log2 domain: the driver copies each query block
 * multiplied by sm_scale * log2(e), so a score tile is already the exponent
 * of exp2 and the softmax never multiplies by the scale again. */
#ifndef SPARQ_KERNELS_ATTN_FLASH_H
#define SPARQ_KERNELS_ATTN_FLASH_H

#include "kernels/attn_internal.h"

enum {
  FLASH_BQ = 96, /* query rows per work item */
  FLASH_BK = 64, /* keys per block: one K^T block row is 4 zmm */
  FLASH_RG = 6   /* query rows per register tile (6 x 64 scores = 24 zmm) */
};

/* Masked scores: finite, so max/subtract never meet inf - inf, and far below
 * any real score so exp2 of (mask - max) underflows to exactly 0. */
#define FLASH_MASK (-1e30f)
#define FLASH_LOG2E 1.44269504088896340736f
#define FLASH_LN2 0.69314718055994530942f

/* One work item: query rows [q0, q0 + rows) of head (b, h), rows <= FLASH_BQ. */
typedef struct flash_item {
  const float *q;   /* [rows][dp] pre-scaled by sm_scale * log2(e), padded to a multiple of FLASH_RG rows */
  const float *kt;  /* K^T blocks of kv head: [nkb][dp][FLASH_BK], zero past kv_len */
  const float *v;   /* [kv_len][dp] */
  const int64_t *visible; /* [rows padded]: keys each row sees, padding rows copy the last real row */
  int64_t rows, dp, kv_len;
  float *o;   /* [rows padded][dp] accumulators (unnormalized) */
  float *m;   /* [rows padded] running max, log2 domain */
  float *l;   /* [rows padded][16] running sums, 16 lanes summed at the end */
  float *pt;  /* [FLASH_RG][FLASH_BK] probability tile */
  float *alpha; /* [FLASH_RG] rescale factors of the current tile */
} flash_item;

/* Runs the online softmax of one item over every key block its rows see,
 * leaving o, m, l for the driver to normalize. The AVX-512 kernel and its
 * portable twin follow the same tiling and accumulation order; they differ
 * only in FMA contraction, the order of the row-max reduction and how exp2
 * rounds a tie in its range reduction (a few ulps). */
void flash_item_run_scalar(const flash_item *it);
#ifdef SPARQ_HAVE_X86_SIMD
void flash_item_run_avx2(const flash_item *it);
void flash_item_run_avx512(const flash_item *it);
#endif

/* 2^x for x <= 0 (or NaN): Cephes' exp2f polynomial on |f| <= 1/2, relative
 * error < 2e-7, exactly 0 below 2^-126 as under flush-to-zero. Branch-free
 * so loops over it vectorize; every conversion stays in range, NaN included. */
static inline float flash_exp2(float x) {
  float xc = x > -127.0f ? x : -127.0f; /* NaN compares false: -127, fixed below */
  xc = xc < 0.0f ? xc : 0.0f;           /* callers pass x <= 0; guard the exponent anyway */
  const int n = (int)(xc - 0.5f);       /* round half down: xc <= 0 truncates upward */
  const float f = xc - (float)n;
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  union {
    uint32_t u;
    float f;
  } scale = {(uint32_t)(n + 127) << 23}; /* n = -127 gives +0 */
  const float r = p * scale.f;
  return x != x ? x : r;
}

/* Register-tile primitives of the backward (and their portable twins):
 *   abt: c[6][64]  = a[6][dp] . bt[dp][64]           (bt is a packed K^T/V^T block)
 *   pv:  o[6][dp] += p[6][nk] . v[nk][dp]            (rows of p at stride ldp)
 *   grad: for a [6][64] tile, P = 2^(s - lse2) on the first lim[r] keys of
 *         row r and 0 after them, written to p; s becomes dS = P (dp - D).
 * Each output element of abt and pv is one FMA chain in ascending index
 * order, so the twins differ only by FMA contraction (and exp2 rounding in
 * grad). dp is a multiple of 32. */
typedef struct flash_tiles {
  void (*abt)(const float *a, int64_t lda, const float *bt, int64_t dp, float *c);
  void (*pv)(const float *p, int64_t ldp, const float *v, int64_t ldv, int64_t nk, float *o, int64_t ldo,
             int64_t dp);
  void (*grad)(float *s, const float *dp, float *p, const float *lse2, const float *dvec, const int *lim);
} flash_tiles;
extern const flash_tiles flash_tiles_scalar;
#ifdef SPARQ_HAVE_X86_SIMD
extern const flash_tiles flash_tiles_avx2;
extern const flash_tiles flash_tiles_avx512;
#endif

/* Packs the keys of one kv head as K^T blocks [nkb][dp][FLASH_BK]. */
void flash_pack_kt(const float *k, int64_t kv_len, int64_t dp, float *kt);

#endif
