/* sparq_sgemm: the dense FP32 GEMM every layer runs on, delegated to a tuned
 * library (oneDNN by default) rather than written by hand. */
#include <limits.h>
#include <stdio.h>

#include "kernels/gemm_check.h"

#if defined(SPARQ_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#elif defined(SPARQ_GEMM_CBLAS)
#include <cblas.h>
#endif

const char *sparq_gemm_backend(void) {
#if defined(SPARQ_GEMM_DNNL)
  static char name[64];
  if (!name[0]) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(name, sizeof name, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  }
  return name;
#else
  return "CBLAS";
#endif
}

sparq_status sparq_sgemm(sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n, int64_t k,
                         float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                         float beta, float *c, int64_t ldc) {
  sparq_status st = gemm_check_args("sparq_sgemm", ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  if (st != SPARQ_OK) return st;
  if (m == 0 || n == 0) return SPARQ_OK;
  /* Libraries differ on k == 0 and on whether beta == 0 reads C; pin both
   * down here so every backend has BLAS semantics. */
  if (k == 0 || alpha == 0.0f) {
    gemm_scale_c(m, n, beta, c, ldc);
    return SPARQ_OK;
  }
#if defined(SPARQ_GEMM_DNNL)
  dnnl_status_t ds = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (ds != dnnl_success)
    return sparq_fail(SPARQ_ERR_INTERNAL, "sparq_sgemm: dnnl_sgemm failed with status %d (m=%lld n=%lld k=%lld)",
                      (int)ds, (long long)m, (long long)n, (long long)k);
#else
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "sparq_sgemm: the CBLAS backend takes sizes up to INT_MAX");
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
#endif
  return SPARQ_OK;
}
