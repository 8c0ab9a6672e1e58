/* FP8 E4M3 ("fn") and E5M2: scalar codecs, bulk converters and their SIMD
 * kernels.
 *
 * Both encoders saturate finite inputs to ±max (COAT, SageAttention: a
 * scaled tensor must never overflow into NaN or inf). They work on the
 * float's bits only, so FTZ/DAZ cannot flush a denormal input before it is
 * rounded, and the AVX-512 and AVX2 encoders are the same integer recipe
 * lane by lane. */
#include <math.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num/float_bits.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#endif

/* The bit layout of one FP8 format, as used by the shared encoder. */
typedef struct fp8_format {
  unsigned mbits;     /* mantissa bits */
  unsigned bias;      /* exponent bias */
  uint32_t max_f32;   /* FP32 bits of the largest finite value */
  uint32_t min_f32;   /* FP32 bits of the smallest normal value */
  uint8_t max_code;   /* code of the largest finite value */
  uint8_t inf_code;   /* what +inf encodes to */
  uint8_t nan_code;   /* what a positive NaN encodes to */
} fp8_format;

static const fp8_format E4M3 = {3, 7, 0x43E00000u /* 448 */, 0x3C800000u /* 2^-6 */, 0x7E, 0x7E, 0x7F};
static const fp8_format E5M2 = {2, 15, 0x47600000u /* 57344 */, 0x38800000u /* 2^-14 */, 0x7B, 0x7C, 0x7E};

static inline uint8_t fp8_encode(const fp8_format *f, float x) {
  uint32_t u = f32_bits(x);
  uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
  uint32_t a = u & 0x7FFFFFFFu;
  /* Normal range [min, max), tested first with one unsigned compare. */
  if (a - f->min_f32 < f->max_f32 - f->min_f32) {
    /* Rebias the exponent and round the mantissa away; a carry into the
     * exponent field is the correct next binade. */
    uint32_t r = a - ((127u - f->bias) << 23);
    return (uint8_t)(sign | shift_right_rne(r, 23 - f->mbits));
  }
  if (a < f->min_f32) {
    /* Subnormal FP8: the code is |x| / min_subnormal rounded, with
     * min_subnormal = 2^(1 - bias - mbits) and |x| = m * 2^(e - 150), so the
     * code is m >> (151 - bias - mbits - e). Shifts past 25 bits leave less
     * than a quarter of the smallest step: zero (and keep the shift < 32).
     * FP32 denormals (e == 0) land here too. */
    unsigned e = a >> 23;
    unsigned sh = 151u - f->bias - f->mbits - e;
    if (sh > 25) return sign;
    uint32_t m = (a & 0x007FFFFFu) | 0x00800000u;
    return (uint8_t)(sign | shift_right_rne(m, sh));
  }
  if (a > 0x7F800000u) return (uint8_t)(sign | f->nan_code);
  if (a == 0x7F800000u) return (uint8_t)(sign | f->inf_code);
  /* Saturate everything from max up: values between max and the rounding
   * boundary above it (448..464 for E4M3) would round down to max anyway,
   * and values past it would round to NaN (E4M3) or inf (E5M2). */
  return (uint8_t)(sign | f->max_code);
}

uint8_t sparq_e4m3_from_f32(float x) { return fp8_encode(&E4M3, x); }
uint8_t sparq_e5m2_from_f32(float x) { return fp8_encode(&E5M2, x); }

/* Decoding is a table of the 128 non-negative codes; the sign bit is ORed
 * in. Written as constant expressions so the table needs no run-time
 * initialisation (and no thread-safety argument); the tests check every
 * entry against an independent decoder. */
#define POW2F(k) ((k) >= 0 ? (float)(1u << ((k) & 31)) : 1.0f / (float)(1u << ((-(k)) & 31)))
#define E4M3_VALUE(c)                                             \
  ((c) == 0x7F        ? NAN                                       \
   : ((c) >> 3) == 0  ? (float)((c) & 7) * 0x1p-9f                \
                      : (float)(8 + ((c) & 7)) * POW2F(((c) >> 3) - 10))
#define R4(V, c) V(c), V((c) + 1), V((c) + 2), V((c) + 3)
#define R16(V, c) R4(V, c), R4(V, (c) + 4), R4(V, (c) + 8), R4(V, (c) + 12)
#define R64(V, c) R16(V, c), R16(V, (c) + 16), R16(V, (c) + 32), R16(V, (c) + 48)

