/* AVX-512 twins of the DRE maps (fp8_dre_internal.h): dre_pow_body of
 * fp8_dre_pow.h on 8 doubles at a time, the same operations in the same
 * order, and the float steps around it as in the references. */
#include "train/fp8_dre_internal.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "base/simd_mask.h"
#include "train/fp8_dre_pow.h"

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* dre_pow_body's core for lanes with 0 < x < inf. */
TARGET_AVX512 static inline __m512d pow8_core(__m512d x, __m512d e) {
  static const double log_c[DRE_LOG_NCOEFFS] = DRE_LOG_COEFFS;
  static const double exp_c[DRE_EXP_NCOEFFS] = DRE_EXP_COEFFS;
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512i b = _mm512_castpd_si512(x);
  __m512i ex = _mm512_sub_epi64(_mm512_srli_epi64(b, 52), _mm512_set1_epi64(1023));
  __m512d m = _mm512_castsi512_pd(_mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi64(0x000FFFFFFFFFFFFFll)),
                                                  _mm512_set1_epi64(0x3FF0000000000000ll)));
  const __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(DRE_SQRT2), _CMP_GT_OQ);
  m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
  ex = _mm512_mask_add_epi64(ex, big, ex, _mm512_set1_epi64(1));
  const __m512d r = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d p = _mm512_set1_pd(log_c[0]);
  for (int j = 1; j < DRE_LOG_NCOEFFS; j++) p = _mm512_fmadd_pd(p, r2, _mm512_set1_pd(log_c[j]));
  p = _mm512_fmadd_pd(p, r2, one);
  const __m512d ln_m = _mm512_mul_pd(_mm512_add_pd(r, r), p);
  const __m512d l2 = _mm512_fmadd_pd(ln_m, _mm512_set1_pd(DRE_INV_LN2), _mm512_cvtepi64_pd(ex));
  __m512d t = _mm512_mul_pd(l2, e);
  t = _mm512_min_pd(t, _mm512_set1_pd(DRE_T_LIMIT));
  t = _mm512_max_pd(t, _mm512_set1_pd(-DRE_T_LIMIT));
  const __m512d n = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512d z = _mm512_mul_pd(_mm512_sub_pd(t, n), _mm512_set1_pd(DRE_LN2));
  __m512d q = _mm512_set1_pd(exp_c[0]);
  for (int j = 1; j < DRE_EXP_NCOEFFS; j++) q = _mm512_fmadd_pd(q, z, _mm512_set1_pd(exp_c[j]));
  q = _mm512_fmadd_pd(q, z, one);
  const __m512i sb = _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtpd_epi64(n), _mm512_set1_epi64(1023)), 52);
  return _mm512_mul_pd(q, _mm512_castsi512_pd(sb));
}

/* pow(x, e) on 16 floats, specials as dre_pow_body. */
TARGET_AVX512 static inline __m512 pow16(__m512 x, __m512d e) {
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
  const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
  const __m512d inf = _mm512_set1_pd(INFINITY), zero = _mm512_setzero_pd();
  /* 0 < x < inf per lane, judged in double as the reference does */
  const __mmask8 ok_lo = _mm512_cmp_pd_mask(lo, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(lo, inf, _CMP_LT_OQ);
  const __mmask8 ok_hi = _mm512_cmp_pd_mask(hi, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(hi, inf, _CMP_LT_OQ);
  const __mmask8 zero_lo = _mm512_cmp_pd_mask(lo, zero, _CMP_EQ_OQ), zero_hi = _mm512_cmp_pd_mask(hi, zero, _CMP_EQ_OQ);
  const __mmask8 inf_lo = _mm512_cmp_pd_mask(lo, inf, _CMP_EQ_OQ), inf_hi = _mm512_cmp_pd_mask(hi, inf, _CMP_EQ_OQ);
  const __m512d one = _mm512_set1_pd(1.0);
  /* the other lanes compute on 1 and are replaced below */
  const __m512d p_lo = pow8_core(_mm512_mask_blend_pd(ok_lo, one, lo), e);
  const __m512d p_hi = pow8_core(_mm512_mask_blend_pd(ok_hi, one, hi), e);
  __m512 r = _mm512_castps256_ps512(_mm512_cvtpd_ps(p_lo));
  r = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(r), _mm256_castps_pd(_mm512_cvtpd_ps(p_hi)), 1));
  const __mmask16 ok = (__mmask16)(ok_lo | (unsigned)ok_hi << 8);
  const __mmask16 zer = (__mmask16)(zero_lo | (unsigned)zero_hi << 8);
  const __mmask16 inf16 = (__mmask16)(inf_lo | (unsigned)inf_hi << 8);
  r = _mm512_mask_blend_ps(ok, _mm512_set1_ps(NAN), r);
  r = _mm512_mask_blend_ps(zer, r, _mm512_setzero_ps());
  return _mm512_mask_blend_ps(inf16, r, _mm512_set1_ps(INFINITY));
}

TARGET_AVX512 void dre_pow_n_avx512(const float *x, float e, float *out, size_t n) {
  const __m512d ev = _mm512_set1_pd((double)e);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = simd_tail16((int64_t)(n - i));
    _mm512_mask_storeu_ps(out + i, k, pow16(_mm512_maskz_loadu_ps(k, x + i), ev));
  }
}

TARGET_AVX512 void dre_decode_n_avx512(float *x, size_t n, float scale, float inv_k, float c) {
  const __m512d ev = _mm512_set1_pd((double)inv_k);
  const __m512 sc = _mm512_set1_ps(scale), cv = _mm512_set1_ps(c);
  const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = simd_tail16((int64_t)(n - i));
    const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sc);
    const __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(y)));
    const __m512 mag = _mm512_mul_ps(pow16(a, ev), cv);
    /* copysign(mag, y): the sign bit from y, the rest from mag (0xAC: A ? C : B) */
    const __m512i out = _mm512_ternarylogic_epi32(sign, _mm512_castps_si512(mag), _mm512_castps_si512(y), 0xAC);
    _mm512_mask_storeu_ps(x + i, k, _mm512_castsi512_ps(out));
  }
}

TARGET_AVX512 void dre_expand_n_avx512(const float *x, float *y, size_t n, float c, float k, float scale) {
  const __m512d ev = _mm512_set1_pd((double)k);
  const __m512 sc = _mm512_set1_ps(scale), cv = _mm512_set1_ps(c);
  const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = simd_tail16((int64_t)(n - i));
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 a = _mm512_div_ps(_mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(xv))), cv);
    const __m512 e = pow16(a, ev);
    const __m512i s = _mm512_ternarylogic_epi32(sign, _mm512_castps_si512(e), _mm512_castps_si512(xv), 0xAC);
    _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(_mm512_castsi512_ps(s), sc));
  }
}
#endif
