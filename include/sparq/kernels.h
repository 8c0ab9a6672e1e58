/* Compute kernels: dense GEMM and the machine peak probe. Every optimized
 * kernel has a scalar reference (suffix _ref) that tests compare against. */
#ifndef SPARQ_KERNELS_H
#define SPARQ_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_transpose { SPARQ_NO_TRANS = 0, SPARQ_TRANS = 1 } sparq_transpose;

/* C = alpha * op(A) * op(B) + beta * C, all row-major FP32.
 *   op(A): m x k (A is m x k with lda >= k, or k x m with lda >= m if ta)
 *   op(B): k x n (B is k x n with ldb >= n, or n x k with ldb >= k if tb)
 *   C:     m x n with ldc >= n
 * beta == 0 overwrites C without reading it (NaN in C does not propagate).
 * m, n or k == 0 is valid (k == 0 scales C by beta).
 * Runs on oneDNN's dnnl_sgemm (or CBLAS when built with
 * SPARQ_GEMM_BACKEND=cblas) with sparq's thread count. */
sparq_status sparq_sgemm(sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n, int64_t k,
                         float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                         float beta, float *c, int64_t ldc);

/* Plain triple loop with double accumulation: the oracle for sparq_sgemm. */
sparq_status sparq_sgemm_ref(sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n, int64_t k,
                             float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                             float beta, float *c, int64_t ldc);

/* Name of the GEMM backend compiled in ("oneDNN 2.6.3", "CBLAS"). */
const char *sparq_gemm_backend(void);

/* Peak arithmetic rates of this machine, measured by short register-only
 * loops (no memory traffic), in units of 1e9 operations per second, where one
 * fused multiply-add counts as 2 operations (so GFLOP/s and GOP/s compare
 * with GEMM's 2*m*n*k). A rate of 0 means the instruction is not available
 * at the active ISA. */
typedef struct sparq_peak {
  int threads;            /* the N of the *_n fields */
  double fp32_fma_1;      /* FP32 FMA, 1 thread (AVX-512 or AVX2) */
  double fp32_fma_n;      /* FP32 FMA, N threads */
  double int8_vnni_1;     /* vpdpbusd: 4 u8*s8 products + add per lane = 8 ops */
  double int8_vnni_n;
  double bf16_dot_1;      /* vdpbf16ps: 2 bf16 products + add per lane = 4 ops */
  double bf16_dot_n;
  double fp16_fma_1;      /* AVX512-FP16 vfmadd*ph */
  double fp16_fma_n;
} sparq_peak;

/* Measures the rates; takes about `seconds` in total (0.5 is plenty). */
sparq_status sparq_peak_measure(sparq_peak *out, double seconds);
/* The FP32 peak at `threads` threads from a cached measurement (measured on
 * first use); the figure "fraction of peak" divides by. */
double sparq_peak_fp32(int threads);

#ifdef __cplusplus
}
#endif
#endif
