#include "kernels/gemm_check.h"

sparq_status sparq_sgemm_ref(sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n, int64_t k,
                             float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                             float beta, float *c, int64_t ldc) {
  sparq_status st = gemm_check_args("sparq_sgemm_ref", ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  if (st != SPARQ_OK) return st;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = 0;
      for (int64_t p = 0; p < k; p++) {
        double x = ta ? a[p * lda + i] : a[i * lda + p];
        double y = tb ? b[j * ldb + p] : b[p * ldb + j];
        acc += x * y;
      }
      float prior = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = (float)((double)alpha * acc + (double)prior);
    }
  return SPARQ_OK;
}
