/* V:N:M weight sparsity (Zhao et al., "Beyond 2:4", arXiv 2410.16135; the
 * VENOM format of Castro et al., SC'23): masks, channel permutation, a packed
 * format and a sparse GEMM that does only the useful multiply-adds.
 *
 * Terms. W is R x C (R = out features = rows, C = in features = columns),
 * row-major; activations X are T x C (T tokens); the layer computes
 * Y = X * W^T, T x R. A V:2:M pattern tiles W into blocks of V rows x M
 * columns (one "group" of M columns per block and column range). In every
 * block the same 4 columns are kept for all V rows and each row keeps 2 of
 * those 4, so every row has exactly 2 nonzeros per group: density 2/M.
 * Plain 2:4 is M = 4 (nothing to prune at the column level); "2:4" parses as
 * V = 1, which adds no row constraint.
 *
 * Padding. Shapes that are not multiples of V (rows) and M (columns) are
 * padded with zero rows and columns to rows_pad x cols_pad. Masks and
 * permutations live in that padded space; padding entries score 0 and hold
 * 0, and the logical shape is kept beside them.
 *
 * Scores. A score matrix has the logical shape R x C, row-major, one score
 * per weight, >= 0. NaN scores count as 0 and +inf as FLT_MAX, so a broken
 * weight neither wins every block nor poisons the sums. Negative scores are
 * an argument error.
 *
 * Ties. Everything is deterministic: among equal scores the lower column
 * index wins, and among equal 4-column subsets the lexicographically
 * smallest one. Results never depend on the thread count. */
#ifndef SPARQ_VNM_H
#define SPARQ_VNM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/io.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- pattern */

#define SPARQ_VNM_MAX_V 4096
#define SPARQ_VNM_MAX_M 64
/* The joint search visits all C(M,4) column subsets of a block: 1820 at M = 16. */
#define SPARQ_VNM_JOINT_MAX_M 16

typedef struct sparq_vnm_pattern {
  int v; /* rows per block that share the 4 kept columns, 1..SPARQ_VNM_MAX_V */
  int n; /* nonzeros per row and group; always 2 */
  int m; /* columns per group, 4..SPARQ_VNM_MAX_M */
} sparq_vnm_pattern;

/* Parses "V:N:M" ("64:2:8") or "N:M" ("2:4", V = 1). N must be 2 and M in
 * 4..SPARQ_VNM_MAX_M; the message names the text on failure. */
sparq_status sparq_vnm_pattern_parse(const char *text, sparq_vnm_pattern *out);

/* Checks the ranges above; `who` names the caller in the message. */
sparq_status sparq_vnm_pattern_check(sparq_vnm_pattern p, const char *who);

/* Writes "V:2:M", or "2:M" when V == 1, into buf; returns snprintf's count. */
int sparq_vnm_pattern_format(sparq_vnm_pattern p, char *buf, size_t size);

/* Smallest multiple of `unit` (>= 1) that is >= n (>= 0). */
int64_t sparq_vnm_round_up(int64_t n, int64_t unit);

/* ------------------------------------------------ choosing V and M (§3) */

/* Mask diversity per weight, ln K(V, M) = (ln C(M,4) + V ln 6) / (V M): the
 * log of the number of masks a layer can take, divided by R * C, so it does
 * not depend on the layer's shape. Larger means a less constrained pattern
 * (better accuracy after pruning). */
double sparq_vnm_log_diversity(sparq_vnm_pattern p);

typedef struct sparq_vnm_candidate {
  sparq_vnm_pattern pattern;
  double speedup; /* measured sparse-vs-dense speedup on the target shapes */
} sparq_vnm_candidate;

/* The two-phase heuristic: keep the candidates whose speedup >= target,
 * then pick the one with the largest ln K (ties: larger speedup, then the
 * earlier candidate). *best is its index. SPARQ_ERR_NOT_FOUND (message with
 * the best speedup seen) when none reaches the target. */
sparq_status sparq_vnm_choose(const sparq_vnm_candidate *candidates, size_t count, double target, size_t *best);

/* --------------------------------------------------------- scores (§2) */

/* ABS: score[i*cols + j] = |w[i*cols + j]|. w and score are rows x cols. */
sparq_status sparq_vnm_score_abs(const float *w, int64_t rows, int64_t cols, float *score);

/* L2 norm of every column of the calibration activations x (tokens x cols,
 * row-major, leading dimension ldx >= cols): norms[j] = ||x[:, j]||_2,
 * accumulated in double. */
sparq_status sparq_vnm_column_norms(const float *x, int64_t tokens, int64_t cols, int64_t ldx, float *norms);

/* RIA (relative importance and activations, Zhang et al. 2024):
 *   score_ij = (|w_ij| / sum_k |w_kj| + |w_ij| / sum_k |w_ik|) * norms[j]^power
 * (the first sum over the rows of column j, the second over the columns of
 * row i), computed in double; a zero sum makes its term 0. norms may be NULL
 * (all ones, plain relative importance); RIA's default power is 0.5. */
sparq_status sparq_vnm_score_ria(const float *w, int64_t rows, int64_t cols, const float *norms, double power,
                                 float *score);

