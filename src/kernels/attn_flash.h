/* flash_f32 internals shared by its driver (attn_flash.c), its tile kernels
 * (attn_flash_tile_*.c, attn_flash_tiles_*.c) and its backward
 * (attn_flash_bwd.c).
 *
 * Scores live in the log2 domain: the driver copies each query block
 * multiplied by sm_scale * log2(e), so a score tile is already the exponent
 * of exp2 and the softmax never multiplies by the scale again.
 *
 * Both directions read the tensors through attn_q_strides / attn_k_strides:
 * the caller's own FP32 tensors (any layout) or the front end's HND copies. */
#ifndef SPARQ_KERNELS_ATTN_FLASH_H
#define SPARQ_KERNELS_ATTN_FLASH_H

#include "kernels/attn_internal.h"

enum {
  FLASH_BQ = 96, /* query rows per forward block */
  FLASH_BK = 64, /* keys per block: one K^T block row is 4 zmm */
  FLASH_RG = 6,  /* query rows per forward register tile (6 x 64 scores = 24 zmm) */
  FLASH_BB = 64, /* backward: keys per key block and queries per query block */
  FLASH_BR = 4   /* backward: rows per register tile (4 x 64 = 16 zmm) */
};

/* Masked scores: finite, so max/subtract never meet inf - inf, and far below
 * any real score so exp2 of (mask - max) underflows to exactly 0. */
#define FLASH_MASK (-1e30f)
#define FLASH_LOG2E 1.44269504088896340736f
#define FLASH_LN2 0.69314718055994530942f

/* Software prefetch of the next work item's rows into L2, spread over the
 * current item's tiles: the tiles keep the FMA units busy while the next
 * item's first touches (L3 or memory, often rows far apart in an NHD
 * layout) arrive. Addresses only: results never depend on it. */
enum { FLASH_PF_STREAMS = 8 };
typedef struct flash_prefetch {
  const char *base[FLASH_PF_STREAMS];
  int64_t ld[FLASH_PF_STREAMS];   /* bytes from one row to the next */
  int64_t rows[FLASH_PF_STREAMS];
  bool write[FLASH_PF_STREAMS];
  int n;                          /* streams */
  int64_t row_bytes, per_step;    /* bytes per row; lines per flash_prefetch_step */
  int s;                          /* current stream, row, next line and end of the row */
  int64_t r;
  const char *at, *end;
} flash_prefetch;

/* Starts an empty plan (rows of row_bytes each); add streams with flash_prefetch_add. */
static inline void flash_prefetch_init(flash_prefetch *pf, int64_t row_bytes) {
  pf->n = 0, pf->row_bytes = row_bytes, pf->per_step = 0;
  pf->s = 0, pf->r = -1, pf->at = pf->end = NULL;
}
static inline void flash_prefetch_add(flash_prefetch *pf, const void *base, int64_t ld_bytes, int64_t rows,
                                      bool write) {
  if (pf->n == FLASH_PF_STREAMS || rows <= 0) return;
  pf->base[pf->n] = (const char *)base, pf->ld[pf->n] = ld_bytes, pf->rows[pf->n] = rows;
  pf->write[pf->n++] = write;
}
/* Lines the plan covers, an upper bound. */
static inline int64_t flash_prefetch_lines(const flash_prefetch *pf) {
  int64_t rows = 0;
  for (int i = 0; i < pf->n; i++) rows += pf->rows[i];
  return rows * ((pf->row_bytes + 63) / 64 + 1);
}
/* Issues the next per_step line prefetches of the plan (none for NULL). */
static inline void flash_prefetch_step(flash_prefetch *pf) {
  if (!pf) return;
  for (int64_t k = pf->per_step; k > 0 && pf->s < pf->n; k--) {
    while (pf->at >= pf->end) {
      if (++pf->r >= pf->rows[pf->s]) {
        pf->r = 0;
        if (++pf->s >= pf->n) return;
      }
      const char *row = pf->base[pf->s] + pf->r * pf->ld[pf->s];
      pf->at = (const char *)((uintptr_t)row & ~(uintptr_t)63), pf->end = row + pf->row_bytes;
    }
    if (pf->write[pf->s]) __builtin_prefetch(pf->at, 1, 2);
    else __builtin_prefetch(pf->at, 0, 2);
    pf->at += 64;
  }
}

/* Work items handed out one at a time from a shared counter, like a
 * dynamic schedule, except that while plenty remain a thread claims its next
 * item before it starts the current one, so it knows what to prefetch.
 * Results never depend on who runs what. Call inside a parallel region:
 *   int64_t next, x = flash_claim_first(&counter);
 *   while (x < items) { next = flash_claim_ahead(&counter, items, threads);
 *                       ... plan next (when < items), run x ...
 *                       x = flash_claim_next(&counter, next); } */
static inline int64_t flash_claim(int64_t *counter) {
  int64_t x;
#pragma omp atomic capture
  x = (*counter)++;
  return x;
}
static inline int64_t flash_claim_first(int64_t *counter) { return flash_claim(counter); }
/* The next item claimed now, or -1 near the end (claimed after the current one then). */
static inline int64_t flash_claim_ahead(int64_t *counter, int64_t items, int threads) {
  int64_t c;
#pragma omp atomic read
  c = *counter;
  return c + 2 * threads < items ? flash_claim(counter) : -1;
}
static inline int64_t flash_claim_next(int64_t *counter, int64_t ahead) {
  return ahead >= 0 ? ahead : flash_claim(counter);
}

