/* Per-group FP8 quantisation of optimizer states, plain or with COAT's
 * Dynamic Range Expansion (spec coat-fp8.md section 3; coat.h documents the
 * formulas). One group is at most 128 elements, so the work arrays live on
 * the stack. The power function is dre_pow (fp8_dre_pow.h), not libm's
 * powf, so that the element-wise maps have AVX-512 twins with the same bits.
 *
 * Two deliberate departures from the released kernel, both for the
 * invariants of spec 9.3:
 *
 * 1. k is capped at 4096. With R = max/min close to 1 the kernel's k grows
 *    without bound (R = 1 + 2^-23 gives k ~ 1e8). The quotient |x| / c
 *    carries an FP32 rounding error of up to 2^-24, which y = (|x|/c)^k
 *    multiplies by k: at k ~ 1e8 that moves y by factors of e^6 and the
 *    group's smallest element can land below E4M3's smallest subnormal,
 *    i.e. a non-zero value flushes to 0. At k <= 4096 the distortion is at
 *    most e^(4096 * 3 * 2^-24) < 1.001, far inside the 4.5x margin between
 *    FMT_MAX / 100352 and the E4M3 underflow threshold 2^-10. The cap binds
 *    only for R < 2^(log2(100352) / 4096) ~ 1.0028.
 *
 * 2. The largest element comes back exactly. Dequantising the max code
 *    computes fl(c * P) with P = pow(FMT_MAX * scale, 1/k), which after the
 *    roundings of mx / c, the power, the division by FMT_MAX and the products is
 *    a few ulps away from max|x| (more for k < 1, which amplifies them).
 *    The codes y / scale = FMT_MAX (|x| / mx)^k do not depend on c and
 *    scale beyond FP32 rounding as long as scale = P^k / FMT_MAX with
 *    P = mx / c, so the quantiser picks c within 16 ulps of the formula
 *    value and a float P within 2 ulps of mx / c whose product rounds to
 *    max|x| exactly, then bisects for the scale whose power gives exactly
 *    that P (for k >= 1 P moves by less than an ulp per ulp of scale, so
 *    one exists). Every code is computed with the final pair; the max still
 *    lands on FMT_MAX (the scale moves by at most ~k * 2^-20 relative, and
 *    FMT_MAX's lower neighbour is 7% below it).
 *    No such pair exists when the mantissas of c and P are both well above
 *    1 and their product does not carry: fl(P c) then moves in steps of
 *    more than an ulp of max|x| and can step over it (under 0.1% of random
 *    groups), and for k < 1 the scale may not reach every P. Those groups
 *    take a pair whose max comes back one ulp off, the FP32 rounding limit
 *    of this (c, scale, k) representation. A power-of-two c would make every
 *    k >= 1 group exact but would no longer be the kernel's sqrtminmax. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "num/float_bits.h"
#include "sparq/base.h"
#include "sparq/coat.h"
#include "sparq/num.h"
#include "train/fp8_dre_internal.h"
#include "train/fp8_dre_pow.h"
#include "train/fp8_group_scan.h"

#define DRE_RANGE 100352.0 /* 448^2 / 2: the kernel's target range R^k, for both formats */
#define DRE_K_MAX 4096.0f
#define DRE_OFFSET 1e-30f  /* the kernel's QUANT_MIN_VAL */
#define FIT_C_ULPS 16       /* how far c may move from the formula value */
#define FIT_P_ULPS 2

bool sparq_fp8_format_parse(const char *name, sparq_fp8_format *out) {
  if (!name) return false;
  if (!strcmp(name, "e4m3")) *out = SPARQ_FP8_E4M3;
  else if (!strcmp(name, "e5m2")) *out = SPARQ_FP8_E5M2;
  else return false;
  return true;
}

sparq_dtype sparq_fp8_dtype(sparq_fp8_format fmt) { return fmt == SPARQ_FP8_E5M2 ? SPARQ_F8_E5M2 : SPARQ_F8_E4M3; }

static void encode_n(sparq_fp8_format fmt, const float *x, uint8_t *codes, size_t n) {
  if (fmt == SPARQ_FP8_E5M2) sparq_f32_to_e5m2_n(x, codes, n);
  else sparq_f32_to_e4m3_n(x, codes, n);
}