/* ------------------------------------------------------------ masks (§2) */

typedef enum sparq_vnm_select {
  /* Every C(M,4) subset of a block's columns, each scored by the sum over
   * the V rows of the row's 2 best scores inside it; the best subset wins.
   * Exact for the block; needs M <= SPARQ_VNM_JOINT_MAX_M. */
  SPARQ_VNM_SELECT_JOINT = 0,
  /* Keep the 4 columns with the largest score sum over the block's rows,
   * then each row's 2 best of them. Never retains more than joint. */
  SPARQ_VNM_SELECT_TWOSTEP = 1,
} sparq_vnm_select;

/* Selects a V:2:M mask. score is rows x cols (see "Scores"). row_perm
 * (rows_pad entries) and col_perm (cols_pad entries) define the matrix the
 * mask is chosen on, S_p[r][c] = score[row_perm[r]][col_perm[c]] with
 * indices >= rows or >= cols scoring 0; NULL means the identity. mask gets
 * rows_pad x cols_pad bytes, 1 = kept, in that permuted order. *retained
 * (may be NULL) gets the sum of the kept scores. */
sparq_status sparq_vnm_select_mask(const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                                   sparq_vnm_select select, const int32_t *row_perm, const int32_t *col_perm,
                                   uint8_t *mask, double *retained);

/* Checks that mask (rows_pad x cols_pad, nonzero = kept) is a valid V:2:M
 * mask: in every block at most 4 columns of each group hold kept entries and
 * every row keeps exactly 2 per group. The message names the first
 * offending block, group and row. */
sparq_status sparq_vnm_mask_check(const uint8_t *mask, int64_t rows_pad, int64_t cols_pad, sparq_vnm_pattern p);

/* Sum of score over the kept entries of mask, in the same permuted padded
 * order as sparq_vnm_select_mask (NaN as 0, +inf as FLT_MAX). */
double sparq_vnm_retained(const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                          const int32_t *row_perm, const int32_t *col_perm, const uint8_t *mask);

/* ------------------------------------------------ channel permutation (§4) */

typedef struct sparq_vnm_permute_opts {
  int rounds;        /* alternations (input search, then output search); 0: 2 */
  int64_t col_tries; /* column swaps proposed per input phase; 0: automatic */
  int64_t row_tries; /* row swaps proposed per output phase; 0: automatic */
  uint64_t seed;     /* picks the proposals */
} sparq_vnm_permute_opts;

/* Searches input and output channel permutations that raise the score
 * retained by the V:2:M mask of `select`. Starts from the identity and
 * alternates: with the rows fixed, propose swaps of two columns in
 * different groups; with the columns fixed, swaps of two rows in different
 * blocks; a swap is kept only if it raises the exact objective of the
 * blocks it touches. The automatic try counts scale with the shape and are
 * capped so a 4096 x 4096 layer takes seconds, not minutes.
 *
 * Writes row_perm (rows_pad) and col_perm (cols_pad), permutations of the
 * padded index ranges in the sense of sparq_vnm_select_mask. *before and
 * *after (either may be NULL) get the retained score of the identity and of
 * the result; after >= before always (the identity is returned when the
 * search finds nothing better). Joint needs M <= SPARQ_VNM_JOINT_MAX_M. */
sparq_status sparq_vnm_permute(const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                               sparq_vnm_select select, const sparq_vnm_permute_opts *opts, int32_t *row_perm,
                               int32_t *col_perm, double *before, double *after);

/* ------------------------------------------------------ packed format */

/* A pruned weight matrix, packed. Layout (all row-major, C order):
 *   values   rows_pad x groups x 2 floats: the 2 kept weights of packed row
 *            r in group g, in the order of their positions below;
 *   meta     rows_pad x groups bytes: bits 0-1 and 2-3 are the positions
 *            (0..3, first < second) of those weights among the block's 4
 *            kept columns (the 2:4 metadata);
 *   columns  column_blocks x groups x 4 int32: the kept columns of block b
 *            and group g as indices into the ORIGINAL input features (the
 *            input permutation is folded in); an index >= cols is padding.
 *            column_blocks = rows_pad / v, or 1 when m == 4 (every block
 *            keeps all 4 columns);
 *   row_perm rows_pad int32: the original output row of packed row r (the
 *            output permutation; >= rows is padding);
 *   col_perm cols_pad int32: the original input column at permuted position
 *            c; packed group g covers positions g*m .. g*m + m - 1.
 * So W_masked[row_perm[r]][columns[r / v][g][pos]] = values[r][g][k], and
 * the GEMM reads X columns and writes Y columns through these indices: the
 * permutations cost nothing at run time. Create with sparq_vnm_pack or
 * sparq_vnm_load, free with sparq_vnm_free; fields are read-only. */
