/* Symmetric INT8/INT4 quantization with per-tensor, per-group and per-token
 * scales, and INT4 nibble packing.
 *
 * Every granularity reduces to "runs": contiguous elements that share one
 * scale (a whole tensor, one group of a row, one row). A run is processed in
 * two passes, max|x| then x/scale, by a pair of kernels: scalar, or AVX-512
 * with the same arithmetic lane by lane (an FP32 division, explicit
 * round-half-even, clamp), so the two give identical bits.
 *
 * max|x| is taken on the integer bits: for non-NaN floats the order of
 * |bits| is the order of values, it needs no float compare that DAZ could
 * change, and one pass both finds the max and flags NaN/inf (bits >=
 * 0x7F800000). */
#include <float.h>
#include <stdbool.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num/float_bits.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#include "base/simd_mask.h"
#endif

#define ABS_MASK 0x7FFFFFFFu
#define INF_BITS 0x7F800000u

/* The scale of a run from the bits of its max|x| (finite). */
static float scale_for(uint32_t amax_bits, int qmax) {
  if (amax_bits == 0) return 1.0f; /* all zeros: any scale is exact, 1 is the honest one */
  float s = bits_f32(amax_bits) / (float)qmax;
  /* A subnormal scale would become 0 under FTZ (sparq_set_threads turns it
   * on) and x/0 = inf; FLT_MIN keeps every group within scale/2. */
  return s < FLT_MIN ? FLT_MIN : s;
}

/* Round half to even without the current rounding mode (nearbyintf obeys
 * MXCSR.RC, the AVX-512 kernel uses a fixed mode). |v| <= 128 here, so the
 * truncation is exact and so is |v| - i (i <= |v| < 2i or i == 0).
 * Branch-free: on real data the fraction is a coin flip, and
 * mispredicted branches made this loop 3x slower. */
static inline int32_t round_half_even(float v) {
  uint32_t u = f32_bits(v);
  float a = bits_f32(u & ABS_MASK);
  int32_t i = (int32_t)a;
  float frac = a - (float)i;
  i += (frac > 0.5f) | ((frac == 0.5f) & (i & 1));
  int32_t neg = -(int32_t)(u >> 31); /* 0 or -1 */
  return (i ^ neg) - neg;
}

/* ---------------------------------------------------------- scalar kernels */

static uint32_t absmax_bits_ref(const float *x, size_t n) {
  uint32_t m = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t a = f32_bits(x[i]) & ABS_MASK;
    if (a > m) m = a;
  }
  return m;
}

static void quantize_run_ref(const float *x, size_t n, float scale, int qmax, int8_t *q) {
  for (size_t i = 0; i < n; i++) {
    int32_t v = round_half_even(x[i] / scale);
    if (v > qmax) v = qmax;
    if (v < -qmax) v = -qmax;
    q[i] = (int8_t)v;
  }
}

static void dequantize_run_ref(const int8_t *q, size_t n, float scale, float *x) {
  for (size_t i = 0; i < n; i++) x[i] = (float)q[i] * scale;
}

/* ---------------------------------------------------------- AVX-512 kernels */

#ifdef SPARQ_HAVE_X86_SIMD
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

TARGET_AVX512 static uint32_t absmax_bits_avx512(const float *x, size_t n) {
  const __m512i abs_mask = _mm512_set1_epi32((int)ABS_MASK);
  __m512i m = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 16) {
    /* Masked-off lanes load as 0, which never wins the max. */
    __m512i u = _mm512_maskz_loadu_epi32(simd_tail16((int64_t)(n - i)), x + i);
    m = _mm512_max_epu32(m, _mm512_and_si512(u, abs_mask));
  }
  return (uint32_t)_mm512_reduce_max_epu32(m);
}

TARGET_AVX512 static void quantize_run_avx512(const float *x, size_t n, float scale, int qmax, int8_t *q) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512 hi = _mm512_set1_ps((float)qmax), lo = _mm512_set1_ps((float)-qmax);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = simd_tail16((int64_t)(n - i));
    __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(k, x + i), s);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, k, _mm512_cvtps_epi32(v));
  }
}

