/* AVX-512 GELU (exact erf) forward and backward, 32 floats per step.
 *
 * Per x, with a = |x| / sqrt 2 and Phi(x) = erfc(-x / sqrt 2) / 2:
 *   erfc(a) = exp(-x^2 / 2) (1 + p(q)) / (1 + 2a),  q = (a - 2) / (a + 2)
 * (see nn_internal.h), then Phi = erfc / 2 for x < 0 and 1 - erfc / 2 else.
 * The exponential is what makes the left tail hard: x^2 / 2 reaches 112, so
 * one rounding of it would cost up to 112 * 2^-24 relative (about 100 ulp)
 * in exp. It is therefore carried as xx + err (the FMA gives the rounding
 * error of x * x exactly) and err is folded into the reduced argument. The
 * measured worst errors are in tests/test_nn_gelu.c (5 ulp forward). */
#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <stdint.h>

#include "nn/nn_internal.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define INLINE static inline __attribute__((always_inline))

/* The kernels run GELU_U vectors in lockstep, so the two independent
 * dependency chains (about 40 operations each) sit side by side in program
 * order; a few percent faster than one vector at a time on Zen 4. */
#define GELU_U 2
#define EACH(k) _Pragma("GCC unroll 4") for (int k = 0; k < GELU_U; k++)
/* m has one bit per float of the GELU_U vectors; FULL (all of them, known
 * at compile time after inlining) takes plain loads and stores. */
#define FULL (~UINT64_C(0))
#define LANES(m, k) ((__mmask16)((m) >> (16 * (k))))
#define LOAD(p, m, k) ((m) == FULL ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(LANES(m, k), (p)))
#define STORE(p, m, k, v)                           \
  do {                                              \
    if ((m) == FULL)                                \
      _mm512_storeu_ps((p), (v));                   \
    else                                            \
      _mm512_mask_storeu_ps((p), LANES(m, k), (v)); \
  } while (0)

/* x clamped to [-NN_GELU_CLAMP, NN_GELU_CLAMP] (NaN stays NaN: vmaxps and
 * vminps return their second operand when either is NaN). Beyond the clamp
 * exp(-x^2 / 2) is 0 even without FTZ, so the formulas below give x on the
 * right and -0 on the left, for +-inf too. */
TARGET INLINE __m512 clamp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-NN_GELU_CLAMP), x);
  return _mm512_min_ps(_mm512_set1_ps(NN_GELU_CLAMP), x);
}

#define HORNER(acc, var, c) EACH(k) acc[k] = _mm512_fmadd_ps(acc[k], var[k], _mm512_set1_ps(c))

/* h, ep and n with erfc(|x| / sqrt 2) / 2 = h e and e = exp(-x^2 / 2) =
 * 2^n ep, for GELU_U x 16 clamped x. The callers apply 2^n last: e itself is
 * subnormal (flushed to zero under FTZ) from |x| = 13.2 on, and Phi(x) = h e
 * from x = -12.9 down, while x Phi(x) and GELU'(x) are still normal there.
 *
 * The loop is bound by the FMA pipes, so the two quotients use vdivps (it
 * runs beside them, and is correctly rounded), and the factor -1/2 of the
 * exp's argument is folded into its coefficients (exact powers of 2). */
