/* LayerNorm without affine parameters and with a chosen eps (DiT's norm1,
 * norm2 and norm_final: elementwise_affine=False, eps=1e-6), forward and
 * backward. The GPT LayerNorm (layernorm.c) keeps its own fixed eps and
 * affine path; this one has no weight to multiply by and no column sums to
 * form, so it is a separate, simpler pair.
 *
 * Forward, per row: mean = sum x / C, var = sum (x - mean)^2 / C (two
 * passes), rstd = 1 / sqrt(var + eps), out = (x - mean) rstd.
 * Backward, with norm = (x - mean) rstd:
 *   dinp += (dout - mean_c(dout) - norm mean_c(dout norm)) rstd.
 * Rows are independent and reduce in the fixed lane order of
 * nn_internal.h, so results depend on neither the ISA nor the thread count. */
#include <math.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

NN_INLINE void lnp_forward_row(float *restrict out, float *restrict mean, float *restrict rstd,
                               const float *restrict x, float eps, int64_t C) {
  const float m = nn_row_sum(x, C) / (float)C;
  float acc[NN_LANES] = {0};
  int64_t c = 0;
  for (; c + NN_LANES <= C; c += NN_LANES) NN_EACH_LANE(j) acc[j] += (x[c + j] - m) * (x[c + j] - m);
  for (int j = 0; c + j < C; j++) acc[j] += (x[c + j] - m) * (x[c + j] - m);
  const float s = 1.0f / sqrtf(nn_lanes_combine(acc) / (float)C + eps);
  for (c = 0; c < C; c++) out[c] = (x[c] - m) * s;
  *mean = m;
  *rstd = s;
}

NN_INLINE void lnp_backward_row(float *restrict dinp, const float *restrict dout, const float *restrict x, float m,
                                float s, int64_t C) {
  /* one lane set per pass (see layernorm.c: both in one loop vectorize badly) */
  const float dn_mean = nn_row_sum(dout, C) / (float)C;
  float acc[NN_LANES] = {0};
  int64_t c = 0;
  for (; c + NN_LANES <= C; c += NN_LANES) NN_EACH_LANE(j) acc[j] += dout[c + j] * ((x[c + j] - m) * s);
  for (int j = 0; c + j < C; j++) acc[j] += dout[c + j] * ((x[c + j] - m) * s);
  const float dnn_mean = nn_lanes_combine(acc) / (float)C;
  for (c = 0; c < C; c++) dinp[c] += (dout[c] - dn_mean - (x[c] - m) * s * dnn_mean) * s;
}

typedef void (*fwd_row_fn)(float *, float *, float *, const float *, float, int64_t);
typedef void (*bwd_row_fn)(float *, const float *, const float *, float, float, int64_t);
static void lnp_forward_row_portable(float *out, float *mean, float *rstd, const float *x, float eps, int64_t C) {
  lnp_forward_row(out, mean, rstd, x, eps, C);
}
static void lnp_backward_row_portable(float *dinp, const float *dout, const float *x, float m, float s, int64_t C) {
  lnp_backward_row(dinp, dout, x, m, s, C);
}
#ifdef SPARQ_HAVE_X86_SIMD
NN_TARGET_AVX512 static void lnp_forward_row_avx512(float *out, float *mean, float *rstd, const float *x, float eps,
                                                    int64_t C) {
  lnp_forward_row(out, mean, rstd, x, eps, C);
}
NN_TARGET_AVX512 static void lnp_backward_row_avx512(float *dinp, const float *dout, const float *x, float m, float s,
                                                     int64_t C) {
  lnp_backward_row(dinp, dout, x, m, s, C);
}
#endif

void sparq_nn_layernorm_plain_forward(float *out, float *mean, float *rstd, const float *inp, float eps, int64_t N,
                                      int64_t C) {
  if (N <= 0 || C <= 0) return;
  fwd_row_fn row = lnp_forward_row_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) row = lnp_forward_row_avx512;
#endif
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) row(out + n * C, mean + n, rstd + n, inp + n * C, eps, C);
  }
}

void sparq_nn_layernorm_plain_backward(float *dinp, const float *dout, const float *inp, const float *mean,
                                       const float *rstd, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0 || !dinp) return;
  bwd_row_fn row = lnp_backward_row_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) row = lnp_backward_row_avx512;
#endif
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) row(dinp + n * C, dout + n * C, inp + n * C, mean[n], rstd[n], C);
  }
}
