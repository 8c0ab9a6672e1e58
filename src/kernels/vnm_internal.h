/* Pieces shared by the V:N:M sources: score sanitising, the 4-column subset
 * table and the per-block selection that masks, permutation search and tests
 * all build on. */
#ifndef SPARQ_KERNELS_VNM_INTERNAL_H
#define SPARQ_KERNELS_VNM_INTERNAL_H

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "sparq/vnm.h"

/* Only the joint search enumerates subsets: C(SPARQ_VNM_JOINT_MAX_M, 4). */
enum { VNM_MAX_SUBSETS = 1820 };

/* NaN counts as 0 and +inf as FLT_MAX (see vnm.h, "Scores"). */
static inline double vnm_clean(float s) {
  if (isnan(s)) return 0.0;
  if (s > FLT_MAX) return (double)FLT_MAX;
  return (double)s;
}

/* Every 4-column subset of m columns as a bitmask, in lexicographic order of
 * the sorted column tuples (so the first best subset is the tie winner).
 * Returns the count, or 0 if it exceeds `cap`. */
int vnm_subsets(int m, uint64_t *out, int cap);

/* Column order of one row of m scores: by score descending, then index
 * ascending. Scanning it gives every "best k inside a subset" with the
 * lower-index-wins tie rule for free. */
static inline void vnm_row_order(const double *s, int m, uint8_t *order) {
  for (int j = 0; j < m; j++) {
    int k = j;
    while (k > 0 && s[order[k - 1]] < s[j]) {
      order[k] = order[k - 1];
      k--;
    }
    order[k] = (uint8_t)j;
  }
}

/* Sum of the 2 best scores of a row inside `subset` (best + second best);
 * *first / *second get their columns in ascending order (may be NULL). */
static inline double vnm_top2(const double *s, const uint8_t *order, uint64_t subset, int *first, int *second) {
  int a = -1, k = 0;
  for (;; k++)
    if (subset >> order[k] & 1) {
      if (a < 0) {
        a = order[k];
      } else {
        break;
      }
    }
  int b = order[k];
  if (first) *first = a < b ? a : b;
  if (second) *second = a < b ? b : a;
  return s[a] + s[b];
}

/* Scratch for vnm_block_select, sized for v rows of m columns. */
typedef struct vnm_block_scratch {
  double *cols; /* m x v: the block column-major */
  double *top;  /* v */
  uint64_t *subsets;
  int nsub; /* 0 for two-step */
} vnm_block_scratch;

sparq_status vnm_block_scratch_init(vnm_block_scratch *b, int v, int m, sparq_vnm_select select, const char *who);
void vnm_block_scratch_free(vnm_block_scratch *b);

/* Chooses the mask of one block: s holds v rows of m clean scores (row
 * stride m). Returns the retained score and writes the kept 4-column subset
 * to *kept; pairs (may be NULL) gets each row's 2 kept columns. */
double vnm_block_select(const double *s, int v, int m, sparq_vnm_select select, vnm_block_scratch *scratch,
                        uint64_t *kept, uint8_t *pairs);

/* Clean score of the permuted padded matrix at (r, c) (see vnm.h). */
static inline double vnm_score_at(const float *score, int64_t rows, int64_t cols, const int32_t *row_perm,
                                  const int32_t *col_perm, int64_t r, int64_t c) {
  int64_t i = row_perm ? row_perm[r] : r, j = col_perm ? col_perm[c] : c;
  return i < rows && j < cols ? vnm_clean(score[i * cols + j]) : 0.0;
}

/* Argument checks shared by the functions that take a score matrix and
 * optional permutations: shapes, the pattern, padded sizes fitting int32,
 * and that the permutations really are permutations. */
sparq_status vnm_check_problem(const char *who, const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                               const int32_t *row_perm, const int32_t *col_perm);

/* Checks that perm holds every index of 0..n-1 once; `what` names it. */
sparq_status vnm_check_perm(const char *who, const char *what, const int32_t *perm, int64_t n);

/* Allocates the struct and its arrays for the given shape (values etc.
 * uninitialised); vnm_matrix_finish then derives row_inv and kpos from a
 * valid matrix. */
sparq_status vnm_matrix_alloc(int64_t rows, int64_t cols, sparq_vnm_pattern p, sparq_vnm_matrix **out);
sparq_status vnm_matrix_finish(sparq_vnm_matrix *m);

/* ------------------------------------------------------------ gemm */

/* Argument checks shared by sparq_vnm_gemm and its reference. */
sparq_status vnm_gemm_check_args(const char *who, const sparq_vnm_matrix *m, int64_t tokens, const float *x,
                                 int64_t ldx, const float *y, int64_t ldy);

/* Token tile of the GEMM: 64 tokens = 4 zmm vectors per accumulator row. */
enum { VNM_TT = 64 };

/* Register-tile kernel: rows a (1..VNM_MAX_A) x 16*b tokens (b in 1..4).
 * For group g of [0, ng), xg + g*gstride holds the group's m X^T rows (in
 * permuted order), VNM_TT floats each; vals/kpos point at the first row
 * (strides vstride floats, kstride entries). Writes or (accumulate) adds
 * the sums to yt rows of VNM_TT floats. */
enum { VNM_MAX_A = 8 };
typedef void (*vnm_tile_fn)(int a, int b, int64_t ng, const float *xg, int64_t gstride, const float *vals,
                            int64_t vstride, const uint16_t *kpos, int64_t kstride, float *yt, int accumulate);

void vnm_tile_portable(int a, int b, int64_t ng, const float *xg, int64_t gstride, const float *vals,
                       int64_t vstride, const uint16_t *kpos, int64_t kstride, float *yt, int accumulate);
/* X^T tile in permuted column order: xt[c * VNM_TT + t] = x[t * ldx +
 * perm[c]] (perm NULL: identity) for c in [c0, c1), with 0 for t >= nt
 * (tokens past the end) and perm[c] >= cols (padding columns). */
void vnm_transpose_in_portable(const float *x, int64_t ldx, int64_t nt, int64_t cols, const int32_t *perm, int64_t c0,
                               int64_t c1, float *xt);
/* Y tile back: y[t * ldy + r] = yt[row_inv[r] * VNM_TT + t] for t < nt and
 * r in [r0, r1). */
void vnm_transpose_out_portable(const float *yt, const int32_t *row_inv, int64_t nt, int64_t r0, int64_t r1,
                                float *y, int64_t ldy);

#ifdef SPARQ_HAVE_X86_SIMD
void vnm_tile_avx512(int a, int b, int64_t ng, const float *xg, int64_t gstride, const float *vals, int64_t vstride,
                     const uint16_t *kpos, int64_t kstride, float *yt, int accumulate);
void vnm_transpose_in_avx512(const float *x, int64_t ldx, int64_t nt, int64_t cols, const int32_t *perm, int64_t c0,
                             int64_t c1, float *xt);
void vnm_transpose_out_avx512(const float *yt, const int32_t *row_inv, int64_t nt, int64_t r0, int64_t r1, float *y,
                              int64_t ldy);
#endif

#endif
