/* The power function of Dynamic Range Expansion, computed in double by one
 * fixed sequence of IEEE operations that the AVX-512 twin (fp8_dre_simd.c)
 * repeats lane by lane, so both give the same bits and FP8 codes, scales and
 * resumed runs do not depend on the ISA. libm's powf cannot be that
 * reference: its vector counterpart does not exist, and a per-element call
 * was most of the FP8 optimizer's time.
 *
 * pow(x, e) = 2^(e log2 x), x > 0 finite, e > 0:
 *   log2 x = E + ln(m) / ln 2,  x = m 2^E,  m in (1/sqrt2, sqrt2],
 *   ln m = 2 atanh(r) = 2 r (1 + r^2/3 + ... + r^14/15),  r = (m-1)/(m+1),
 *     |r| <= 0.1716: the first omitted term is below 2e-14 of ln m;
 *   2^t = 2^n e^z,  n = nearest integer to t,  z = (t - n) ln 2,  |z| <= 0.347,
 *     Taylor to z^10/10!: the first omitted term is below 3e-13.
 * The float result is the double rounded once, so it is the correctly
 * rounded power except when the exact value lies within ~1e-13 (relative)
 * of a rounding boundary; the test measures how rarely that happens.
 * Special arguments as powf for e > 0: pow(0) = 0, pow(inf) = inf, NaN (and
 * negative x, never passed) give NaN. t is clamped to +-1000, beyond every
 * float's range, so 2^n stays a normal double. */
#ifndef SPARQ_TRAIN_FP8_DRE_POW_H
#define SPARQ_TRAIN_FP8_DRE_POW_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define DRE_SQRT2 1.4142135623730951
#define DRE_LN2 0.6931471805599453
#define DRE_INV_LN2 1.4426950408889634
#define DRE_T_LIMIT 1000.0
/* 1/(2j+1), j = 7 down to 1, for the atanh series in r^2 */
#define DRE_LOG_COEFFS {1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3}
#define DRE_LOG_NCOEFFS 7
/* 1/j!, j = 10 down to 1, for e^z */
#define DRE_EXP_COEFFS                                                                                      \
  {1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1.0 / 2, \
   1.0}
#define DRE_EXP_NCOEFFS 10

/* The reference, one element. Every product that feeds a sum is an explicit
 * fma() or its own statement, so no compiler contraction can change a bit. */
static inline __attribute__((always_inline)) float dre_pow_body(float xf, float ef) {
  static const double log_c[DRE_LOG_NCOEFFS] = DRE_LOG_COEFFS;
  static const double exp_c[DRE_EXP_NCOEFFS] = DRE_EXP_COEFFS;
  const double x = xf; /* DAZ, where set, reads a subnormal xf as 0 here and in the twin */
  if (!(x > 0.0) || x == INFINITY) return x == 0.0 ? 0.0f : x == INFINITY ? INFINITY : NAN;
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  int64_t ex = (int64_t)(b >> 52) - 1023;
  b = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  double m;
  memcpy(&m, &b, sizeof m);
  if (m > DRE_SQRT2) {
    m = m * 0.5;
    ex = ex + 1;
  }
  const double r = (m - 1.0) / (m + 1.0);
  const double r2 = r * r;
  double p = log_c[0];
  for (int j = 1; j < DRE_LOG_NCOEFFS; j++) p = fma(p, r2, log_c[j]);
  p = fma(p, r2, 1.0);
  const double ln_m = (r + r) * p;
  const double l2 = fma(ln_m, DRE_INV_LN2, (double)ex);
  double t = l2 * (double)ef;
  if (t > DRE_T_LIMIT) t = DRE_T_LIMIT;
  if (t < -DRE_T_LIMIT) t = -DRE_T_LIMIT;
  const double n = nearbyint(t);
  const double z = (t - n) * DRE_LN2;
  double q = exp_c[0];
  for (int j = 1; j < DRE_EXP_NCOEFFS; j++) q = fma(q, z, exp_c[j]);
  q = fma(q, z, 1.0);
  const uint64_t sb = (uint64_t)((int64_t)n + 1023) << 52;
  double two_n;
  memcpy(&two_n, &sb, sizeof two_n);
  return (float)(q * two_n);
}

#endif
