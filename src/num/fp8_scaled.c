/* Scaled FP8 quantisation (COAT's per-tensor and 1 x G per-group scales,
 * spec coat-fp8.md sections 2 and 4) on top of fp8.c's codecs.
 *
 * The maxima compare magnitude bits as unsigned integers: for finite floats
 * the order of |bits| is the order of values, a max of maxima is then
 * exactly the max, and no float compare (which DAZ could change) is
 * involved. Non-finite lanes (|bits| >= inf) are masked out and counted.
 *
 * The AVX-512 kernels do the divisions and products lane by lane (IEEE, so
 * the same bits as the scalar loop under any MXCSR) and hand the quotients
 * to the bulk codecs of fp8.c, which are bit-identical to the scalar codecs
 * the _ref twins call. */
#include <float.h>
#include <stdbool.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num/float_bits.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#include "base/simd_mask.h"
#endif

#define ABS_MASK 0x7FFFFFFFu
#define INF_BITS 0x7F800000u

float sparq_fp8_max(sparq_fp8_format fmt) { return fmt == SPARQ_FP8_E5M2 ? 57344.0f : 448.0f; }

const char *sparq_fp8_format_name(sparq_fp8_format fmt) { return fmt == SPARQ_FP8_E5M2 ? "e5m2" : "e4m3"; }

float sparq_fp8_scaled_scale(float amax, sparq_fp8_format fmt) {
  float s = amax / sparq_fp8_max(fmt);
  /* written so that NaN (and inf, via the upper bound) take the floor too */
  return s >= SPARQ_FP8_SCALE_FLOOR && s <= FLT_MAX ? s : SPARQ_FP8_SCALE_FLOOR;
}

static inline uint8_t enc(sparq_fp8_format fmt, float y) {
  return fmt == SPARQ_FP8_E5M2 ? sparq_e5m2_from_f32(y) : sparq_e4m3_from_f32(y);
}

static inline float dec(sparq_fp8_format fmt, uint8_t c) {
  return fmt == SPARQ_FP8_E5M2 ? sparq_e5m2_to_f32(c) : sparq_e4m3_to_f32(c);
}

/* ------------------------------------------------------------ scalar twins */

/* max |bits| over the finite elements; *bad += the non-finite count. */
static uint32_t absmax_bits_ref(const float *x, size_t n, size_t *bad) {
  uint32_t m = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t a = f32_bits(x[i]) & ABS_MASK;
    if (a >= INF_BITS) {
      ++*bad;
      continue;
    }
    if (a > m) m = a;
  }
  return m;
}

size_t sparq_fp8_scaled_group_absmax_ref(const float *x, size_t rows, size_t cols, size_t group, float *gmax) {
  if (group == 0) return 0;
  size_t bad = 0, gi = 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t c0 = 0; c0 < cols; c0 += group) {
      size_t len = cols - c0 < group ? cols - c0 : group;
      gmax[gi++] = bits_f32(absmax_bits_ref(x + r * cols + c0, len, &bad));
    }
  return bad;
}

float sparq_fp8_scaled_absmax_reduce_ref(const float *gmax, size_t n) {
  size_t bad = 0;
  return bits_f32(absmax_bits_ref(gmax, n, &bad));
}

float sparq_fp8_scaled_absmax_ref(const float *x, size_t n, size_t *skipped) {
  size_t bad = 0;
  float m = bits_f32(absmax_bits_ref(x, n, &bad));
  if (skipped) *skipped = bad;
  return m;
}

void sparq_fp8_scaled_quantize_ref(const float *x, size_t n, float scale, sparq_fp8_format fmt, uint8_t *q) {
  for (size_t i = 0; i < n; i++) q[i] = enc(fmt, x[i] / scale);
}

void sparq_fp8_scaled_dequantize_ref(const uint8_t *q, size_t n, float scale, sparq_fp8_format fmt, float *x) {
  for (size_t i = 0; i < n; i++) x[i] = dec(fmt, q[i]) * scale;
}