/* 64-byte aligned: the AVX-512 decoder loads it as eight zmm registers. */
static const float e4m3_values[128] __attribute__((aligned(64))) = {R64(E4M3_VALUE, 0), R64(E4M3_VALUE, 64)};

float sparq_e4m3_to_f32(uint8_t c) {
  return bits_f32(f32_bits(e4m3_values[c & 0x7F]) | ((uint32_t)(c & 0x80) << 24));
}

/* An E5M2 code is the upper byte of the binary16 with the same value (same
 * bias, same exponent width), so the FP16 decoder is exact for it, and the
 * bulk path can use vcvtph2ps. */
float sparq_e5m2_to_f32(uint8_t c) { return sparq_f16_to_f32((uint16_t)(c << 8)); }

/* ------------------------------------------------------------ scalar loops */

void sparq_f32_to_e4m3_n_ref(const float *src, uint8_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_e4m3_from_f32(src[i]);
}

void sparq_e4m3_to_f32_n_ref(const uint8_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_e4m3_to_f32(src[i]);
}

void sparq_f32_to_e5m2_n_ref(const float *src, uint8_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_e5m2_from_f32(src[i]);
}

void sparq_e5m2_to_f32_n_ref(const uint8_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_e5m2_to_f32(src[i]);
}

/* ----------------------------------------------------------- SIMD kernels */

#ifdef SPARQ_HAVE_X86_SIMD
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

/* fp8_encode on 16 lanes: every branch of the scalar code becomes a mask, in
 * reverse order of precedence. Variable shifts (vpsrlvd/vpsllvd) give 0 for
 * counts >= 32, which is also the right subnormal answer for the lanes the
 * scalar code cuts off at sh > 25. */
TARGET_AVX512 static inline __m512i fp8_encode_512(const fp8_format *f, __m512i u) {
  const __m512i one = _mm512_set1_epi32(1);
  __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));

  __m512i r = _mm512_sub_epi32(a, _mm512_set1_epi32((int)((127u - f->bias) << 23)));
  unsigned nsh = 23 - f->mbits;
  __m512i r_lsb = _mm512_and_si512(_mm512_srli_epi32(r, nsh), one);
  __m512i normal = _mm512_srli_epi32(
      _mm512_add_epi32(_mm512_add_epi32(r, _mm512_set1_epi32((int)((1u << (nsh - 1)) - 1u))), r_lsb), nsh);

  __m512i sh = _mm512_sub_epi32(_mm512_set1_epi32((int)(151u - f->bias - f->mbits)), _mm512_srli_epi32(a, 23));
  __m512i m = _mm512_or_si512(_mm512_and_si512(a, _mm512_set1_epi32(0x007FFFFF)), _mm512_set1_epi32(0x00800000));
  __m512i half = _mm512_sub_epi32(_mm512_sllv_epi32(one, _mm512_sub_epi32(sh, one)), one);
  __m512i m_lsb = _mm512_and_si512(_mm512_srlv_epi32(m, sh), one);
  __m512i sub = _mm512_srlv_epi32(_mm512_add_epi32(_mm512_add_epi32(m, half), m_lsb), sh);

  __mmask16 is_normal = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32((int)f->min_f32));
  __mmask16 is_max = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32((int)f->max_f32));
  __mmask16 is_inf = _mm512_cmpeq_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
  __mmask16 is_nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
  __m512i code = _mm512_mask_blend_epi32(is_normal, sub, normal);
  code = _mm512_mask_mov_epi32(code, is_max, _mm512_set1_epi32(f->max_code));
  code = _mm512_mask_mov_epi32(code, is_inf, _mm512_set1_epi32(f->inf_code));
  code = _mm512_mask_mov_epi32(code, is_nan, _mm512_set1_epi32(f->nan_code));
  return _mm512_or_si512(code, sign);
}

TARGET_AVX512 static inline void fp8_encode_avx512(const fp8_format *f, const float *src, uint8_t *dst,
                                                   size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_loadu_si512((const void *)(src + i));
    _mm_storeu_si128((__m128i *)(dst + i), _mm512_cvtepi32_epi8(fp8_encode_512(f, u)));
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    __m512i u = _mm512_maskz_loadu_epi32(k, src + i);
    _mm512_mask_cvtepi32_storeu_epi8(dst + i, k, fp8_encode_512(f, u));
  }
}