static void decode_n(sparq_fp8_format fmt, const uint8_t *codes, float *x, size_t n) {
  if (fmt == SPARQ_FP8_E5M2) sparq_e5m2_to_f32_n(codes, x, n);
  else sparq_e4m3_to_f32_n(codes, x, n);
}

float dre_pow_ref(float x, float e) { return dre_pow_body(x, e); }

#ifdef SPARQ_HAVE_X86_SIMD
/* The same body with hardware fma (libm's fma gives the same bits). */
__attribute__((target("fma"))) static float dre_pow_fma(float x, float e) { return dre_pow_body(x, e); }
#endif

float dre_pow(float x, float e) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX2) return dre_pow_fma(x, e);
#endif
  return dre_pow_body(x, e);
}

/* The one dequantisation formula, shared by the decoder and the quantiser's
 * max check so both round identically. dre_pow gives dre_pow_ref's bits
 * (the FMA build of the same body), so the scalar maps below are the
 * references of the AVX-512 twins. */
static inline float dre_decode(float q, float scale, float inv_k, float c) {
  const float y = q * scale;
  const float mag = dre_pow(fabsf(y), inv_k) * c;
  return copysignf(mag, y);
}

void dre_decode_n_ref(float *x, size_t n, float scale, float inv_k, float c) {
  for (size_t i = 0; i < n; i++) x[i] = dre_decode(x[i], scale, inv_k, c);
}

void dre_decode_n(float *x, size_t n, float scale, float inv_k, float c) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) {
    dre_decode_n_avx512(x, n, scale, inv_k, c);
    return;
  }
#endif
  dre_decode_n_ref(x, n, scale, inv_k, c);
}

void dre_expand_n_ref(const float *x, float *y, size_t n, float c, float k, float scale) {
  for (size_t i = 0; i < n; i++) {
    const float e = dre_pow(fabsf(x[i]) / c, k);
    y[i] = copysignf(e, x[i]) / scale;
  }
}

void dre_expand_n(const float *x, float *y, size_t n, float c, float k, float scale) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) {
    dre_expand_n_avx512(x, y, n, c, k, scale);
    return;
  }
#endif
  dre_expand_n_ref(x, y, n, c, k, scale);
}

void sparq_fp8_dequantize_group(const uint8_t *codes, size_t n, sparq_fp8_format fmt, const sparq_fp8_group *g,
                                float *x) {
  decode_n(fmt, codes, x, n);
  if (g->k == 1.0f && g->c == 1.0f) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] * g->scale;
    return;
  }
  dre_decode_n(x, n, g->scale, 1.0f / g->k, g->c);
}

static void quantize_plain(const float *x, size_t n, sparq_fp8_format fmt, float amax, uint8_t *codes,
                           sparq_fp8_group *g) {
  float scale = amax == 0.0f ? 1.0f : amax / sparq_fp8_max(fmt);
  if (scale < FLT_MIN) scale = FLT_MIN;
  float y[SPARQ_FP8_GROUP];
  for (size_t i = 0; i < n; i++) y[i] = x[i] / scale;
  encode_n(fmt, y, codes, n);
  *g = (sparq_fp8_group){.scale = scale, .k = 1.0f, .c = 1.0f};
}

/* k of the kernel (a multiple of 1/16), capped; 1 for a constant group. */
static float dre_k(float mx, float mn) {
  const float r = mx / mn;
  if (!(r > 1.0f)) return 1.0f; /* R = 1 (or a NaN range): log2 R = 0 */
  double k = floor(16.0 * log2(DRE_RANGE) / log2((double)r)) / 16.0;
  if (!(k >= 1.0 / 16)) k = 1.0 / 16; /* R beyond FP32's range only (inf input) */
  return k > DRE_K_MAX ? DRE_K_MAX : (float)k;
}

static float nudge(float x, int ulps) {
  for (int j = 0; j < ulps; j++) x = nextafterf(x, INFINITY);
  for (int j = 0; j > ulps; j--) x = nextafterf(x, 0.0f);
  return x;
}

/* A positive scale s near s0 with dre_pow(fmax * s, inv_k) == p, found by
 * bisection over the bit patterns of s (the map is non-decreasing: the
 * product's rounding is monotone and dre_pow very nearly so, so the
 * neighbours of the bisection's answer are tried too). 0 if none. */