void sparq_fp8_scaled_round_ref(float *x, size_t n, float scale, sparq_fp8_format fmt) {
  for (size_t i = 0; i < n; i++) x[i] = dec(fmt, enc(fmt, x[i] / scale)) * scale;
}

size_t sparq_fp8_scaled_quantize_tensor_ref(const float *x, size_t n, sparq_fp8_format fmt, uint8_t *q,
                                            float *scale) {
  size_t bad = 0;
  *scale = sparq_fp8_scaled_scale(sparq_fp8_scaled_absmax_ref(x, n, &bad), fmt);
  sparq_fp8_scaled_quantize_ref(x, n, *scale, fmt, q);
  return bad;
}

size_t sparq_fp8_scaled_quantize_groups_ref(const float *x, size_t rows, size_t cols, size_t group,
                                            sparq_fp8_format fmt, uint8_t *q, float *scales) {
  if (group == 0) return 0;
  size_t bad = sparq_fp8_scaled_group_absmax_ref(x, rows, cols, group, scales), gi = 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t c0 = 0; c0 < cols; c0 += group, gi++) {
      size_t len = cols - c0 < group ? cols - c0 : group, p = r * cols + c0;
      scales[gi] = sparq_fp8_scaled_scale(scales[gi], fmt);
      sparq_fp8_scaled_quantize_ref(x + p, len, scales[gi], fmt, q + p);
    }
  return bad;
}

void sparq_fp8_scaled_dequantize_groups_ref(const uint8_t *q, size_t rows, size_t cols, size_t group,
                                            const float *scales, sparq_fp8_format fmt, float *x) {
  if (group == 0) return;
  size_t gi = 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t c0 = 0; c0 < cols; c0 += group, gi++) {
      size_t len = cols - c0 < group ? cols - c0 : group, p = r * cols + c0;
      sparq_fp8_scaled_dequantize_ref(q + p, len, scales[gi], fmt, x + p);
    }
}

/* ---------------------------------------------------------- AVX-512 kernels */

#ifdef SPARQ_HAVE_X86_SIMD
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

/* Quotients are staged through a stack buffer of this many floats and
 * encoded by the bulk codec in one call. */
#define CHUNK 1024

static inline size_t groups_per_row(size_t cols, size_t group) { return cols / group + (cols % group != 0); }

TARGET_AVX512 static void encode_n(sparq_fp8_format fmt, const float *y, uint8_t *q, size_t n) {
  if (fmt == SPARQ_FP8_E5M2) sparq_f32_to_e5m2_n(y, q, n);
  else sparq_f32_to_e4m3_n(y, q, n);
}

TARGET_AVX512 static void decode_n(sparq_fp8_format fmt, const uint8_t *q, float *x, size_t n) {
  if (fmt == SPARQ_FP8_E5M2) sparq_e5m2_to_f32_n(q, x, n);
  else sparq_e4m3_to_f32_n(q, x, n);
}

TARGET_AVX512 static inline uint32_t absmax_bits_avx512(const float *x, size_t n, size_t *bad) {
  const __m512i abs_mask = _mm512_set1_epi32((int)ABS_MASK), inf = _mm512_set1_epi32((int)INF_BITS);
  __m512i m = _mm512_setzero_si512();
  size_t nb = 0;
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = simd_tail16((int64_t)(n - i));
    __m512i a = _mm512_and_si512(_mm512_maskz_loadu_epi32(k, x + i), abs_mask);
    __mmask16 fin = _mm512_cmplt_epu32_mask(a, inf);
    m = _mm512_mask_max_epu32(m, fin, m, a);
    nb += (size_t)__builtin_popcount((unsigned)(k & (__mmask16)~fin));
  }
  *bad += nb;
  return (uint32_t)_mm512_reduce_max_epu32(m);
}

