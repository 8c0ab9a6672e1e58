/* sparq_vnm_gemm: Y = X * W^T with W in the packed V:N:M format (spec §7,
 * "gather-operand" design).
 *
 * Tokens run along the SIMD lanes, so X and Y are transposed into tiles of
 * VNM_TT tokens (X^T: one row of VNM_TT floats per input feature). X^T is
 * built in the permuted column order, so every group's M columns are M
 * consecutive X^T rows, and each row of W reads its 2 kept X^T rows of a
 * group by their positions inside it (kpos): one weight broadcast and one
 * aligned load per multiply-add, only the useful ones. A block's V rows
 * share 4 of those M rows, which stay in L1/L2 while the block's rows pass.
 * Groups are walked in chunks so the X^T rows in use stay in cache; a
 * chunk's partial sums go to a Y^T tile, transposed into Y at the end
 * through the output permutation.
 *
 * Threads own whole token tiles when there are enough of them (each tile's
 * buffers then stay in one core's L2), else share the rows of each tile.
 * Either way every output element is produced by the same sequence of
 * operations, so the result does not depend on the thread count. */
#include <omp.h>
#include <string.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

/* X^T rows per chunk of groups: 1024 rows of 256 bytes (256 KiB, of which
 * a block touches 4/M) sit in L2 next to the weights being streamed. */
enum { CHUNK_ROWS = 1024 };
/* Rows per work item: a block (V rows), or 64 rows when V is smaller. */
enum { ITEM_ROWS = 64 };
/* Columns (input) and rows (output) per transpose work item. */
enum { TRANSPOSE_CHUNK = 64 };

void vnm_tile_portable(int a, int b, int64_t ng, const float *xg, int64_t gstride, const float *vals,
                       int64_t vstride, const uint16_t *kpos, int64_t kstride, float *yt, int accumulate) {
  const int n = 16 * b;
  for (int r = 0; r < a; r++) {
    float acc[VNM_TT];
    for (int t = 0; t < n; t++) acc[t] = accumulate ? yt[r * VNM_TT + t] : 0.0f;
    for (int64_t g = 0; g < ng; g++) {
      unsigned k = kpos[r * kstride + g];
      const float *p0 = xg + g * gstride + (k & 0xFF) * VNM_TT, *p1 = xg + g * gstride + (k >> 8) * VNM_TT;
      float w0 = vals[r * vstride + 2 * g], w1 = vals[r * vstride + 2 * g + 1];
      for (int t = 0; t < n; t++) {
        acc[t] += w0 * p0[t];
        acc[t] += w1 * p1[t];
      }
    }
    memcpy(yt + r * VNM_TT, acc, (size_t)n * sizeof(float));
  }
}

void vnm_transpose_in_portable(const float *x, int64_t ldx, int64_t nt, int64_t cols, const int32_t *perm, int64_t c0,
                               int64_t c1, float *xt) {
  for (int64_t c = c0; c < c1; c++) {
    int64_t j = perm ? perm[c] : c;
    float *dst = xt + c * VNM_TT;
    for (int64_t t = 0; t < VNM_TT; t++) dst[t] = t < nt && j < cols ? x[t * ldx + j] : 0.0f;
  }
}

void vnm_transpose_out_portable(const float *yt, const int32_t *row_inv, int64_t nt, int64_t r0, int64_t r1,
                                float *y, int64_t ldy) {
  for (int64_t t = 0; t < nt; t++)
    for (int64_t r = r0; r < r1; r++) y[t * ldy + r] = yt[(int64_t)row_inv[r] * VNM_TT + t];
}