TARGET_AVX512 static void f32_to_e4m3_avx512(const float *src, uint8_t *dst, size_t n) {
  fp8_encode_avx512(&E4M3, src, dst, n);
}

TARGET_AVX512 static void f32_to_e5m2_avx512(const float *src, uint8_t *dst, size_t n) {
  fp8_encode_avx512(&E5M2, src, dst, n);
}

/* Table lookup in registers: vpermt2ps indexes 32 entries with the low 5
 * bits, bits 5 and 6 pick one of four such lookups, and the sign is ORed. */
TARGET_AVX512 static void e4m3_to_f32_avx512(const uint8_t *src, float *dst, size_t n) {
  __m512 t[8];
  for (int j = 0; j < 8; j++) t[j] = _mm512_load_ps(e4m3_values + 16 * j);
  const __m512i bit5 = _mm512_set1_epi32(0x20), bit6 = _mm512_set1_epi32(0x40);
  for (size_t i = 0; i < n; i += 16) {
    size_t left = n - i;
    __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    __m512i c = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, src + i));
    __m512 p0 = _mm512_permutex2var_ps(t[0], c, t[1]);
    __m512 p1 = _mm512_permutex2var_ps(t[2], c, t[3]);
    __m512 p2 = _mm512_permutex2var_ps(t[4], c, t[5]);
    __m512 p3 = _mm512_permutex2var_ps(t[6], c, t[7]);
    __mmask16 b5 = _mm512_test_epi32_mask(c, bit5), b6 = _mm512_test_epi32_mask(c, bit6);
    __m512 lo = _mm512_mask_blend_ps(b5, p0, p1);
    __m512 hi = _mm512_mask_blend_ps(b5, p2, p3);
    __m512i v = _mm512_castps_si512(_mm512_mask_blend_ps(b6, lo, hi));
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24);
    _mm512_mask_storeu_ps(dst + i, k, _mm512_castsi512_ps(_mm512_or_si512(v, sign)));
  }
}

TARGET_AVX512 static void e5m2_to_f32_avx512(const uint8_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    size_t left = n - i;
    __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    __m256i h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(k, src + i)), 8);
    _mm512_mask_storeu_ps(dst + i, k, _mm512_cvtph_ps(h));
  }
}

/* The AVX2 twin of fp8_encode_512. Lanes hold |x| <= 0x7FFFFFFF, so the
 * signed compares AVX2 offers order them correctly. */
TARGET_AVX2 static inline __m256i fp8_encode_256(const fp8_format *f, __m256i u) {
  const __m256i one = _mm256_set1_epi32(1);
  __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
  __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));

  __m256i r = _mm256_sub_epi32(a, _mm256_set1_epi32((int)((127u - f->bias) << 23)));
  int nsh = 23 - (int)f->mbits;
  __m256i r_lsb = _mm256_and_si256(_mm256_srli_epi32(r, nsh), one);
  __m256i normal = _mm256_srli_epi32(
      _mm256_add_epi32(_mm256_add_epi32(r, _mm256_set1_epi32((int)((1u << (nsh - 1)) - 1u))), r_lsb), nsh);

  __m256i sh = _mm256_sub_epi32(_mm256_set1_epi32((int)(151u - f->bias - f->mbits)), _mm256_srli_epi32(a, 23));
  __m256i m = _mm256_or_si256(_mm256_and_si256(a, _mm256_set1_epi32(0x007FFFFF)), _mm256_set1_epi32(0x00800000));
  __m256i half = _mm256_sub_epi32(_mm256_sllv_epi32(one, _mm256_sub_epi32(sh, one)), one);
  __m256i m_lsb = _mm256_and_si256(_mm256_srlv_epi32(m, sh), one);
  __m256i sub = _mm256_srlv_epi32(_mm256_add_epi32(_mm256_add_epi32(m, half), m_lsb), sh);

  __m256i is_normal = _mm256_cmpgt_epi32(a, _mm256_set1_epi32((int)f->min_f32 - 1));
  __m256i is_max = _mm256_cmpgt_epi32(a, _mm256_set1_epi32((int)f->max_f32 - 1));
  __m256i is_inf = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(0x7F800000));
  __m256i is_nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
  __m256i code = _mm256_blendv_epi8(sub, normal, is_normal);
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(f->max_code), is_max);
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(f->inf_code), is_inf);
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(f->nan_code), is_nan);
  return _mm256_or_si256(code, sign);
}

