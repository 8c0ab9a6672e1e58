/* Importance scores for V:N:M pruning (spec §2): ABS and RIA. Sums run in
 * double and in a fixed order per row or column, so the scores do not
 * depend on the thread count. */
#include <math.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

/* Columns per parallel chunk of a column-wise sum: a few cache lines of
 * every row, so each thread walks rows with unit stride. */
enum { COL_CHUNK = 256 };

static sparq_status check_matrix(const char *who, const void *a, const void *b, int64_t rows, int64_t cols) {
  size_t n;
  if (rows < 0 || cols < 0 || !sparq_size_mul((size_t)rows, (size_t)cols, &n))
    return sparq_fail(SPARQ_ERR_ARG, "%s: bad shape %lld x %lld", who, (long long)rows, (long long)cols);
  if (n > 0 && (!a || !b)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL matrix", who);
  return SPARQ_OK;
}

sparq_status sparq_vnm_score_abs(const float *w, int64_t rows, int64_t cols, float *score) {
  sparq_status st = check_matrix("sparq_vnm_score_abs", w, score, rows, cols);
  if (st != SPARQ_OK) return st;
  int64_t n = rows * cols;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) score[i] = fabsf(w[i]);
  return SPARQ_OK;
}

sparq_status sparq_vnm_column_norms(const float *x, int64_t tokens, int64_t cols, int64_t ldx, float *norms) {
  sparq_status st = check_matrix("sparq_vnm_column_norms", x, norms, tokens, cols);
  if (st != SPARQ_OK) return st;
  if (ldx < cols)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_column_norms: ldx %lld is smaller than the %lld columns",
                      (long long)ldx, (long long)cols);
  if (cols > 0 && !norms) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_column_norms: NULL norms");
  int64_t chunks = (cols + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < chunks; ch++) {
    double acc[COL_CHUNK] = {0};
    int64_t c0 = ch * COL_CHUNK, n = cols - c0 < COL_CHUNK ? cols - c0 : COL_CHUNK;
    for (int64_t t = 0; t < tokens; t++)
      for (int64_t j = 0; j < n; j++) {
        double v = x[t * ldx + c0 + j];
        acc[j] += v * v;
      }
    for (int64_t j = 0; j < n; j++) norms[c0 + j] = (float)sqrt(acc[j]);
  }
  return SPARQ_OK;
}

sparq_status sparq_vnm_score_ria(const float *w, int64_t rows, int64_t cols, const float *norms, double power,
                                 float *score) {
  sparq_status st = check_matrix("sparq_vnm_score_ria", w, score, rows, cols);
  if (st != SPARQ_OK) return st;
  if (!isfinite(power)) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_score_ria: power %g is not finite", power);
  if (rows == 0 || cols == 0) return SPARQ_OK;
  double *row_sum = sparq_alloc((size_t)rows * sizeof(double), "sparq_vnm_score_ria row sums");
  double *col_sum = sparq_alloc((size_t)cols * sizeof(double), "sparq_vnm_score_ria column sums");
  double *act = sparq_alloc((size_t)cols * sizeof(double), "sparq_vnm_score_ria activation factors");
  if (!row_sum || !col_sum || !act) {
    sparq_free(row_sum);
    sparq_free(col_sum);
    sparq_free(act);
    return SPARQ_ERR_NOMEM;
  }
  for (int64_t j = 0; j < cols; j++) act[j] = norms ? pow((double)norms[j], power) : 1.0;
  int64_t chunks = (cols + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < rows; i++) {
      double s = 0;
      for (int64_t j = 0; j < cols; j++) s += fabs((double)w[i * cols + j]);
      row_sum[i] = s;
    }
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < chunks; ch++) {
      int64_t c0 = ch * COL_CHUNK, n = cols - c0 < COL_CHUNK ? cols - c0 : COL_CHUNK;
      for (int64_t j = 0; j < n; j++) col_sum[c0 + j] = 0;
      for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < n; j++) col_sum[c0 + j] += fabs((double)w[i * cols + c0 + j]);
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) {
        double a = fabs((double)w[i * cols + j]);
        double rel = (col_sum[j] != 0 ? a / col_sum[j] : 0) + (row_sum[i] != 0 ? a / row_sum[i] : 0);
        score[i * cols + j] = (float)(rel * act[j]);
      }
  }
  sparq_free(row_sum);
  sparq_free(col_sum);
  sparq_free(act);
  return SPARQ_OK;
}