typedef struct sparq_vnm_matrix {
  int64_t rows, cols;         /* logical shape R x C */
  int64_t rows_pad, cols_pad; /* multiples of v and m */
  sparq_vnm_pattern pattern;
  int64_t groups;        /* cols_pad / m */
  int64_t column_blocks; /* rows_pad / v, or 1 when m == 4 */
  float *values;
  uint8_t *meta;
  int32_t *columns;
  int32_t *row_perm;
  int32_t *col_perm;
  int32_t *row_inv; /* inverse of row_perm (derived) */
  uint16_t *kpos;   /* rows_pad x groups (derived, for the GEMM): the positions
                       0..m-1 of the 2 kept weights inside their permuted
                       group, first value in the low byte */
} sparq_vnm_matrix;

/* Packs w (rows x cols, leading dimension ldw >= cols) under mask
 * (rows_pad x cols_pad, in the order given by row_perm / col_perm as in
 * sparq_vnm_select_mask; NULL perms = identity). The mask must pass
 * sparq_vnm_mask_check; a block whose kept entries span fewer than 4
 * columns of a group is completed with its lowest unused columns, and
 * values that fall on padding are 0. Weights are copied bit for bit (NaN
 * payloads and -0 included). */
sparq_status sparq_vnm_pack(const float *w, int64_t rows, int64_t cols, int64_t ldw, sparq_vnm_pattern p,
                            const uint8_t *mask, const int32_t *row_perm, const int32_t *col_perm,
                            sparq_vnm_matrix **out);

void sparq_vnm_free(sparq_vnm_matrix *m);

/* Writes the masked dense matrix in the original order into w (rows x cols,
 * leading dimension ldw): kept weights bit-exact, everything else +0. */
sparq_status sparq_vnm_unpack(const sparq_vnm_matrix *m, float *w, int64_t ldw);

/* Checks every invariant of a packed matrix (shapes, permutations, meta
 * codes, kept columns belonging to their group); sparq_vnm_load runs it on
 * every file. */
sparq_status sparq_vnm_validate(const sparq_vnm_matrix *m, const char *who);

/* Saves m as safetensors: tensors NAME.vnm.values (F32 [rows_pad, groups,
 * 2]), NAME.vnm.meta (U8 [rows_pad, groups]), NAME.vnm.columns (I32
 * [column_blocks, groups, 4]), NAME.vnm.row_perm (I32 [rows_pad]),
 * NAME.vnm.col_perm (I32 [cols_pad]), NAME.vnm.shape (I64 [2]: rows, cols)
 * and NAME.vnm.pattern (I32 [3]: v, n, m), and metadata "sparq.vnm" =
 * "NAME" plus "NAME.pattern" = "V:2:M" for people reading the header. */
sparq_status sparq_vnm_save(const char *path, const char *name, const sparq_vnm_matrix *m);

/* Loads the packed matrix NAME from an open safetensors file and validates
 * it (hostile files fail with SPARQ_ERR_FORMAT naming the path). name NULL
 * picks the only packed matrix in the file. */
sparq_status sparq_vnm_load(const sparq_safetensors *st, const char *name, sparq_vnm_matrix **out);

/* ------------------------------------------------------ sparse GEMM (§7) */

/* Y = X * W^T with W packed: x is tokens x m->cols (leading dimension
 * ldx >= cols), y is tokens x m->rows (ldy >= rows), both FP32 row-major in
 * the original feature order. Does the 2 useful multiply-adds per row and
 * group only: FLOPs are 2/M of the dense product. Pruned weights are never
 * multiplied, so a NaN or inf in x reaches exactly the outputs whose row
 * keeps that column. AVX-512 when sparq_isa_active() allows, else a
 * portable path; OpenMP threads; results do not depend on the thread
 * count. Allocates scratch of 64 x (rows_pad + cols_pad) floats per
 * thread (one token tile of X^T and of Y^T). tokens == 0 is valid. */
sparq_status sparq_vnm_gemm(const sparq_vnm_matrix *m, int64_t tokens, const float *x, int64_t ldx, float *y,
                            int64_t ldy);

/* The scalar reference: one output at a time, double accumulation in group
 * order, straight from the packed arrays. */
sparq_status sparq_vnm_gemm_ref(const sparq_vnm_matrix *m, int64_t tokens, const float *x, int64_t ldx, float *y,
                                int64_t ldy);

/* ------------------------------------------------------------- pipeline */

typedef struct sparq_vnm_prune_opts {
  sparq_vnm_pattern pattern;
  sparq_vnm_select select;
  bool permute;
  sparq_vnm_permute_opts permute_opts;
} sparq_vnm_prune_opts;

typedef struct sparq_vnm_prune_report {
  double total;            /* sum of all scores (NaN as 0, +inf as FLT_MAX) */
  double retained_plain;   /* retained by the mask without permutation */
  double retained;         /* retained by the packed mask */
  double seconds_permute;  /* wall time of the permutation search */
} sparq_vnm_prune_report;

/* Score (given, rows x cols), optional permutation search, mask selection
 * and packing in one call. score NULL means ABS. report may be NULL. */
sparq_status sparq_vnm_prune(const float *w, int64_t rows, int64_t cols, const float *score,
                             const sparq_vnm_prune_opts *opts, sparq_vnm_matrix **out,
                             sparq_vnm_prune_report *report);

#ifdef __cplusplus
}
#endif
#endif