TARGET_AVX512 static void dequantize_run_avx512(const int8_t *q, size_t n, float scale, float *x) {
  const __m512 s = _mm512_set1_ps(scale);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = simd_tail16((int64_t)(n - i));
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, q + i)));
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(v, s));
  }
}
#endif

/* ------------------------------------------------------------------ drivers */

typedef struct quant_kernels {
  uint32_t (*absmax_bits)(const float *x, size_t n);
  void (*quantize_run)(const float *x, size_t n, float scale, int qmax, int8_t *q);
  void (*dequantize_run)(const int8_t *q, size_t n, float scale, float *x);
} quant_kernels;

static quant_kernels pick_kernels(bool allow_simd) {
  quant_kernels k = {absmax_bits_ref, quantize_run_ref, dequantize_run_ref};
#ifdef SPARQ_HAVE_X86_SIMD
  if (allow_simd && sparq_isa_active() >= SPARQ_ISA_AVX512)
    k = (quant_kernels){absmax_bits_avx512, quantize_run_avx512, dequantize_run_avx512};
#else
  (void)allow_simd;
#endif
  return k;
}

/* Names the first non-finite element of a run the max pass flagged. `cols`
 * == 0 means a flat tensor (no row/column to report). */
static sparq_status fail_nonfinite(const char *fn, const float *x, size_t start, size_t n, size_t cols) {
  for (size_t i = start; i < start + n; i++) {
    uint32_t u = f32_bits(x[i]);
    if ((u & ABS_MASK) < INF_BITS) continue;
    const char *what = (u & ABS_MASK) > INF_BITS ? "NaN" : (u >> 31) ? "-inf" : "+inf";
    if (cols == 0) return sparq_fail(SPARQ_ERR_ARG, "%s: x[%zu] is %s; only finite values can be quantized", fn, i, what);
    return sparq_fail(SPARQ_ERR_ARG, "%s: x[%zu] (row %zu, col %zu) is %s; only finite values can be quantized", fn, i,
                      i / cols, i % cols, what);
  }
  return sparq_fail(SPARQ_ERR_INTERNAL, "%s: a non-finite value was flagged but not found", fn);
}

static sparq_status check_qmax(const char *fn, int qmax) {
  if (qmax < 1 || qmax > 127)
    return sparq_fail(SPARQ_ERR_ARG, "%s: qmax %d is outside 1..127 (127 for INT8, 7 for INT4)", fn, qmax);
  return SPARQ_OK;
}