/* 32 lanes per step so the two saturating packs fill one ymm; codes are
 * 0..255, so the packs are exact. Tails go through the scalar codec. */
TARGET_AVX2 static inline void fp8_encode_avx2(const fp8_format *f, const float *src, uint8_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i c[4];
    for (int j = 0; j < 4; j++) c[j] = fp8_encode_256(f, _mm256_loadu_si256((const __m256i *)(src + i + 8 * j)));
    __m256i w01 = _mm256_packus_epi32(c[0], c[1]); /* 16-bit, lane-interleaved */
    __m256i w23 = _mm256_packus_epi32(c[2], c[3]);
    __m256i b = _mm256_packus_epi16(w01, w23);
    /* After the two in-lane packs the dwords hold elements
     * 0-3, 8-11, 16-19, 24-27 | 4-7, 12-15, 20-23, 28-31. */
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(dst + i), b);
  }
  for (; i < n; i++) dst[i] = fp8_encode(f, src[i]);
}

TARGET_AVX2 static void f32_to_e4m3_avx2(const float *src, uint8_t *dst, size_t n) {
  fp8_encode_avx2(&E4M3, src, dst, n);
}

TARGET_AVX2 static void f32_to_e5m2_avx2(const float *src, uint8_t *dst, size_t n) {
  fp8_encode_avx2(&E5M2, src, dst, n);
}

TARGET_AVX2 static void e4m3_to_f32_avx2(const uint8_t *src, float *dst, size_t n) {
  const __m256i low7 = _mm256_set1_epi32(0x7F), bit7 = _mm256_set1_epi32(0x80);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t bytes;
    memcpy(&bytes, src + i, sizeof bytes);
    __m256i c = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)bytes));
    __m256 v = _mm256_i32gather_ps(e4m3_values, _mm256_and_si256(c, low7), 4);
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(c, bit7), 24);
    _mm256_storeu_ps(dst + i, _mm256_or_ps(v, _mm256_castsi256_ps(sign)));
  }
  for (; i < n; i++) dst[i] = sparq_e4m3_to_f32(src[i]);
}

TARGET_AVX2 static void e5m2_to_f32_avx2(const uint8_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t bytes;
    memcpy(&bytes, src + i, sizeof bytes);
    __m128i h = _mm_slli_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)bytes)), 8);
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; i++) dst[i] = sparq_e5m2_to_f32(src[i]);
}
#endif /* SPARQ_HAVE_X86_SIMD */

/* ---------------------------------------------------------------- dispatch */

void sparq_f32_to_e4m3_n(const float *src, uint8_t *dst, size_t n) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) {
    f32_to_e4m3_avx512(src, dst, n);
    return;
  }
  if (isa >= SPARQ_ISA_AVX2) {
    f32_to_e4m3_avx2(src, dst, n);
    return;
  }
#endif
  sparq_f32_to_e4m3_n_ref(src, dst, n);
}

void sparq_f32_to_e5m2_n(const float *src, uint8_t *dst, size_t n) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) {
    f32_to_e5m2_avx512(src, dst, n);
    return;
  }
  if (isa >= SPARQ_ISA_AVX2) {
    f32_to_e5m2_avx2(src, dst, n);
    return;
  }
#endif
  sparq_f32_to_e5m2_n_ref(src, dst, n);
}

void sparq_e4m3_to_f32_n(const uint8_t *src, float *dst, size_t n) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) {
    e4m3_to_f32_avx512(src, dst, n);
    return;
  }
  if (isa >= SPARQ_ISA_AVX2) {
    e4m3_to_f32_avx2(src, dst, n);
    return;
  }
#endif
  sparq_e4m3_to_f32_n_ref(src, dst, n);
}

void sparq_e5m2_to_f32_n(const uint8_t *src, float *dst, size_t n) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) {
    e5m2_to_f32_avx512(src, dst, n);
    return;
  }
  if (isa >= SPARQ_ISA_AVX2) {
    e5m2_to_f32_avx2(src, dst, n);
    return;
  }
#endif
  sparq_e5m2_to_f32_n_ref(src, dst, n);
}
