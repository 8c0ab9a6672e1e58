/* Linear layer in PyTorch's layout through sparq_sgemm:
 *   forward   out[N,OC] = inp[N,C] w[OC,C]^T (+ bias[OC])
 *   backward  dinp[N,C] += dout[N,OC] w[OC,C]     (beta = 1)
 *             dw[OC,C]  += dout^T inp             (beta = 1)
 *             dbias[OC] += sum_n dout[n,:]        (rows in row order)
 * The bias add is parallel over rows; the bias gradient is parallel over
 * columns (each thread owns a range), so neither depends on the thread
 * count. Whether the GEMMs do is the GEMM backend's business. */
#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"
#include "sparq/nn.h"

static int64_t at_least_1(int64_t x) { return x > 1 ? x : 1; }

static sparq_status check_sizes(const char *who, int64_t N, int64_t C, int64_t OC) {
  if (N < 0 || C < 0 || OC < 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: negative size N=%lld C=%lld OC=%lld", who, (long long)N, (long long)C,
                      (long long)OC);
  return SPARQ_OK;
}

static void add_bias_row(float *restrict out, const float *restrict bias, int64_t OC) {
  for (int64_t o = 0; o < OC; o++) out[o] += bias[o];
}

sparq_status sparq_nn_linear_forward(float *out, const float *inp, const float *w, const float *bias, int64_t N,
                                     int64_t C, int64_t OC) {
  static const char who[] = "sparq_nn_linear_forward";
  sparq_status st = check_sizes(who, N, C, OC);
  if (st != SPARQ_OK) return st;
  if (N == 0 || OC == 0) return SPARQ_OK;
  if (!out || (C > 0 && (!inp || !w))) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL out, inp or w", who);
  st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, N, OC, C, 1.0f, inp, at_least_1(C), w, at_least_1(C), 0.0f, out, OC);
  if (st != SPARQ_OK || !bias) return st;
#pragma omp parallel if (N * OC >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) add_bias_row(out + n * OC, bias, OC);
  }
  return SPARQ_OK;
}

/* dbias[c] += dout[n, c] for the columns [c0, c1), rows in order. */
static void bias_grad_columns(float *restrict dbias, const float *restrict dout, int64_t N, int64_t OC, int64_t c0,
                              int64_t c1) {
  for (int64_t n = 0; n < N; n++) {
    const float *restrict g = dout + n * OC;
    for (int64_t c = c0; c < c1; c++) dbias[c] += g[c];
  }
}

sparq_status sparq_nn_linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                      const float *w, int64_t N, int64_t C, int64_t OC) {
  static const char who[] = "sparq_nn_linear_backward";
  sparq_status st = check_sizes(who, N, C, OC);
  if (st != SPARQ_OK) return st;
  if (N == 0 || OC == 0) return SPARQ_OK; /* every gradient gets += 0 */
  if (!dout) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL dout", who);
  if (dinp && C > 0) {
    if (!w) return sparq_fail(SPARQ_ERR_ARG, "%s: dinp wanted but w is NULL", who);
    st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    if (st != SPARQ_OK) return st;
  }
  if (dw && C > 0) {
    if (!inp) return sparq_fail(SPARQ_ERR_ARG, "%s: dw wanted but inp is NULL", who);
    st = sparq_sgemm(SPARQ_TRANS, SPARQ_NO_TRANS, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (st != SPARQ_OK) return st;
  }
  if (dbias) {
#pragma omp parallel if (N * OC >= NN_PAR_MIN)
    {
      sparq_thread_set_ftz();
      int64_t c0, c1;
      nn_thread_columns(OC, &c0, &c1);
      if (c0 < c1) bias_grad_columns(dbias, dout, N, OC, c0, c1);
    }
  }
  return SPARQ_OK;
}