TARGET INLINE void gelu_core(const __m512 *x, __m512 *h, __m512 *ep, __m512 *n) {
  __m512 a[GELU_U], q[GELU_U], p[GELU_U], xx[GELU_U], rr[GELU_U];
  /* a = |x| / sqrt 2, q = (a - 2) / (a + 2) */
  EACH(k) a[k] = _mm512_mul_ps(_mm512_abs_ps(x[k]), _mm512_set1_ps(0.70710678118654752f));
  EACH(k) q[k] = _mm512_div_ps(_mm512_sub_ps(a[k], _mm512_set1_ps(2.0f)), _mm512_add_ps(a[k], _mm512_set1_ps(2.0f)));

  /* exp(-x^2 / 2) = 2^n exp(-rr / 2), rr = x^2 + 2 n ln2 in [-ln2, ln2],
   * x^2 carried as xx + its rounding error (exact by the FMA) */
  EACH(k) xx[k] = _mm512_mul_ps(x[k], x[k]);
  EACH(k) n[k] = _mm512_roundscale_ps(_mm512_mul_ps(xx[k], _mm512_set1_ps(-0.5f * NN_LOG2E)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  EACH(k) rr[k] = _mm512_fmadd_ps(n[k], _mm512_set1_ps(2.0f * NN_LN2_HI), xx[k]);
  EACH(k) rr[k] = _mm512_fmadd_ps(n[k], _mm512_set1_ps(2.0f * NN_LN2_LO), rr[k]);
  EACH(k) rr[k] = _mm512_add_ps(rr[k], _mm512_fmsub_ps(x[k], x[k], xx[k]));

  /* s (1 + p(q)) (s = NN_ERFC_SCALE) and exp(-rr / 2) = sum_i c_i (-rr / 2)^i
   * side by side */
  EACH(k) p[k] = _mm512_set1_ps(NN_ERFC_P10);
  EACH(k) ep[k] = _mm512_set1_ps(NN_EXP_E5 * -0x1p-7f);
  HORNER(p, q, NN_ERFC_P9);
  HORNER(ep, rr, NN_EXP_E4 * 0x1p-6f);
  HORNER(p, q, NN_ERFC_P8);
  HORNER(ep, rr, NN_EXP_E3 * -0x1p-5f);
  HORNER(p, q, NN_ERFC_P7);
  HORNER(ep, rr, NN_EXP_E2 * 0x1p-4f);
  HORNER(p, q, NN_ERFC_P6);
  HORNER(ep, rr, NN_EXP_E1 * -0x1p-3f);
  HORNER(p, q, NN_ERFC_P5);
  HORNER(ep, rr, NN_EXP_E0 * 0x1p-2f);
  HORNER(p, q, NN_ERFC_P4);
  HORNER(ep, rr, -0.5f);
  HORNER(p, q, NN_ERFC_P3);
  HORNER(ep, rr, 1.0f);
  HORNER(p, q, NN_ERFC_P2);
  HORNER(p, q, NN_ERFC_P1);
  HORNER(p, q, NN_ERFC_P0);
  /* h = (1 + p) / (2 (1 + 2a)) = s (1 + p) / (2s + 4s a) */
  EACH(k) h[k] = _mm512_div_ps(p[k], _mm512_fmadd_ps(a[k], _mm512_set1_ps(4.0f * NN_ERFC_SCALE),
                                                     _mm512_set1_ps(2.0f * NN_ERFC_SCALE)));
}

/* x Phi(x) = x h e: (x h ep) 2^n on the left, x - (x h ep) 2^n on the right.
 * vscalefps applies 2^n and gives 0 (FTZ) or a subnormal below the normal
 * range. */
TARGET INLINE void gelu_fwd(const float *inp, float *out, uint64_t m) {
  __m512 x[GELU_U], xc[GELU_U], h[GELU_U], ep[GELU_U], n[GELU_U];
  EACH(k) x[k] = LOAD(inp + 16 * k, m, k);
  EACH(k) xc[k] = clamp(x[k]);
  gelu_core(xc, h, ep, n);
  EACH(k) {
    const __m512 u = _mm512_scalef_ps(_mm512_mul_ps(_mm512_mul_ps(xc[k], h[k]), ep[k]), n[k]);
    const __mmask16 neg = _mm512_cmp_ps_mask(x[k], _mm512_setzero_ps(), _CMP_LT_OQ);
    STORE(out + 16 * k, m, k, _mm512_mask_blend_ps(neg, _mm512_sub_ps(x[k], u), u));
  }
}

/* dinp = dout GELU'(x) (overwritten; dinp may alias dout), GELU'(x) = Phi(x) + x phi(x) with phi(x) = c e,
 * c = x / sqrt(2 pi): (h + c) e on the left, 1 + (c - h) e on the right. */
TARGET INLINE void gelu_bwd(const float *inp, const float *dout, float *dinp, uint64_t m) {
  __m512 x[GELU_U], xc[GELU_U], h[GELU_U], ep[GELU_U], n[GELU_U];
  EACH(k) x[k] = LOAD(inp + 16 * k, m, k);
  EACH(k) xc[k] = clamp(x[k]);
  gelu_core(xc, h, ep, n);
  EACH(k) {
    const __m512 c = _mm512_mul_ps(xc[k], _mm512_set1_ps(0.39894228040143268f));
    const __mmask16 neg = _mm512_cmp_ps_mask(x[k], _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 f = _mm512_mask_blend_ps(neg, _mm512_sub_ps(c, h[k]), _mm512_add_ps(h[k], c));
    const __m512 t = _mm512_scalef_ps(_mm512_mul_ps(f, ep[k]), n[k]);
    const __m512 g = _mm512_mask_blend_ps(neg, _mm512_add_ps(t, _mm512_set1_ps(1.0f)), t);
    STORE(dinp + 16 * k, m, k, _mm512_mul_ps(LOAD(dout + 16 * k, m, k), g));
  }
}

TARGET void nn_gelu_forward_avx512(float *out, const float *inp, const float *unused, size_t n) {
  (void)unused;
  size_t i = 0;
  for (; i + 16 * GELU_U <= n; i += 16 * GELU_U) gelu_fwd(inp + i, out + i, FULL);
  if (i < n) gelu_fwd(inp + i, out + i, (UINT64_C(1) << (n - i)) - 1);
}

TARGET void nn_gelu_backward_avx512(float *dinp, const float *inp, const float *dout, size_t n) {
  size_t i = 0;
  for (; i + 16 * GELU_U <= n; i += 16 * GELU_U) gelu_bwd(inp + i, dout + i, dinp + i, FULL);
  if (i < n) gelu_bwd(inp + i, dout + i, dinp + i, (UINT64_C(1) << (n - i)) - 1);
}

#endif /* SPARQ_HAVE_X86_SIMD */
