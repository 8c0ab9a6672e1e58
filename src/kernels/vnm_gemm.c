/* sparq_vnm_gemm: Y = X * W^T with W in the packed V:N:M format (spec §7,
 * "gather-operand" design).
 *
 * Tokens run along the SIMD lanes, so X and Y are transposed into tiles of
 * VNM_TT tokens (X^T: one row of VNM_TT floats per input feature). Every
 * block of V rows shares its 4 kept columns per group, so the block's
 * X^T rows are gathered once into a dense strip, [group][4][VNM_TT], that
 * all V rows then read with plain aligned loads: each row does exactly its 2
 * multiply-adds per group, the weight value broadcast and the X operand
 * loaded from L1/L2. Groups are processed in chunks so the strip stays in
 * cache; the partial sums of a chunk go to a Y^T tile, which is transposed
 * into Y at the end through the output permutation.
 *
 * Work items are (row range, token tile) pairs; each output element is
 * produced by one item in a fixed order, so the result does not depend on
 * the thread count. */
#include <omp.h>
#include <string.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

/* Groups per chunk: the gathered strip is GROUP_CHUNK x 4 x VNM_TT floats
 * = 128 KiB, inside L2 next to the weights being streamed. */
enum { GROUP_CHUNK = 128 };
/* Rows per work item when M = 4 (no per-block gather to amortise). */
enum { ROWS_2_4 = 64 };
/* Columns (input) and rows (output) per transpose work item. */
enum { TRANSPOSE_CHUNK = 64 };

void vnm_tile_portable(int a, int b, int64_t ng, const float *xg, const float *vals, int64_t vstride,
                       const uint8_t *meta, int64_t mstride, float *yt, int accumulate) {
  const int n = 16 * b;
  for (int r = 0; r < a; r++) {
    float acc[VNM_TT];
    for (int t = 0; t < n; t++) acc[t] = accumulate ? yt[r * VNM_TT + t] : 0.0f;
    for (int64_t g = 0; g < ng; g++) {
      unsigned code = meta[r * mstride + g];
      const float *p0 = xg + (g * 4 + (code & 3)) * VNM_TT, *p1 = xg + (g * 4 + (code >> 2)) * VNM_TT;
      float w0 = vals[r * vstride + 2 * g], w1 = vals[r * vstride + 2 * g + 1];
      for (int t = 0; t < n; t++) {
        acc[t] += w0 * p0[t];
        acc[t] += w1 * p1[t];
      }
    }
    memcpy(yt + r * VNM_TT, acc, (size_t)n * sizeof(float));
  }
}

void vnm_gather_portable(float *dst, const float *xt, const int32_t *rows, int64_t n) {
  for (int64_t k = 0; k < n; k++) memcpy(dst + k * VNM_TT, xt + (size_t)rows[k] * VNM_TT, VNM_TT * sizeof(float));
}

void vnm_transpose_in_portable(const float *x, int64_t ldx, int64_t nt, int64_t cols, int64_t c0, int64_t c1,
                               float *xt) {
  for (int64_t c = c0; c < c1; c++) {
    float *dst = xt + c * VNM_TT;
    for (int64_t t = 0; t < VNM_TT; t++) dst[t] = t < nt && c < cols ? x[t * ldx + c] : 0.0f;
  }
}

void vnm_transpose_out_portable(const float *yt, const int32_t *row_inv, int64_t nt, int64_t r0, int64_t r1,
                                float *y, int64_t ldy) {
  for (int64_t t = 0; t < nt; t++)
    for (int64_t r = r0; r < r1; r++) y[t * ldy + r] = yt[(int64_t)row_inv[r] * VNM_TT + t];
}

typedef void (*transpose_in_fn)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
typedef void (*gather_fn)(float *, const float *, const int32_t *, int64_t);
typedef void (*transpose_out_fn)(const float *, const int32_t *, int64_t, int64_t, int64_t, float *, int64_t);

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
  if (tokens > 0 && ((m->cols > 0 && !x) || (m->rows > 0 && !y))) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL x or y", who);
  return SPARQ_OK;
}

sparq_status sparq_vnm_gemm(const sparq_vnm_matrix *m, int64_t tokens, const float *x, int64_t ldx, float *y,
                            int64_t ldy) {
  const char *who = "sparq_vnm_gemm";
  sparq_status st = vnm_gemm_check_args(who, m, tokens, x, ldx, y, ldy);
  if (st != SPARQ_OK || tokens == 0 || m->rows == 0) return st;

  vnm_tile_fn tile = vnm_tile_portable;
  transpose_in_fn tin = vnm_transpose_in_portable;
  transpose_out_fn tout = vnm_transpose_out_portable;
  gather_fn gather = vnm_gather_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) {
    tile = vnm_tile_avx512;
    gather = vnm_gather_avx512;
    tin = vnm_transpose_in_avx512;
    tout = vnm_transpose_out_avx512;
  }
