/* BF16 and IEEE binary16: scalar codecs, bulk converters and their SIMD
 * kernels.
 *
 * The scalar encoders work on the float's bits, never on float arithmetic,
 * so FTZ/DAZ (which sparq_set_threads turns on) cannot flush a denormal
 * input before it is rounded. The SIMD kernels are chosen so that they give
 * the same bits as the scalar code for every input; see each kernel for the
 * instruction behaviour that was checked. */
#include <string.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num/bf16_simd.h"
#include "num/float_bits.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------ BF16 */

uint16_t sparq_bf16_from_f32(float x) {
  uint32_t u = f32_bits(x);
  /* Truncating a NaN could clear every payload bit left and give inf. */
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);
  /* Adding 0x7FFF plus the lowest kept bit rounds to nearest even. A carry
   * out of the mantissa bumps the exponent, which is the right answer all
   * the way up to inf, and BF16 shares FP32's exponent range, so subnormals
   * need no special case. */
  return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float sparq_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* ------------------------------------------------------------------ FP16 */

uint16_t sparq_f16_from_f32(float x) {
  uint32_t u = f32_bits(x);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7FFFFFFFu;
  /* Normal binary16 range [2^-14, 65520), with one unsigned compare. 65520
   * is the midpoint between 65504 and 2^16 and ties to the even neighbour
   * 2^16, i.e. inf, so it belongs to the overflow case. */
  if (a - 0x38800000u < 0x477FF000u - 0x38800000u) {
    uint32_t r = a - (112u << 23); /* rebias 127 -> 15 */
    return (uint16_t)(sign | shift_right_rne(r, 13));
  }
  if (a < 0x38800000u) {
    /* Subnormal binary16: the code is |x| / 2^-24 rounded. Below 2^-26 that
     * is far under one half, and the shift below would exceed 31 bits. */
    if (a < 0x32800000u) return sign;
    unsigned e = a >> 23; /* biased, 101..112 */
    uint32_t m = (a & 0x007FFFFFu) | 0x00800000u;
    /* |x| = m * 2^(e-150), so |x| / 2^-24 = m >> (126 - e). */
    return (uint16_t)(sign | shift_right_rne(m, 126u - e));
  }
  if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x01FFu));
  return (uint16_t)(sign | 0x7C00u);
}

float sparq_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu;
  uint32_t m = h & 0x03FFu;
  if (e == 0x1F) {
    /* Quiet a NaN the way vcvtph2ps does, so both paths agree. */
    uint32_t quiet = m ? 0x00400000u : 0;
    return bits_f32(sign | 0x7F800000u | (m << 13) | quiet);
  }
  if (e == 0) {
    /* m * 2^-24 is a normal FP32 for m >= 1, so this product is exact and
     * untouched by FTZ/DAZ. */
    float v = (float)m * 0x1p-24f;
    return bits_f32(f32_bits(v) | sign);
  }
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* ------------------------------------------------------------ scalar loops */

void sparq_f32_to_bf16_n_ref(const float *src, uint16_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_bf16_from_f32(src[i]);
}

void sparq_bf16_to_f32_n_ref(const uint16_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_bf16_to_f32(src[i]);
}

void sparq_f32_to_f16_n_ref(const float *src, uint16_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_f16_from_f32(src[i]);
}

void sparq_f16_to_f32_n_ref(const uint16_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sparq_f16_to_f32(src[i]);
}

/* ----------------------------------------------------------- SIMD kernels */

#ifdef SPARQ_HAVE_X86_SIMD
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

TARGET_AVX512 static void f32_to_bf16_avx512(const float *src, uint16_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_loadu_si512((const void *)(src + i));
    _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(bf16_encode_512(u)));
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    __m512i u = _mm512_maskz_loadu_epi32(k, src + i);
    _mm512_mask_cvtepi32_storeu_epi16(dst + i, k, bf16_encode_512(u));
  }
}