TARGET_AVX512 static size_t group_absmax_avx512(const float *x, size_t rows, size_t cols, size_t group,
                                                float *gmax) {
  size_t bad = 0, gi = 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t c0 = 0; c0 < cols; c0 += group) {
      size_t len = cols - c0 < group ? cols - c0 : group;
      gmax[gi++] = bits_f32(absmax_bits_avx512(x + r * cols + c0, len, &bad));
    }
  return bad;
}

/* y[0..n) = x / s lane by lane. */
TARGET_AVX512 static inline void divide_avx512(const float *x, size_t n, float s, float *y) {
  const __m512 vs = _mm512_set1_ps(s);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = simd_tail16((int64_t)(n - i));
    _mm512_mask_storeu_ps(y + i, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, x + i), vs));
  }
}

TARGET_AVX512 static inline void multiply_avx512(float *x, size_t n, float s) {
  const __m512 vs = _mm512_set1_ps(s);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 k = simd_tail16((int64_t)(n - i));
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs));
  }
}

TARGET_AVX512 static void quantize_avx512(const float *x, size_t n, float s, sparq_fp8_format fmt, uint8_t *q) {
  float buf[CHUNK] __attribute__((aligned(64)));
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t m = n - i < CHUNK ? n - i : CHUNK;
    divide_avx512(x + i, m, s, buf);
    encode_n(fmt, buf, q + i, m);
  }
}

TARGET_AVX512 static void dequantize_avx512(const uint8_t *q, size_t n, float s, sparq_fp8_format fmt, float *x) {
  decode_n(fmt, q, x, n);
  multiply_avx512(x, n, s);
}

TARGET_AVX512 static void round_avx512(float *x, size_t n, float s, sparq_fp8_format fmt) {
  float buf[CHUNK] __attribute__((aligned(64)));
  uint8_t codes[CHUNK];
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t m = n - i < CHUNK ? n - i : CHUNK;
    divide_avx512(x + i, m, s, buf);
    encode_n(fmt, buf, codes, m);
    decode_n(fmt, codes, x + i, m);
    multiply_avx512(x + i, m, s);
  }
}

/* Rows of small groups are staged several groups per chunk; groups larger
 * than a chunk go through quantize_avx512 one at a time. */
TARGET_AVX512 static void quantize_groups_avx512(const float *x, size_t rows, size_t cols, size_t group,
                                                 sparq_fp8_format fmt, uint8_t *q, const float *scales) {
  const size_t ng = groups_per_row(cols, group);
  if (group > CHUNK / 4) {
    for (size_t r = 0; r < rows; r++)
      for (size_t j = 0; j < ng; j++) {
        size_t c0 = j * group, len = cols - c0 < group ? cols - c0 : group, p = r * cols + c0;
        quantize_avx512(x + p, len, scales[r * ng + j], fmt, q + p);
      }
    return;
  }
  float buf[CHUNK] __attribute__((aligned(64)));
  const size_t per_chunk = CHUNK / group; /* whole groups per staged chunk, >= 4 */
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    for (size_t j0 = 0; j0 < ng; j0 += per_chunk) {
      size_t j1 = j0 + per_chunk < ng ? j0 + per_chunk : ng, start = j0 * group, end = j1 * group;
      if (end > cols) end = cols;
      for (size_t j = j0; j < j1; j++) {
        size_t c0 = j * group, len = cols - c0 < group ? cols - c0 : group;
        divide_avx512(xr + c0, len, scales[r * ng + j], buf + (c0 - start));
      }
      encode_n(fmt, buf, q + r * cols + start, end - start);
    }
  }
}

TARGET_AVX512 static void dequantize_groups_avx512(const uint8_t *q, size_t rows, size_t cols, size_t group,
                                                   const float *scales, sparq_fp8_format fmt, float *x) {
  const size_t ng = groups_per_row(cols, group);
  for (size_t r = 0; r < rows; r++) {
    decode_n(fmt, q + r * cols, x + r * cols, cols);
    for (size_t j = 0; j < ng; j++) {
      size_t c0 = j * group, len = cols - c0 < group ? cols - c0 : group;
      multiply_avx512(x + r * cols + c0, len, scales[r * ng + j]);
    }
  }
}