#endif
  const sparq_vnm_pattern p = m->pattern;
  const int64_t rp = m->rows_pad, cp = m->cols_pad, groups = m->groups;
  const int64_t ntiles = (tokens + VNM_TT - 1) / VNM_TT;
  bool identity_cols = true;
  for (int64_t c = 0; c < cp && identity_cols; c++) identity_cols = m->col_perm[c] == c;
  /* M = 4 keeps every column: one gather per token tile (none without an
   * input permutation) serves all blocks. */
  const bool shared_strip = p.m == 4;
  const bool per_block_gather = !shared_strip;
  const int64_t item_rows = shared_strip ? sparq_vnm_round_up(ROWS_2_4, p.v) : p.v;
  const int64_t row_items = (rp + item_rows - 1) / item_rows;
  const int nthreads = omp_get_max_threads();

  size_t xt_floats = (size_t)ntiles * (size_t)cp * VNM_TT, yt_floats = (size_t)ntiles * (size_t)rp * VNM_TT;
  size_t strip_floats = per_block_gather ? (size_t)GROUP_CHUNK * 4 * VNM_TT * (size_t)nthreads
                                         : (shared_strip && !identity_cols ? xt_floats : 0);
  float *xt = sparq_alloc((xt_floats + 1) * sizeof(float), "sparq_vnm_gemm X^T tiles");
  float *yt = sparq_alloc((yt_floats + 1) * sizeof(float), "sparq_vnm_gemm Y^T tiles");
  float *strip = strip_floats ? sparq_alloc(strip_floats * sizeof(float), "sparq_vnm_gemm gathered X") : NULL;
  if (!xt || !yt || (strip_floats && !strip)) {
    sparq_free(xt);
    sparq_free(yt);
    sparq_free(strip);
    return SPARQ_ERR_NOMEM;
  }

  const int64_t in_chunks = (cp + TRANSPOSE_CHUNK - 1) / TRANSPOSE_CHUNK;
  const int64_t out_chunks = (m->rows + TRANSPOSE_CHUNK - 1) / TRANSPOSE_CHUNK;
  /* below this many multiply-adds a thread team costs more than it saves */
  const bool parallel = (double)tokens * (double)rp * (double)groups * 2.0 > 2e6;
#pragma omp parallel if (parallel)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < ntiles * in_chunks; i++) {
      int64_t tau = i / in_chunks, c0 = i % in_chunks * TRANSPOSE_CHUNK;
      int64_t c1 = c0 + TRANSPOSE_CHUNK < cp ? c0 + TRANSPOSE_CHUNK : cp;
      int64_t nt = tokens - tau * VNM_TT < VNM_TT ? tokens - tau * VNM_TT : VNM_TT;
      tin(x + tau * VNM_TT * ldx, ldx, nt, m->cols, c0, c1, xt + (size_t)tau * cp * VNM_TT);
    }
    if (shared_strip && !identity_cols) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < ntiles * cp; i++) {
        int64_t tau = i / cp, c = i % cp;
        memcpy(strip + (size_t)i * VNM_TT, xt + ((size_t)tau * cp + (size_t)m->col_perm[c]) * VNM_TT,
               VNM_TT * sizeof(float));
      }
    }
    float *local = per_block_gather ? strip + (size_t)omp_get_thread_num() * GROUP_CHUNK * 4 * VNM_TT : NULL;
    /* Chunk-major: every block of a token tile walks the same chunk of X^T
     * while it sits in L2, instead of each block sweeping all of X^T. */
    for (int64_t tau = 0; tau < ntiles; tau++) {
      const int64_t nt = tokens - tau * VNM_TT < VNM_TT ? tokens - tau * VNM_TT : VNM_TT;
      const int b = (int)((nt + 15) / 16), a_max = b <= 2 ? 8 : 4;
      const float *xtile = xt + (size_t)tau * cp * VNM_TT;
      float *ytile = yt + (size_t)tau * rp * VNM_TT;
      for (int64_t g0 = 0; g0 < groups; g0 += GROUP_CHUNK) {
        const int64_t ng = groups - g0 < GROUP_CHUNK ? groups - g0 : GROUP_CHUNK;
        /* No barrier between chunks: static schedules of equal loops give
         * each thread the same row items every time, so a block's chunks
         * accumulate in order on one thread. */
#pragma omp for schedule(static) nowait
        for (int64_t ri = 0; ri < row_items; ri++) {
          int64_t r0 = ri * item_rows, r1 = r0 + item_rows < rp ? r0 + item_rows : rp;
          const float *xg;
          if (per_block_gather) {
            gather(local, xtile, m->columns + ((r0 / p.v) * groups + g0) * 4, ng * 4);
            xg = local;
          } else {
            xg = (identity_cols ? xtile : strip + (size_t)tau * cp * VNM_TT) + g0 * 4 * VNM_TT;
          }
          for (int64_t r = r0; r < r1; r += a_max) {
            int a = (int)(r1 - r < a_max ? r1 - r : a_max);
            tile(a, b, ng, xg, m->values + (r * groups + g0) * 2, groups * 2, m->meta + r * groups + g0, groups,
                 ytile + r * VNM_TT, g0 > 0);
          }
        }
      }
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t i = 0; i < ntiles * out_chunks; i++) {
      int64_t tau = i / out_chunks, r0 = i % out_chunks * TRANSPOSE_CHUNK;
      int64_t r1 = r0 + TRANSPOSE_CHUNK < m->rows ? r0 + TRANSPOSE_CHUNK : m->rows;
      int64_t nt = tokens - tau * VNM_TT < VNM_TT ? tokens - tau * VNM_TT : VNM_TT;
      tout(yt + (size_t)tau * rp * VNM_TT, m->row_inv, nt, r0, r1, y + tau * VNM_TT * ldy, ldy);
    }
  }
  sparq_free(xt);
  sparq_free(yt);
  sparq_free(strip);
  return SPARQ_OK;
}