TARGET_AVX512 static void bf16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
    _mm512_storeu_si512((void *)(dst + i), _mm512_slli_epi32(h, 16));
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src + i));
    _mm512_mask_storeu_epi32(dst + i, k, _mm512_slli_epi32(h, 16));
  }
}

/* vcvtps2ph with an explicit round-to-nearest-even immediate ignores
 * MXCSR.RC and FTZ, gives the same NaN (sign | 0x7E00 | payload >> 13) as
 * the scalar code, and a denormal FP32 input rounds to ±0 with or without
 * DAZ, so it matches bit for bit. */
TARGET_AVX512 static void f32_to_f16_avx512(const float *src, uint16_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256((__m256i *)(dst + i), h);
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(dst + i, k, h);
  }
}

/* vcvtph2ps ignores DAZ (binary16 subnormals convert exactly) and quiets
 * NaNs, as sparq_f16_to_f32 does. */
TARGET_AVX512 static void f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dst + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, src + i)));
  }
}

/* AVX2 has no masked 16-bit stores, so tails go through the scalar codec. */
TARGET_AVX2 static void f32_to_bf16_avx2(const float *src, uint16_t *dst, size_t n) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i inf = _mm256_set1_epi32(0x7F800000);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i round = _mm256_set1_epi32(0x7FFF);
  const __m256i quiet = _mm256_set1_epi32(0x0040);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i out[2];
    for (int h = 0; h < 2; h++) {
      __m256i u = _mm256_loadu_si256((const __m256i *)(src + i + 8 * h));
      /* Signed compare is fine: with the sign cleared both sides are >= 0. */
      __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
      __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, round), lsb), 16);
      __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
      out[h] = _mm256_blendv_epi8(r, q, nan);
    }
    /* Lanes hold 0..0xFFFF, so the unsigned-saturating pack is exact; it
     * packs within 128-bit halves, hence the permute. */
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(out[0], out[1]), 0xD8);
    _mm256_storeu_si256((__m256i *)(dst + i), p);
  }
  for (; i < n; i++) dst[i] = sparq_bf16_from_f32(src[i]);
}

TARGET_AVX2 static void bf16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
    _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(h, 16));
  }
  for (; i < n; i++) dst[i] = sparq_bf16_to_f32(src[i]);
}

TARGET_AVX2 static void f32_to_f16_avx2(const float *src, uint16_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *)(dst + i), h);
  }
  for (; i < n; i++) dst[i] = sparq_f16_from_f32(src[i]);
}

TARGET_AVX2 static void f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
  for (; i < n; i++) dst[i] = sparq_f16_to_f32(src[i]);
}
#endif /* SPARQ_HAVE_X86_SIMD */

/* ---------------------------------------------------------------- dispatch */

#ifdef SPARQ_HAVE_X86_SIMD
#define DISPATCH(name, src, dst, n)                                   \
  do {                                                                \
    sparq_isa isa_ = sparq_isa_active();                              \
    if (isa_ >= SPARQ_ISA_AVX512) {                                   \
      name##_avx512(src, dst, n);                                     \
      return;                                                         \
    }                                                                 \
    if (isa_ >= SPARQ_ISA_AVX2) {                                     \
      name##_avx2(src, dst, n);                                       \
      return;                                                         \
    }                                                                 \
  } while (0)
#else
#define DISPATCH(name, src, dst, n) ((void)0)
#endif

void sparq_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n) {
  DISPATCH(f32_to_bf16, src, dst, n);
  sparq_f32_to_bf16_n_ref(src, dst, n);
}

void sparq_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
  DISPATCH(bf16_to_f32, src, dst, n);
  sparq_bf16_to_f32_n_ref(src, dst, n);
}

void sparq_f32_to_f16_n(const float *src, uint16_t *dst, size_t n) {
  DISPATCH(f32_to_f16, src, dst, n);
  sparq_f32_to_f16_n_ref(src, dst, n);
}

void sparq_f16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
  DISPATCH(f16_to_f32, src, dst, n);
  sparq_f16_to_f32_n_ref(src, dst, n);
}