static bool simd(void) { return sparq_isa_active() >= SPARQ_ISA_AVX512; }
#endif

/* ----------------------------------------------------------------- dispatch */

size_t sparq_fp8_scaled_group_absmax(const float *x, size_t rows, size_t cols, size_t group, float *gmax) {
  if (group == 0) return 0;
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) return group_absmax_avx512(x, rows, cols, group, gmax);
#endif
  return sparq_fp8_scaled_group_absmax_ref(x, rows, cols, group, gmax);
}

float sparq_fp8_scaled_absmax_reduce(const float *gmax, size_t n) {
#ifdef SPARQ_HAVE_X86_SIMD
  size_t bad = 0;
  if (simd()) return bits_f32(absmax_bits_avx512(gmax, n, &bad));
#endif
  return sparq_fp8_scaled_absmax_reduce_ref(gmax, n);
}

float sparq_fp8_scaled_absmax(const float *x, size_t n, size_t *skipped) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) {
    size_t bad = 0;
    float m = bits_f32(absmax_bits_avx512(x, n, &bad));
    if (skipped) *skipped = bad;
    return m;
  }
#endif
  return sparq_fp8_scaled_absmax_ref(x, n, skipped);
}

void sparq_fp8_scaled_quantize(const float *x, size_t n, float scale, sparq_fp8_format fmt, uint8_t *q) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) {
    quantize_avx512(x, n, scale, fmt, q);
    return;
  }
#endif
  sparq_fp8_scaled_quantize_ref(x, n, scale, fmt, q);
}

void sparq_fp8_scaled_dequantize(const uint8_t *q, size_t n, float scale, sparq_fp8_format fmt, float *x) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) {
    dequantize_avx512(q, n, scale, fmt, x);
    return;
  }
#endif
  sparq_fp8_scaled_dequantize_ref(q, n, scale, fmt, x);
}

void sparq_fp8_scaled_round(float *x, size_t n, float scale, sparq_fp8_format fmt) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) {
    round_avx512(x, n, scale, fmt);
    return;
  }
#endif
  sparq_fp8_scaled_round_ref(x, n, scale, fmt);
}

size_t sparq_fp8_scaled_quantize_tensor(const float *x, size_t n, sparq_fp8_format fmt, uint8_t *q, float *scale) {
  size_t bad = 0;
  *scale = sparq_fp8_scaled_scale(sparq_fp8_scaled_absmax(x, n, &bad), fmt);
  sparq_fp8_scaled_quantize(x, n, *scale, fmt, q);
  return bad;
}

size_t sparq_fp8_scaled_quantize_groups(const float *x, size_t rows, size_t cols, size_t group, sparq_fp8_format fmt,
                                        uint8_t *q, float *scales) {
  if (group == 0) return 0;
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) {
    size_t bad = group_absmax_avx512(x, rows, cols, group, scales);
    const size_t ns = rows * groups_per_row(cols, group);
    for (size_t i = 0; i < ns; i++) scales[i] = sparq_fp8_scaled_scale(scales[i], fmt);
    quantize_groups_avx512(x, rows, cols, group, fmt, q, scales);
    return bad;
  }
#endif
  return sparq_fp8_scaled_quantize_groups_ref(x, rows, cols, group, fmt, q, scales);
}

void sparq_fp8_scaled_dequantize_groups(const uint8_t *q, size_t rows, size_t cols, size_t group,
                                        const float *scales, sparq_fp8_format fmt, float *x) {
  if (group == 0) return;
#ifdef SPARQ_HAVE_X86_SIMD
  if (simd()) {
    dequantize_groups_avx512(q, rows, cols, group, scales, fmt, x);
    return;
  }
#endif
  sparq_fp8_scaled_dequantize_groups_ref(q, rows, cols, group, scales, fmt, x);
}