/* Checks a rows x cols matrix and its pointers; *n gets rows * cols. */
static sparq_status check_matrix(const char *fn, size_t rows, size_t cols, const void *in, const void *out,
                                 size_t *n) {
  if (!sparq_size_mul(rows, cols, n))
    return sparq_fail(SPARQ_ERR_ARG, "%s: %zu rows x %zu cols overflows size_t", fn, rows, cols);
  if (*n > 0 && (!in || !out)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL data pointer for %zu elements", fn, *n);
  return SPARQ_OK;
}

size_t sparq_quant_group_count(size_t rows, size_t cols, size_t group) {
  if (group == 0) return 0;
  size_t per_row = cols / group + (cols % group != 0), total;
  return sparq_size_mul(rows, per_row, &total) ? total : 0;
}

/* Quantizes every row in groups of `group` (group >= 1; the last group of a
 * row may be short), writing scales row by row. */
static sparq_status quantize_groups(const char *fn, const quant_kernels *k, const float *x, size_t rows, size_t cols,
                                    size_t group, int qmax, int8_t *q, float *scales) {
  size_t si = 0;
  for (size_t r = 0; r < rows; r++) {
    for (size_t c0 = 0; c0 < cols; c0 += group) {
      size_t len = cols - c0 < group ? cols - c0 : group;
      size_t p = r * cols + c0;
      uint32_t amax = k->absmax_bits(x + p, len);
      if (amax >= INF_BITS) return fail_nonfinite(fn, x, p, len, cols);
      float s = scale_for(amax, qmax);
      k->quantize_run(x + p, len, s, qmax, q + p);
      scales[si++] = s;
    }
  }
  return SPARQ_OK;
}

static sparq_status quantize_per_tensor(const char *fn, bool simd, const float *x, size_t n, int qmax, int8_t *q,
                                        float *scale) {
  sparq_status st = check_qmax(fn, qmax);
  if (st != SPARQ_OK) return st;
  if (!scale) return sparq_fail(SPARQ_ERR_ARG, "%s: scale is NULL", fn);
  if (n > 0 && (!x || !q)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL data pointer for %zu elements", fn, n);
  quant_kernels k = pick_kernels(simd);
  uint32_t amax = k.absmax_bits(x, n);
  if (amax >= INF_BITS) return fail_nonfinite(fn, x, 0, n, 0);
  *scale = scale_for(amax, qmax);
  k.quantize_run(x, n, *scale, qmax, q);
  return SPARQ_OK;
}

static sparq_status quantize_per_group(const char *fn, bool simd, const float *x, size_t rows, size_t cols,
                                       size_t group, int qmax, int8_t *q, float *scales) {
  size_t n;
  sparq_status st = check_qmax(fn, qmax);
  if (st == SPARQ_OK) st = check_matrix(fn, rows, cols, x, q, &n);
  if (st != SPARQ_OK) return st;
  if (group == 0) return sparq_fail(SPARQ_ERR_ARG, "%s: group size 0 (must be >= 1)", fn);
  if (n > 0 && !scales) return sparq_fail(SPARQ_ERR_ARG, "%s: scales is NULL", fn);
  quant_kernels k = pick_kernels(simd);
  return quantize_groups(fn, &k, x, rows, cols, group, qmax, q, scales);
}

static sparq_status quantize_per_token(const char *fn, bool simd, const float *x, size_t rows, size_t cols,
                                       int qmax, int8_t *q, float *scales) {
  size_t n;
  sparq_status st = check_qmax(fn, qmax);
  if (st == SPARQ_OK) st = check_matrix(fn, rows, cols, x, q, &n);
  if (st != SPARQ_OK) return st;
  if (rows > 0 && !scales) return sparq_fail(SPARQ_ERR_ARG, "%s: scales is NULL", fn);
  if (cols == 0) {
    /* An empty row is an all-zero group: scale 1, as for any other. */
    for (size_t r = 0; r < rows; r++) scales[r] = 1.0f;
    return SPARQ_OK;
  }
  quant_kernels k = pick_kernels(simd);
  return quantize_groups(fn, &k, x, rows, cols, cols, qmax, q, scales);
}

sparq_status sparq_quantize_per_tensor(const float *x, size_t n, int qmax, int8_t *q, float *scale) {
  return quantize_per_tensor("sparq_quantize_per_tensor", true, x, n, qmax, q, scale);
}

sparq_status sparq_quantize_per_tensor_ref(const float *x, size_t n, int qmax, int8_t *q, float *scale) {
  return quantize_per_tensor("sparq_quantize_per_tensor_ref", false, x, n, qmax, q, scale);
}

sparq_status sparq_quantize_per_group(const float *x, size_t rows, size_t cols, size_t group, int qmax, int8_t *q,
                                      float *scales) {
  return quantize_per_group("sparq_quantize_per_group", true, x, rows, cols, group, qmax, q, scales);
}

sparq_status sparq_quantize_per_group_ref(const float *x, size_t rows, size_t cols, size_t group, int qmax,
                                          int8_t *q, float *scales) {
  return quantize_per_group("sparq_quantize_per_group_ref", false, x, rows, cols, group, qmax, q, scales);
}

sparq_status sparq_quantize_per_token(const float *x, size_t rows, size_t cols, int qmax, int8_t *q,
                                      float *scales) {
  return quantize_per_token("sparq_quantize_per_token", true, x, rows, cols, qmax, q, scales);
}

sparq_status sparq_quantize_per_token_ref(const float *x, size_t rows, size_t cols, int qmax, int8_t *q,
                                          float *scales) {
  return quantize_per_token("sparq_quantize_per_token_ref", false, x, rows, cols, qmax, q, scales);
}

/* ------------------------------------------------------------- dequantize */

static sparq_status check_scale(const char *fn, float s, size_t index) {
  if ((f32_bits(s) & ABS_MASK) >= INF_BITS)
    return sparq_fail(SPARQ_ERR_ARG, "%s: scale[%zu] is not finite", fn, index);
  return SPARQ_OK;
}

sparq_status sparq_dequantize_per_tensor(const int8_t *q, size_t n, float scale, float *x) {
  static const char fn[] = "sparq_dequantize_per_tensor";
  sparq_status st = check_scale(fn, scale, 0);
  if (st != SPARQ_OK) return st;
  if (n > 0 && (!q || !x)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL data pointer for %zu elements", fn, n);
  pick_kernels(true).dequantize_run(q, n, scale, x);
  return SPARQ_OK;
}

static sparq_status dequantize_groups(const char *fn, const int8_t *q, size_t rows, size_t cols, size_t group,
                                      const float *scales, float *x) {
  size_t n;
  sparq_status st = check_matrix(fn, rows, cols, q, x, &n);
  if (st != SPARQ_OK) return st;
  if (n > 0 && !scales) return sparq_fail(SPARQ_ERR_ARG, "%s: scales is NULL", fn);
  quant_kernels k = pick_kernels(true);
  size_t si = 0;
  for (size_t r = 0; r < rows; r++) {
    for (size_t c0 = 0; c0 < cols; c0 += group, si++) {
      size_t len = cols - c0 < group ? cols - c0 : group;
      if ((st = check_scale(fn, scales[si], si)) != SPARQ_OK) return st;
      k.dequantize_run(q + r * cols + c0, len, scales[si], x + r * cols + c0);
    }
  }
  return SPARQ_OK;
}

sparq_status sparq_dequantize_per_group(const int8_t *q, size_t rows, size_t cols, size_t group,
                                        const float *scales, float *x) {
  if (group == 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_dequantize_per_group: group size 0 (must be >= 1)");
  return dequantize_groups("sparq_dequantize_per_group", q, rows, cols, group, scales, x);
}

sparq_status sparq_dequantize_per_token(const int8_t *q, size_t rows, size_t cols, const float *scales,
                                        float *x) {
  if (cols == 0) return SPARQ_OK;
  return dequantize_groups("sparq_dequantize_per_token", q, rows, cols, cols, scales, x);
}

/* ------------------------------------------------------------- INT4 nibbles */

sparq_status sparq_int4_pack(const int8_t *q, size_t n, uint8_t *packed) {
  if (n > 0 && (!q || !packed)) return sparq_fail(SPARQ_ERR_ARG, "sparq_int4_pack: NULL pointer for %zu values", n);
  for (size_t i = 0; i < n; i += 2) {
    int lo = q[i], hi = i + 1 < n ? q[i + 1] : 0;
    if (lo < -8 || lo > 7 || hi < -8 || hi > 7) {
      size_t bad = (lo < -8 || lo > 7) ? i : i + 1;
      return sparq_fail(SPARQ_ERR_ARG, "sparq_int4_pack: q[%zu] = %d is outside the INT4 range -8..7", bad, q[bad]);
    }
    packed[i / 2] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
  }
  return SPARQ_OK;
}

void sparq_int4_unpack(const uint8_t *packed, size_t n, int8_t *q) {
  for (size_t i = 0; i < n; i++) {
    unsigned nib = (packed[i / 2] >> (4 * (i & 1))) & 0xFu;
    /* Sign-extend the 4-bit two's complement value. */
    q[i] = (int8_t)((int)(nib ^ 8u) - 8);
  }
}