/* One forward block: query rows [q0, q0 + rows) of head (b, h), rows <= FLASH_BQ. */
typedef struct flash_item {
  const float *qsrc; /* row r of Q at qsrc + r * ldq */
  int64_t ldq;
  float qscale;      /* sm_scale * log2(e) */
  const float *kt;   /* K^T blocks of kv head: [nkb][dp][FLASH_BK], zero past kv_len */
  const float *v;    /* row j of V at v + j * ldv, dp columns */
  int64_t ldv;
  const int64_t *visible; /* [padded]: keys each row sees, padding rows copy the last real row */
  int64_t rows, padded, dp;   /* padded: rows rounded up to a multiple of FLASH_RG */
  float *out;        /* row r of O at out + r * ldo: written for rows with visible[r] > 0 */
  int64_t ldo;
  float *lsum;       /* [rows]: softmax denominator of each row written to out */
  float *q;     /* scratch [padded][dp]: Q times qscale, zero padding rows */
  float *o;     /* scratch [padded][dp] accumulators (unnormalized) */
  float *m;     /* scratch [padded] running max, log2 domain; read back by the driver */
  float *l;     /* scratch [padded][16] running sums, 16 lanes summed by flash_sum16 */
  float *pt;    /* scratch [FLASH_RG][FLASH_BK] probability tile */
  float *alpha; /* scratch [16]: rescale factors of the current tile */
  flash_prefetch *pf; /* stepped once per row group and key block */
} flash_item;

/* Copies and scales the item's queries, runs the online softmax over every
 * key block its rows see and writes O / l of every row that sees a key,
 * leaving m and lsum for the driver's LSE. The AVX-512 kernel and its
 * portable twin follow the same key blocks and accumulation order; they
 * differ only in FMA contraction, the order of the row-max reduction and how
 * exp2 rounds a tie in its range reduction (a few ulps). Every row's result
 * depends on that row alone, not on the rows it shares a tile with. */
void flash_item_run_scalar(const flash_item *it);
#ifdef SPARQ_HAVE_X86_SIMD
void flash_item_run_avx2(const flash_item *it);
void flash_item_run_avx512(const flash_item *it);
#endif

/* Sum of 16 lanes in a fixed pairwise order, the same for every kernel. */
static inline float flash_sum16(const float *l) {
  float t[8];
  for (int i = 0; i < 8; i++) t[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; i++) t[i] += t[i + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

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

/* Register-tile primitives of the backward (and their portable twins). The
 * backward works on transposed tiles: rows are keys, the FLASH_BB = 64
 * columns are the queries of one block, so P^T and dS^T come out in the
 * shape dV = P^T dO and dK = dS^T Q consume, with no transposition.
 *   abt:  c[r][col] = sum_k a[r lda + k] bt[k 64 + col] for rows r < R
 *         (R <= FLASH_BR) and columns 16 c0 <= col < 64; c has row stride 64.
 *   pv:   o[r][0 .. dp) += sum_{j0 <= j < j1} p[r prs + j pcs] v[j ldv ..]
 *         for rows r < R; with `init`, o = the sum (o is not read).
 *   grad: for rows r < R and columns 16 c0 <= col < 64, with the query of
 *         column col seen by the key of row r iff lo[r] <= col < hi:
 *         P = 2^(s - lse2[col]) there, 0 elsewhere, written to p;
 *         dS = P (dpt - dvec[col]) there, exactly 0 elsewhere (even where
 *         dP is NaN), written to ds (row stride 64), whose columns below
 *         16 c0 are zeroed too.
 *   dots: out[i] = sum_c a[i lda + c] b[i lda + c] over c < dp, in double
 *         with 8 interleaved partial sums added in a fixed order, for i < n
 *         (D = rowsum(dO o O)).
 * Each output element of abt and pv is one FMA chain in ascending index
 * order, so the twins differ only by FMA contraction (and exp2 rounding in
 * grad). dp is a multiple of 32. */
typedef struct flash_tiles {
  void (*abt)(const float *a, int64_t lda, const float *bt, int64_t dp, int R, int c0, float *c);
  void (*pv)(const float *p, int64_t prs, int64_t pcs, int64_t j0, int64_t j1, const float *v, int64_t ldv,
             float *o, int64_t ldo, int64_t dp, int R, bool init);
  void (*grad)(const float *s, const float *dpt, const float *lse2, const float *dvec, const int *lo, int hi, int R,
               int c0, float *p, float *ds);
  void (*dots)(const float *a, const float *b, int64_t lda, int64_t n, int64_t dp, float *out);
} flash_tiles;
extern const flash_tiles flash_tiles_scalar;
#ifdef SPARQ_HAVE_X86_SIMD
extern const flash_tiles flash_tiles_avx2;
extern const flash_tiles flash_tiles_avx512;
#endif

/* Packs rows [0, n) (n <= 64) of a [n][dp] matrix (row j at x + j * ld) as
 * one transposed block [dp][64] times `scale`, columns past n zero. Exact,
 * so the AVX-512 version gives the same bits; flash_pick_pack picks the
 * fastest for the active ISA. */
typedef void (*flash_pack_fn)(const float *x, int64_t ld, int64_t n, int64_t dp, float scale, float *xt);
void flash_pack_t(const float *x, int64_t ld, int64_t n, int64_t dp, float scale, float *xt);
#ifdef SPARQ_HAVE_X86_SIMD
void flash_pack_t_avx512(const float *x, int64_t ld, int64_t n, int64_t dp, float scale, float *xt);
#endif
flash_pack_fn flash_pick_pack(void);

/* The forward item kernel for the active ISA (AVX-512, AVX2 or scalar). */
typedef void (*flash_item_fn)(const flash_item *it);
flash_item_fn flash_pick_item(void);

#endif
