/* GELU with the exact erf: the scalar references (libm in double), the
 * portable twin of the vector algorithm (the same erfc formula evaluated in
 * double), the dispatch to the AVX-512 kernels and the chunked OpenMP loop.
 *
 *   GELU(x)   = x Phi(x),             Phi(x) = erfc(-x / sqrt 2) / 2
 *   GELU'(x)  = Phi(x) + x phi(x),    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 *
 * erfc (not 1 + erf) keeps the relative accuracy in the left tail, where
 * Phi(x) is tiny and 1 + erf(x / sqrt 2) would cancel. Elementwise, so any
 * chunking and any thread count give the same bits. */
#include <math.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

#define INV_SQRT_2PI 0.39894228040143267794

/* ------------------------------------------------------------ references */

void sparq_nn_gelu_forward_ref(float *out, const float *inp, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const double x = inp[i];
    if (isinf(x))
      out[i] = x > 0 ? (float)x : -0.0f;
    else
      out[i] = (float)(0.5 * x * erfc(-x * M_SQRT1_2));
  }
}

void sparq_nn_gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const double x = inp[i];
    double g;
    if (isinf(x))
      g = x > 0 ? 1.0 : 0.0;
    else
      g = 0.5 * erfc(-x * M_SQRT1_2) + x * exp(-0.5 * x * x) * INV_SQRT_2PI;
    dinp[i] = (float)((double)dout[i] * g);
  }
}

/* -------------------------------------------------------- portable twin */

/* Phi(x) and exp(-x^2 / 2) through nn_internal.h's erfc formula, in double
 * (so no FMA tricks are needed; x * x is exact for a float x). */
static inline void gelu_core(double x, double *phi, double *gauss) {
  const double a = fabs(x) * M_SQRT1_2;
  const double q = (a - 2.0) / (a + 2.0);
  double p = NN_ERFC_P10;
  p = p * q + NN_ERFC_P9;
  p = p * q + NN_ERFC_P8;
  p = p * q + NN_ERFC_P7;
  p = p * q + NN_ERFC_P6;
  p = p * q + NN_ERFC_P5;
  p = p * q + NN_ERFC_P4;
  p = p * q + NN_ERFC_P3;
  p = p * q + NN_ERFC_P2;
  p = p * q + NN_ERFC_P1;
  p = p * q + NN_ERFC_P0;
  const double e = exp(-0.5 * x * x);
  const double hc = 0.5 * e * p / (NN_ERFC_SCALE * (1.0 + 2.0 * a));
  *phi = x < 0 ? hc : 1.0 - hc;
  *gauss = e;
}

void nn_gelu_forward_portable(float *out, const float *inp, const float *unused, size_t n) {
  (void)unused;
  for (size_t i = 0; i < n; i++) {
    const float xf = inp[i];
    if (fabsf(xf) > NN_GELU_BIG) {
      out[i] = xf > 0 ? xf : -0.0f;
      continue;
    }
    double phi, e;
    gelu_core(xf, &phi, &e);
    out[i] = (float)(xf * phi);
  }
}

void nn_gelu_backward_portable(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float xf = inp[i];
    float g;
    if (fabsf(xf) > NN_GELU_BIG) {
      g = xf > 0 ? 1.0f : 0.0f;
    } else {
      double phi, e;
      gelu_core(xf, &phi, &e);
      g = (float)(phi + xf * e * INV_SQRT_2PI);
    }
    dinp[i] = dout[i] * g;
  }
}

/* ------------------------------------------------------------- dispatch */

void sparq_nn_gelu_forward(float *out, const float *inp, size_t n) {
  nn_map_fn k = nn_gelu_forward_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) k = nn_gelu_forward_avx512;
#endif
  nn_map_chunks(k, out, inp, NULL, n);
}

void sparq_nn_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  nn_map_fn k = nn_gelu_backward_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) k = nn_gelu_backward_avx512;
#endif
  nn_map_chunks(k, dinp, inp, dout, n);
}
