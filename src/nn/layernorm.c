/* LayerNorm over the last dimension (eps 1e-5, biased variance), forward and
 * the llm.c-style backward.
 *
 * Forward, per row n of inp [N,C]:
 *   mean = sum_c x / C,  var = sum_c (x - mean)^2 / C  (two passes),
 *   rstd = 1 / sqrt(var + 1e-5),  out = (x - mean) rstd w + b.
 * Backward, with norm = (x - mean) rstd and dnorm = w dout:
 *   dinp += (dnorm - mean_c(dnorm) - norm mean_c(dnorm norm)) rstd,
 *   dw += sum_n norm dout,  db += sum_n dout.
 * Rows are independent (parallel over rows; the row sums use the fixed lane
 * order of nn_internal.h); dw and db are column sums over rows in row order
 * with each thread owning a range of columns, so no result depends on the
 * thread count. */
#include <math.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

#define LN_EPS 1e-5f

/* The portable and AVX-512 instantiations of the row kernels give the same
 * bits only without FP contraction: GCC does not contract in ISO C mode
 * (-std=c11), clang does unless told. */
#ifdef __clang__
#pragma clang fp contract(off)
#endif

NN_INLINE void ln_forward_row(float *restrict out, float *restrict mean, float *restrict rstd, const float *restrict x,
                              const float *restrict w, const float *restrict b, int64_t C) {
  const float m = nn_row_sum(x, C) / (float)C;
  float acc[NN_LANES] = {0};
  int64_t c = 0;
  for (; c + NN_LANES <= C; c += NN_LANES) NN_EACH_LANE(j) acc[j] += (x[c + j] - m) * (x[c + j] - m);
  for (int j = 0; c + j < C; j++) acc[j] += (x[c + j] - m) * (x[c + j] - m);
  const float var = nn_lanes_combine(acc) / (float)C;
  const float s = 1.0f / sqrtf(var + LN_EPS);
  if (b)
    for (c = 0; c < C; c++) out[c] = (x[c] - m) * s * w[c] + b[c];
  else
    for (c = 0; c < C; c++) out[c] = (x[c] - m) * s * w[c];
  *mean = m;
  *rstd = s;
}

/* The row kernels' two instantiations (see NN_INLINE in nn_internal.h). */
typedef void (*fwd_row_fn)(float *, float *, float *, const float *, const float *, const float *, int64_t);
static void ln_forward_row_portable(float *out, float *mean, float *rstd, const float *x, const float *w,
                                    const float *b, int64_t C) {
  ln_forward_row(out, mean, rstd, x, w, b, C);
}
#ifdef SPARQ_HAVE_X86_SIMD
NN_TARGET_AVX512 static void ln_forward_row_avx512(float *out, float *mean, float *rstd, const float *x, const float *w,
                                                   const float *b, int64_t C) {
  ln_forward_row(out, mean, rstd, x, w, b, C);
}
#endif

void sparq_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                                int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  fwd_row_fn row = ln_forward_row_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) row = ln_forward_row_avx512;
#endif
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) row(out + n * C, mean + n, rstd + n, inp + n * C, w, b, C);
  }
}

NN_INLINE void ln_backward_row(float *restrict dinp, const float *restrict dout, const float *restrict x,
                               const float *restrict w, float m, float s, int64_t C) {
  /* two passes with one lane set each: with both in one loop GCC vectorizes
   * the outer loop through permutes */
  float a1[NN_LANES] = {0}, a2[NN_LANES] = {0};
  int64_t c = 0;
  for (; c + NN_LANES <= C; c += NN_LANES) NN_EACH_LANE(j) a1[j] += w[c + j] * dout[c + j];
  for (int j = 0; c + j < C; j++) a1[j] += w[c + j] * dout[c + j];
  for (c = 0; c + NN_LANES <= C; c += NN_LANES) NN_EACH_LANE(j) a2[j] += w[c + j] * dout[c + j] * ((x[c + j] - m) * s);
  for (int j = 0; c + j < C; j++) a2[j] += w[c + j] * dout[c + j] * ((x[c + j] - m) * s);
  const float dn_mean = nn_lanes_combine(a1) / (float)C;
  const float dnn_mean = nn_lanes_combine(a2) / (float)C;
  for (c = 0; c < C; c++) {
    const float norm = (x[c] - m) * s;
    dinp[c] += (w[c] * dout[c] - dn_mean - norm * dnn_mean) * s;
  }
}

/* dw[c] += sum_n norm[n,c] dout[n,c] and db[c] += sum_n dout[n,c] for the
 * columns [c0, c1), rows in order. */
NN_INLINE void ln_backward_columns(float *restrict dw, float *restrict db, const float *restrict dout,
                                   const float *restrict inp, const float *restrict mean, const float *restrict rstd,
                                   int64_t N, int64_t C, int64_t c0, int64_t c1) {
  for (int64_t n = 0; n < N; n++) {
    const float *restrict x = inp + n * C, *restrict g = dout + n * C;
    const float m = mean[n], s = rstd[n];
    if (dw)
      for (int64_t c = c0; c < c1; c++) dw[c] += (x[c] - m) * s * g[c];
    if (db)
      for (int64_t c = c0; c < c1; c++) db[c] += g[c];
  }
}

typedef void (*bwd_row_fn)(float *, const float *, const float *, const float *, float, float, int64_t);
typedef void (*bwd_col_fn)(float *, float *, const float *, const float *, const float *, const float *, int64_t,
                           int64_t, int64_t, int64_t);
static void ln_backward_row_portable(float *dinp, const float *dout, const float *x, const float *w, float m, float s,
                                     int64_t C) {
  ln_backward_row(dinp, dout, x, w, m, s, C);
}
static void ln_backward_columns_portable(float *dw, float *db, const float *dout, const float *inp, const float *mean,
                                         const float *rstd, int64_t N, int64_t C, int64_t c0, int64_t c1) {
  ln_backward_columns(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
}
#ifdef SPARQ_HAVE_X86_SIMD
NN_TARGET_AVX512 static void ln_backward_row_avx512(float *dinp, const float *dout, const float *x, const float *w,
                                                    float m, float s, int64_t C) {
  ln_backward_row(dinp, dout, x, w, m, s, C);
}
NN_TARGET_AVX512 static void ln_backward_columns_avx512(float *dw, float *db, const float *dout, const float *inp,
                                                        const float *mean, const float *rstd, int64_t N, int64_t C,
                                                        int64_t c0, int64_t c1) {
  ln_backward_columns(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
}
#endif

void sparq_nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                                 const float *mean, const float *rstd, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  bwd_row_fn row = ln_backward_row_portable;
  bwd_col_fn cols = ln_backward_columns_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) row = ln_backward_row_avx512, cols = ln_backward_columns_avx512;
#endif
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
    if (dinp) {
#pragma omp for schedule(static) nowait
      for (int64_t n = 0; n < N; n++) row(dinp + n * C, dout + n * C, inp + n * C, w, mean[n], rstd[n], C);
    }
    if (dw || db) {
      int64_t c0, c1;
      nn_thread_columns(C, &c0, &c1);
      if (c0 < c1) cols(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
    }
  }
}