static float scale_for(float p, float fmax, float inv_k, float s0, float k) {
  const float w = (8.0f * (k > 1.0f ? k : 1.0f) + 8.0f) * 0x1p-23f;
  uint32_t lo = f32_bits(s0 * (1.0f - w)), hi = f32_bits(s0 * (1.0f + w));
  if (!(s0 * (1.0f + w) < INFINITY) || lo == 0) return 0.0f;
  while (lo < hi) { /* the first s with dre_pow(fmax * s, inv_k) >= p */
    const uint32_t mid = lo + (hi - lo) / 2;
    if (dre_pow(fmax * bits_f32(mid), inv_k) >= p) hi = mid;
    else lo = mid + 1;
  }
  for (int d = 0; d < 5; d++) {
    const uint32_t u = lo + (uint32_t)(d % 2 ? (d + 1) / 2 : 0) - (uint32_t)(d % 2 ? 0 : d / 2);
    const float sc = bits_f32(u);
    if (sc > 0.0f && dre_pow(fmax * sc, inv_k) == p) return sc;
  }
  return 0.0f;
}

/* Replaces (c, scale) by a pair within a few ulps of c and of p = mx / c
 * whose dequantised max code is `target` exactly (first pass: c and p with
 * fl(p c) = target, then the scale that makes dre_pow(FMT_MAX scale, 1/k) = p)
 * or, failing that, within one ulp of it (second pass: fl(p c) one ulp
 * away). Keeps the pair when neither pass finds one. */
static void fit_max(float target, float fmax, float k, float *c, float *scale) {
  const float inv_k = 1.0f / k;
  if (dre_decode(fmax, *scale, inv_k, *c) == target) return;
  const float below = nextafterf(target, 0.0f), above = nextafterf(target, INFINITY);
  for (int pass = 0; pass < 2; pass++)
    /* 0, 1, -1, 2, -2, ...: the nearest candidates first */
    for (int a = 0; a < 2 * FIT_C_ULPS + 1; a++) {
      const float cc = nudge(*c, a % 2 ? (a + 1) / 2 : -(a / 2));
      if (!(cc > 0.0f)) continue;
      const float p0 = target / cc;
      for (int b = 0; b < 2 * FIT_P_ULPS + 1; b++) {
        const float p = nudge(p0, b % 2 ? (b + 1) / 2 : -(b / 2));
        const float prod = p * cc;
        if (pass == 0 ? prod != target : prod != below && prod != above) continue;
        const float sc = scale_for(p, fmax, inv_k, *scale, k);
        if (sc > 0.0f && dre_decode(fmax, sc, inv_k, cc) == prod) {
          *c = cc, *scale = sc;
          return;
        }
      }
    }
}

void sparq_fp8_quantize_group(const float *x, size_t n, sparq_fp8_format fmt, bool dre, uint8_t *codes,
                              sparq_fp8_group *g) {
  if (n == 0) {
    *g = (sparq_fp8_group){.scale = 1.0f, .k = 1.0f, .c = 1.0f};
    return;
  }
  if (n > SPARQ_FP8_GROUP) n = SPARQ_FP8_GROUP; /* documented bound; never read past a group */
  float amax, amin;
  fp8_abs_range(x, n, &amax, &amin);
  if (!dre || !isfinite(amax)) {
    quantize_plain(x, n, fmt, amax, codes, g);
    return;
  }
  if (amax == 0.0f) {
    memset(codes, 0, n);
    *g = (sparq_fp8_group){.scale = 1.0f, .k = 1.0f, .c = 1.0f};
    return;
  }
  const float fmax = sparq_fp8_max(fmt);
  const float mx = amax + DRE_OFFSET, mn = amin + DRE_OFFSET;
  const float k = dre_k(mx, mn);
  float c = sqrtf(mx) * sqrtf(mn);
  float scale = dre_pow(mx / c, k) / fmax;
  if (mx == amax) fit_max(amax, fmax, k, &c, &scale);
  float y[SPARQ_FP8_GROUP];
  dre_expand_n(x, y, n, c, k, scale);
  encode_n(fmt, y, codes, n);
  *g = (sparq_fp8_group){.scale = scale, .k = k, .c = c};
}