sparq_status vnm_gemm_check_args(const char *who, const sparq_vnm_matrix *m, int64_t tokens, const float *x,
                                 int64_t ldx, const float *y, int64_t ldy) {
  if (!m) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL matrix", who);
  if (tokens < 0) return sparq_fail(SPARQ_ERR_ARG, "%s: negative token count %lld", who, (long long)tokens);
  if (ldx < m->cols)
    return sparq_fail(SPARQ_ERR_ARG, "%s: ldx %lld is smaller than the %lld input features", who, (long long)ldx,
                      (long long)m->cols);
  if (ldy < m->rows)
    return sparq_fail(SPARQ_ERR_ARG, "%s: ldy %lld is smaller than the %lld output features", who, (long long)ldy,
                      (long long)m->rows);
  if (tokens > 0 && ((m->cols > 0 && !x) || (m->rows > 0 && !y)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: NULL x or y", who);
  return SPARQ_OK;
}

typedef void (*transpose_in_fn)(const float *, int64_t, int64_t, int64_t, const int32_t *, int64_t, int64_t, float *);
typedef void (*transpose_out_fn)(const float *, const int32_t *, int64_t, int64_t, int64_t, float *, int64_t);

/* One call's constants and kernels. */
typedef struct gemm_ctx {
  const sparq_vnm_matrix *m;
  const float *x;
  float *y;
  const int32_t *perm; /* the input permutation, NULL when it is the identity */
  int64_t tokens, ldx, ldy, ntiles, item_rows, row_items;
  int64_t chunk; /* groups per chunk, even, chunks of equal size but the last */
  vnm_tile_fn tile;
  transpose_in_fn tin;
  transpose_out_fn tout;
} gemm_ctx;

static int64_t tile_tokens(const gemm_ctx *c, int64_t tau) {
  return c->tokens - tau * VNM_TT < VNM_TT ? c->tokens - tau * VNM_TT : VNM_TT;
}

/* X^T rows [c0, c1) of token tile tau. */
static void stage_in(const gemm_ctx *c, int64_t tau, int64_t c0, int64_t c1, float *xt) {
  c->tin(c->x + tau * VNM_TT * c->ldx, c->ldx, tile_tokens(c, tau), c->m->cols, c->perm, c0, c1, xt);
}

/* Row items [i0, i1) of token tile tau over the groups of one chunk. */
static void stage_compute(const gemm_ctx *c, int64_t tau, int64_t g0, int64_t i0, int64_t i1, const float *xt,
                          float *yt) {
  const sparq_vnm_matrix *m = c->m;
  const int64_t groups = m->groups, rp = m->rows_pad, gstride = (int64_t)m->pattern.m * VNM_TT;
  const int64_t ng = groups - g0 < c->chunk ? groups - g0 : c->chunk;
  const int b = (int)((tile_tokens(c, tau) + 15) / 16), a_max = b <= 2 ? 8 : 4;
  for (int64_t ri = i0; ri < i1; ri++) {
    int64_t r0 = ri * c->item_rows, r1 = r0 + c->item_rows < rp ? r0 + c->item_rows : rp;
    for (int64_t r = r0; r < r1; r += a_max) {
      int a = (int)(r1 - r < a_max ? r1 - r : a_max);
      c->tile(a, b, ng, xt + g0 * gstride, gstride, m->values + (r * groups + g0) * 2, groups * 2,
              m->kpos + r * groups + g0, groups, yt + r * VNM_TT, g0 > 0);
    }
  }
}

/* Output rows [r0, r1) of token tile tau. */
static void stage_out(const gemm_ctx *c, int64_t tau, int64_t r0, int64_t r1, const float *yt) {
  c->tout(yt, c->m->row_inv, tile_tokens(c, tau), r0, r1, c->y + tau * VNM_TT * c->ldy, c->ldy);
}

sparq_status sparq_vnm_gemm(const sparq_vnm_matrix *m, int64_t tokens, const float *x, int64_t ldx, float *y,
                            int64_t ldy) {
  const char *who = "sparq_vnm_gemm";
  sparq_status st = vnm_gemm_check_args(who, m, tokens, x, ldx, y, ldy);
  if (st != SPARQ_OK || tokens == 0 || m->rows == 0) return st;

  gemm_ctx c = {.m = m, .x = x, .y = y, .tokens = tokens, .ldx = ldx, .ldy = ldy};
  c.tile = vnm_tile_portable;
  c.tin = vnm_transpose_in_portable;
  c.tout = vnm_transpose_out_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) {
    c.tile = vnm_tile_avx512;
    c.tin = vnm_transpose_in_avx512;
    c.tout = vnm_transpose_out_avx512;
  }
#endif
  const int64_t rp = m->rows_pad, cp = m->cols_pad, groups = m->groups;
  for (int64_t j = 0; j < cp && !c.perm; j++)
    if (m->col_perm[j] != j) c.perm = m->col_perm;
  c.item_rows = sparq_vnm_round_up(ITEM_ROWS, m->pattern.v);
  c.row_items = (rp + c.item_rows - 1) / c.item_rows;
  c.ntiles = (tokens + VNM_TT - 1) / VNM_TT;
  /* equal chunks: a short last chunk would cost a whole accumulate pass */
  const int64_t max_chunk = CHUNK_ROWS / m->pattern.m > 2 ? CHUNK_ROWS / m->pattern.m : 2;
  const int64_t nchunks = (groups + max_chunk - 1) / max_chunk;
  c.chunk = sparq_vnm_round_up(nchunks > 0 ? (groups + nchunks - 1) / nchunks : 2, 2);

  /* below this many multiply-adds a thread team costs more than it saves */
  const bool parallel = (double)tokens * (double)rp * (double)groups * 2.0 > 2e6;
  const int nthreads = parallel ? omp_get_max_threads() : 1;
  /* Whole token tiles per thread when they divide evenly (or are many):
   * each tile's X^T and Y^T then stay in that core's L2 and no barrier is
   * needed. Otherwise the threads share each tile's rows. */
  const bool own_tiles = nthreads == 1 || c.ntiles % nthreads == 0 || c.ntiles >= 4 * nthreads;
  const int buffers = own_tiles ? nthreads : 1;
  const size_t xt_floats = (size_t)cp * VNM_TT, yt_floats = (size_t)rp * VNM_TT;
  float *xt = sparq_alloc(xt_floats * (size_t)buffers * sizeof(float), "sparq_vnm_gemm X^T tile");
  float *yt = sparq_alloc(yt_floats * (size_t)buffers * sizeof(float), "sparq_vnm_gemm Y^T tile");
  if (!xt || !yt) {
    sparq_free(xt);
    sparq_free(yt);
    return SPARQ_ERR_NOMEM;
  }
  const int64_t in_chunks = (cp + TRANSPOSE_CHUNK - 1) / TRANSPOSE_CHUNK;
  const int64_t out_chunks = (m->rows + TRANSPOSE_CHUNK - 1) / TRANSPOSE_CHUNK;
#pragma omp parallel num_threads(nthreads)
  {
    sparq_thread_set_ftz();
    if (own_tiles) {
      const int tid = omp_get_thread_num();
      float *mxt = xt + xt_floats * (size_t)tid, *myt = yt + yt_floats * (size_t)tid;
      /* dynamic: on a shared machine a descheduled thread must not hold
       * tiles the others could take; which thread runs a tile changes no bit */
#pragma omp for schedule(dynamic, 1)
      for (int64_t tau = 0; tau < c.ntiles; tau++) {
        /* each chunk's X^T rows are written right before use, so they are
         * still in L2 when the blocks read them */
        for (int64_t g0 = 0; g0 < groups; g0 += c.chunk) {
          int64_t c1 = (g0 + c.chunk) * m->pattern.m;
          stage_in(&c, tau, g0 * m->pattern.m, c1 < cp ? c1 : cp, mxt);
          stage_compute(&c, tau, g0, 0, c.row_items, mxt, myt);
        }
        stage_out(&c, tau, 0, m->rows, myt);
      }
    } else {
      for (int64_t tau = 0; tau < c.ntiles; tau++) {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < in_chunks; i++)
          stage_in(&c, tau, i * TRANSPOSE_CHUNK, (i + 1) * TRANSPOSE_CHUNK < cp ? (i + 1) * TRANSPOSE_CHUNK : cp, xt);
        /* Chunk-major, so every block walks the same chunk of X^T while it
         * sits in L2. No barrier between chunks: static schedules of equal
         * loops give each thread the same row items every time, so a
         * block's chunks accumulate in order on one thread. */
        for (int64_t g0 = 0; g0 < groups; g0 += c.chunk) {
#pragma omp for schedule(static) nowait
          for (int64_t ri = 0; ri < c.row_items; ri++) stage_compute(&c, tau, g0, ri, ri + 1, xt, yt);
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t i = 0; i < out_chunks; i++)
          stage_out(&c, tau, i * TRANSPOSE_CHUNK,
                    (i + 1) * TRANSPOSE_CHUNK < m->rows ? (i + 1) * TRANSPOSE_CHUNK : m->rows, yt);
      }
    }
  }
  sparq_free(xt);
  sparq_free(yt);
  return SPARQ_OK;
}
