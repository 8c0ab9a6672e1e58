/* Argument checks shared by sparq_sgemm and its reference. */
#ifndef SPARQ_KERNELS_GEMM_CHECK_H
#define SPARQ_KERNELS_GEMM_CHECK_H

#include "sparq/kernels.h"

/* Validates sizes, leading dimensions and pointers of a row-major GEMM;
 * `who` names the caller in the message. */
sparq_status gemm_check_args(const char *who, sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n,
                             int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                             const float *c, int64_t ldc);

/* C = beta * C for the k == 0 case, with beta == 0 writing exact zeros. */
void gemm_scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc);

#endif
