#include "kernels/gemm_check.h"

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

sparq_status gemm_check_args(const char *who, sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n,
                             int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                             const float *c, int64_t ldc) {
  if (m < 0 || n < 0 || k < 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: negative size m=%lld n=%lld k=%lld", who, (long long)m,
                      (long long)n, (long long)k);
  if ((ta != SPARQ_NO_TRANS && ta != SPARQ_TRANS) || (tb != SPARQ_NO_TRANS && tb != SPARQ_TRANS))
    return sparq_fail(SPARQ_ERR_ARG, "%s: transpose flags must be SPARQ_NO_TRANS or SPARQ_TRANS", who);
  /* Row-major: the leading dimension is the stored row length. */
  int64_t a_cols = ta ? m : k, b_cols = tb ? k : n;
  if (lda < max64(1, a_cols))
    return sparq_fail(SPARQ_ERR_ARG, "%s: lda %lld is smaller than the %lld columns of A", who,
                      (long long)lda, (long long)a_cols);
  if (ldb < max64(1, b_cols))
    return sparq_fail(SPARQ_ERR_ARG, "%s: ldb %lld is smaller than the %lld columns of B", who,
                      (long long)ldb, (long long)b_cols);
  if (ldc < max64(1, n))
    return sparq_fail(SPARQ_ERR_ARG, "%s: ldc %lld is smaller than the %lld columns of C", who,
                      (long long)ldc, (long long)n);
  if (m > 0 && n > 0 && !c) return sparq_fail(SPARQ_ERR_ARG, "%s: C is NULL", who);
  if (m > 0 && n > 0 && k > 0 && (!a || !b)) return sparq_fail(SPARQ_ERR_ARG, "%s: A or B is NULL", who);
  return SPARQ_OK;
}

void gemm_scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}
