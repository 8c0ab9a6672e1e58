/* GELU with the tanh approximation (DiT's MLP activation): the scalar
 * references in double, and one plain-C kernel instantiated twice
 * (portable, and in an AVX-512 target function where GCC vectorizes the
 * same loop with zmm registers; ISO C keeps FP contraction off, so both
 * give the same bits).
 *
 *   GELU_tanh(x)  = 0.5 x (1 + tanh(u)) = x s,  s = 1 / (1 + exp(-2u)),
 *   u = k0 (x + k1 x^3),  k0 = sqrt(2/pi),  k1 = 0.044715,
 *   GELU_tanh'(x) = s + 2 x u' s (1 - s),  u' = k0 (1 + 3 k1 x^2),
 *   1 - s = exp(-2u) s  (no cancellation when s is near 1).
 * The sigmoid form needs one exp and one division, and stays accurate in
 * the left tail where 1 + tanh(u) cancels. Elementwise, so any chunking and
 * any thread count give the same bits. */
#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define GT_K0 0.79788456080286535588 /* sqrt(2 / pi) */
#define GT_K1 0.044715
/* |x| beyond which the kernel evaluates at the clamp: -2u = 87.3 there, so
 * exp(-2u) stays finite, s(10) is 1 in float (out = x on the right) and
 * |10 s(-10)| < 2e-37 on the left (the true value is smaller still). */
#define GT_CLAMP 10.0f
/* Round-to-nearest of |v| < 2^22 by adding and subtracting 1.5 * 2^23:
 * plain arithmetic, which vectorizes without SSE4.1 rounding instructions. */
#define GT_ROUND_MAGIC 12582912.0f

/* ------------------------------------------------------------ references */

void sparq_nn_gelu_tanh_forward_ref(float *out, const float *inp, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const double x = inp[i];
    if (x > 50.0) { /* s = 1 in double; also keeps x^3 finite */
      out[i] = (float)x;
    } else if (x < -50.0) { /* |x s| < 1e-300 */
      out[i] = -0.0f;
    } else {
      const double u = GT_K0 * (x + GT_K1 * x * x * x);
      out[i] = (float)(x / (1.0 + exp(-2.0 * u)));
    }
  }
}

void sparq_nn_gelu_tanh_backward_ref(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const double x = inp[i];
    double g;
    if (x > 50.0) {
      g = 1.0;
    } else if (x < -50.0) {
      g = 0.0;
    } else {
      const double u = GT_K0 * (x + GT_K1 * x * x * x), du = GT_K0 * (1.0 + 3.0 * GT_K1 * x * x);
      const double e = exp(-2.0 * u), s = 1.0 / (1.0 + e);
      g = s + 2.0 * x * du * s * (e * s);
    }
    dinp[i] = (float)((double)dout[i] * g);
  }
}

/* ----------------------------------------------------------- the kernel */

/* exp(y) for |y| <= 87.5 (a NaN is replaced by a finite value; the callers'
 * results stay NaN through x): Cody-Waite reduction y = n ln2 + r and
 * nn_internal.h's polynomial, then 2^n built in the exponent bits. */
NN_INLINE float gt_exp(float y) {
  y = y > -87.5f ? y : -87.5f;
  y = y < 87.5f ? y : 87.5f;
  const float nf = (y * NN_LOG2E + GT_ROUND_MAGIC) - GT_ROUND_MAGIC;
  const float r = (y - nf * NN_LN2_HI) - nf * NN_LN2_LO;
  float p = NN_EXP_E5;
  p = p * r + NN_EXP_E4;
  p = p * r + NN_EXP_E3;
  p = p * r + NN_EXP_E2;
  p = p * r + NN_EXP_E1;
  p = p * r + NN_EXP_E0;
  const float er = 1.0f + (r + r * r * p);
  const int32_t bits = ((int32_t)nf + 127) * (1 << 23); /* n in -126..127: a normal 2^n */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return er * scale;
}

NN_INLINE float gt_clamp(float x) {
  x = x < -GT_CLAMP ? -GT_CLAMP : x;
  return x > GT_CLAMP ? GT_CLAMP : x;
}

NN_INLINE float gt_forward_one(float x) {
  const float xc = gt_clamp(x);
  const float u = (float)GT_K0 * (xc + (float)GT_K1 * (xc * xc * xc));
  const float s = 1.0f / (1.0f + gt_exp(-2.0f * u));
  return (x > 0.0f ? x : xc) * s; /* x itself on the right keeps out = x beyond the clamp */
}

NN_INLINE float gt_grad_one(float x) {
  const float xc = gt_clamp(x), x2 = xc * xc;
  const float u = (float)GT_K0 * (xc + (float)GT_K1 * (x2 * xc));
  const float du = (float)GT_K0 * (1.0f + (float)(3.0 * GT_K1) * x2);
  const float e = gt_exp(-2.0f * u), s = 1.0f / (1.0f + e);
  return s + 2.0f * xc * du * (s * (e * s));
}

/* In place and out of place get their own loops, so the vectorizer needs no
 * run-time overlap check (which would send in-place calls to scalar code). */
NN_INLINE void gt_forward(float *out, const float *inp, size_t n) {
  if (out == inp) {
    for (size_t i = 0; i < n; i++) out[i] = gt_forward_one(out[i]);
  } else {
    float *restrict o = out;
    const float *restrict x = inp;
    for (size_t i = 0; i < n; i++) o[i] = gt_forward_one(x[i]);
  }
}

NN_INLINE void gt_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  if (dinp == dout) {
    const float *restrict x = inp;
    for (size_t i = 0; i < n; i++) dinp[i] = dinp[i] * gt_grad_one(x[i]);
  } else {
    float *restrict d = dinp;
    const float *restrict x = inp, *restrict g = dout;
    for (size_t i = 0; i < n; i++) d[i] = g[i] * gt_grad_one(x[i]);
  }
}

static void gt_forward_portable(float *out, const float *inp, const float *unused, size_t n) {
  (void)unused;
  gt_forward(out, inp, n);
}
static void gt_backward_portable(float *dinp, const float *inp, const float *dout, size_t n) {
  gt_backward(dinp, inp, dout, n);
}
#ifdef SPARQ_HAVE_X86_SIMD
NN_TARGET_AVX512 static void gt_forward_avx512(float *out, const float *inp, const float *unused, size_t n) {
  (void)unused;
  gt_forward(out, inp, n);
}
NN_TARGET_AVX512 static void gt_backward_avx512(float *dinp, const float *inp, const float *dout, size_t n) {
  gt_backward(dinp, inp, dout, n);
}
#endif

/* ------------------------------------------------------------- dispatch */

void sparq_nn_gelu_tanh_forward(float *out, const float *inp, size_t n) {
  nn_map_fn k = gt_forward_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) k = gt_forward_avx512;
#endif
  nn_map_chunks(k, out, inp, NULL, n);
}

void sparq_nn_gelu_tanh_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  nn_map_fn k = gt_backward_portable;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) k = gt_backward_avx512;
#endif
  nn_map_chunks(k, dinp, inp, dout, n);
}
