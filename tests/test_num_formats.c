/* num/: the BF16, FP16, E4M3 and E5M2 codecs and bulk converters.
 *
 * Every code of every format is decoded and compared with an independent
 * double-precision decoder written here from the format tables; every pair
 * of neighbouring values has its midpoint (exact in FP32 for all four
 * formats) and the floats either side of it encoded; the boundaries
 * (saturation, overflow, subnormals, NaN payloads, denormal FP32 inputs) are
 * spelled out; and the bulk converters must match the scalar codecs bit for
 * bit at every ISA level this CPU has, on all of those inputs, on random
 * arrays of awkward lengths, and with FTZ/DAZ on. The exhaustive sweep over
 * all 2^32 floats is test_num_sweep. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num/float_bits.h"
#include "num_test_util.h"

/* ------------------------------------------------------- codecs under test */

/* The four formats behind one interface (codes widened to unsigned, arrays
 * passed as void *) so every check below runs on all of them. */
typedef struct codec {
  const char *name;
  int bits;               /* 8 or 16 */
  int ebits, mbits, bias;
  bool ieee;              /* all-ones exponent = inf/NaN (else E4M3 "fn": only S.1111.111 is NaN) */
  bool saturates;         /* finite overflow gives ±max, not inf */
  unsigned (*enc)(float);
  float (*dec)(unsigned);
  void (*enc_n)(const float *, void *, size_t);
  void (*enc_n_ref)(const float *, void *, size_t);
  void (*dec_n)(const void *, float *, size_t);
  void (*dec_n_ref)(const void *, float *, size_t);
  unsigned (*nan_code)(uint32_t u); /* the documented encoding of a NaN input */
} codec;

#define WRAP(fmt, T)                                                                                        \
  static unsigned fmt##_enc(float x) { return sparq_##fmt##_from_f32(x); }                                  \
  static float fmt##_dec(unsigned c) { return sparq_##fmt##_to_f32((T)c); }                                 \
  static void fmt##_enc_n(const float *s, void *d, size_t n) { sparq_f32_to_##fmt##_n(s, (T *)d, n); }      \
  static void fmt##_enc_n_ref(const float *s, void *d, size_t n) { sparq_f32_to_##fmt##_n_ref(s, (T *)d, n); } \
  static void fmt##_dec_n(const void *s, float *d, size_t n) { sparq_##fmt##_to_f32_n((const T *)s, d, n); }  \
  static void fmt##_dec_n_ref(const void *s, float *d, size_t n) { sparq_##fmt##_to_f32_n_ref((const T *)s, d, n); }
WRAP(bf16, uint16_t)
WRAP(f16, uint16_t)
WRAP(e4m3, uint8_t)
WRAP(e5m2, uint8_t)


#define CODEC(fmt, bits, e, m, b, ieee, sat) \
  {#fmt, bits, e, m, b, ieee, sat, fmt##_enc, fmt##_dec, fmt##_enc_n, fmt##_enc_n_ref, fmt##_dec_n, fmt##_dec_n_ref, fmt##_nan}
static const codec CODECS[] = {
    CODEC(bf16, 16, 8, 7, 127, true, false),
    CODEC(f16, 16, 5, 10, 15, true, false),
    CODEC(e4m3, 8, 4, 3, 7, false, true),
    CODEC(e5m2, 8, 5, 2, 15, true, true),
};
#define NCODECS (sizeof CODECS / sizeof CODECS[0])

/* Independent decoder straight from the format definition, in double. */
static double decode_ref(const codec *c, unsigned code) {
  unsigned e = (code >> c->mbits) & ((1u << c->ebits) - 1u);
  unsigned m = code & ((1u << c->mbits) - 1u);
  unsigned emax = (1u << c->ebits) - 1u;
  double v;
  if (c->ieee && e == emax) v = m ? NAN : INFINITY;
  else if (!c->ieee && e == emax && m == (1u << c->mbits) - 1u) v = NAN;
  else if (e == 0) v = ldexp((double)m, 1 - c->bias - c->mbits);
  else v = ldexp((double)((1u << c->mbits) + m), (int)e - c->bias - c->mbits);
  return (code >> (c->bits - 1)) & 1u ? -v : v;
}

static unsigned sign_code(const codec *c) { return 1u << (c->bits - 1); }

/* The largest finite positive code; positive codes 0..this ascend in value. */
static unsigned max_code(const codec *c) {
  return c->ieee ? ((((1u << c->ebits) - 1u) << c->mbits) - 1u) : (1u << (c->bits - 1)) - 2u;
}

static bool is_nan_code(const codec *c, unsigned code) { return isnan(decode_ref(c, code)); }


static int setup_mxcsr(void **state) {
  (void)state;
  /* Start every test from IEEE behaviour; one test turns FTZ/DAZ on itself. */
  _mm_setcsr(_mm_getcsr() & ~0x8040u);
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  return 0;
}

/* ------------------------------------------------------------------- tests */

static void every_code_decodes_exactly(void **state) {
  (void)state;
  for (size_t f = 0; f < NCODECS; f++) {
    const codec *c = &CODECS[f];
    for (unsigned code = 0; code < (1u << c->bits); code++) {
      double ref = decode_ref(c, code);
      float got = c->dec(code);
      bool neg = (code & sign_code(c)) != 0;
      if (isnan(ref)) {
        if (!isnan(got) || (signbit(got) != 0) != neg) fail_msg("%s: code 0x%x gives %a, want a NaN", c->name, code, (double)got);
        /* BF16 keeps the payload bit for bit; the others return quiet NaNs. */
        if (c->bits == 16 && c->ebits == 8) assert_int_equal(f32_bits(got), code << 16);
        else assert_true(f32_bits(got) & 0x00400000u);
        continue;
      }
      if ((double)got != ref || (signbit(got) != 0) != neg)
        fail_msg("%s: code 0x%x decodes to %a, want %a", c->name, code, (double)got, ref);
    }
  }
  /* Spot checks that do not trust decode_ref. */
  assert_true(sparq_e4m3_to_f32(0x7E) == 448.0f && sparq_e4m3_to_f32(0xFE) == -448.0f);
  assert_true(sparq_e4m3_to_f32(0x08) == 0x1p-6f && sparq_e4m3_to_f32(0x01) == 0x1p-9f);
  assert_true(sparq_e4m3_to_f32(0x07) == 7 * 0x1p-9f && isnan(sparq_e4m3_to_f32(0x7F)) && isnan(sparq_e4m3_to_f32(0xFF)));
  assert_true(sparq_e5m2_to_f32(0x7B) == 57344.0f && sparq_e5m2_to_f32(0x04) == 0x1p-14f && sparq_e5m2_to_f32(0x01) == 0x1p-16f);
  assert_true(isinf(sparq_e5m2_to_f32(0x7C)) && sparq_e5m2_to_f32(0xFC) < 0 && isnan(sparq_e5m2_to_f32(0x7D)));
  assert_true(sparq_f16_to_f32(0x7BFF) == 65504.0f && sparq_f16_to_f32(0x0001) == 0x1p-24f && sparq_f16_to_f32(0x0400) == 0x1p-14f);
  assert_int_equal(f32_bits(sparq_f16_to_f32(0x7C01)), 0x7FC02000u); /* as vcvtph2ps */
  assert_true(sparq_bf16_to_f32(0x3F80) == 1.0f && sparq_bf16_to_f32(0x0001) == 0x1p-133f);
  assert_int_equal(f32_bits(sparq_bf16_to_f32(0x8000)), 0x80000000u);
}

static void every_finite_code_round_trips(void **state) {
  (void)state;
  for (size_t f = 0; f < NCODECS; f++) {
    const codec *c = &CODECS[f];
    for (unsigned code = 0; code < (1u << c->bits); code++) {
      if (is_nan_code(c, code)) continue;
      unsigned back = c->enc(c->dec(code));
      if (back != code) fail_msg("%s: code 0x%x -> %a -> 0x%x", c->name, code, (double)c->dec(code), back);
    }
  }
}

static void expect_enc(const codec *c, float x, unsigned want) {
  unsigned got = c->enc(x);
  if (got != want) fail_msg("%s: %a (0x%08x) encodes to 0x%x, want 0x%x", c->name, (double)x, f32_bits(x), got, want);
}

static void every_midpoint_ties_to_even(void **state) {
  (void)state;
  for (size_t f = 0; f < NCODECS; f++) {
    const codec *c = &CODECS[f];
    unsigned top = max_code(c), s = sign_code(c);
    /* At k == top the upper neighbour is the value one step past max (2^16
     * for FP16, 480 for E4M3): it decides overflow, which gives inf (code
     * top + 1) for IEEE formats and max again for the saturating ones. */
    for (unsigned k = 0; k <= top; k++) {
      double lo = decode_ref(c, k);
      double hi = k < top ? decode_ref(c, k + 1) : 2 * lo - decode_ref(c, k - 1);
      double mid = (lo + hi) / 2;
      float fm = (float)mid;
      if ((double)fm != mid) fail_msg("%s: midpoint %a of 0x%x is not an FP32", c->name, mid, k);
      unsigned up = k == top && c->saturates ? top : k + 1;
      unsigned tie = (k & 1) ? up : k;
      float above = bits_f32(f32_bits(fm) + 1), below = bits_f32(f32_bits(fm) - 1);
      expect_enc(c, fm, tie);
      expect_enc(c, above, up);
      expect_enc(c, below, k);
      expect_enc(c, -fm, tie | s);
      expect_enc(c, -above, up | s);
      expect_enc(c, -below, k | s);
    }
  }
}

typedef struct case_ {
  uint32_t in;
  unsigned out;
} case_;

static void check_cases(const codec *c, const case_ *cs, size_t n) {
  for (size_t i = 0; i < n; i++) expect_enc(c, bits_f32(cs[i].in), cs[i].out);
}

#define B(x) f32_bits(x)
static void boundaries_saturation_and_nan(void **state) {
  (void)state;
  const uint32_t fmax = B(FLT_MAX), inf = 0x7F800000u, ninf = 0xFF800000u;
  const uint32_t qnan = 0x7FC00000u, nqnan = 0xFFC00000u, snan = 0x7F800001u, nsnan = 0xFF800001u;
  const uint32_t den_min = 0x00000001u, den_max = 0x007FFFFFu, nden_max = 0x807FFFFFu, nzero = 0x80000000u;

  const case_ e4m3[] = {
      {B(448), 0x7E}, {B(-448), 0xFE}, {B(464), 0x7E}, {B(464) - 1, 0x7E}, {B(464) + 1, 0x7E}, {B(480), 0x7E},
      {B(1e6f), 0x7E}, {fmax, 0x7E}, {fmax | nzero, 0xFE}, {inf, 0x7E}, {ninf, 0xFE}, {qnan, 0x7F},
      {nqnan, 0xFF}, {snan, 0x7F}, {nsnan, 0xFF}, {0xFFFFFFFFu, 0xFF}, {0, 0x00}, {nzero, 0x80},
      {B(0x1p-9f), 0x01}, {B(0x1p-10f), 0x00}, {B(0x1p-10f) + 1, 0x01}, {B(-0x1p-10f), 0x80},
      {B(3 * 0x1p-10f), 0x02}, {B(0x1p-6f), 0x08}, {B(15 * 0x1p-10f), 0x08}, {B(416), 0x7D}, {B(432), 0x7E},
      {B(424), 0x7D}, {den_min, 0x00}, {den_max, 0x00}, {nden_max, 0x80}, {B(1), 0x38}, {B(0x1p-11f), 0}};
  const case_ e5m2[] = {
      {B(57344), 0x7B}, {B(61440), 0x7B}, {B(61440) - 1, 0x7B}, {B(65536), 0x7B}, {fmax, 0x7B},
      {fmax | nzero, 0xFB}, {inf, 0x7C}, {ninf, 0xFC}, {qnan, 0x7E}, {nqnan, 0xFE}, {snan, 0x7E}, {nsnan, 0xFE},
      {B(0x1p-16f), 0x01}, {B(0x1p-17f), 0x00}, {B(0x1p-17f) + 1, 0x01}, {B(3 * 0x1p-17f), 0x02},
      {B(0x1p-14f), 0x04}, {B(7 * 0x1p-17f), 0x04}, {0, 0}, {nzero, 0x80}, {den_min, 0}, {nden_max, 0x80},
      {B(1), 0x3C}, {B(49152), 0x7A}, {B(53248), 0x7A}};
  const case_ f16[] = {
      {B(65504), 0x7BFF}, {B(65520) - 1, 0x7BFF}, {B(65520), 0x7C00}, {B(-65520), 0xFC00}, {fmax, 0x7C00},
      {inf, 0x7C00}, {ninf, 0xFC00}, {qnan, 0x7E00}, {nqnan, 0xFE00}, {snan, 0x7E00}, {nsnan, 0xFE00},
      {0x7FA00000u, 0x7F00}, {0x7FFFFFFFu, 0x7FFF}, {0x7F802000u, 0x7E01}, {B(0x1p-24f), 0x0001},
      {B(0x1p-25f), 0x0000}, {B(0x1p-25f) + 1, 0x0001}, {B(-0x1p-25f), 0x8000}, {B(3 * 0x1p-25f), 0x0002},
      {B(0x1p-14f), 0x0400}, {B(2047 * 0x1p-25f), 0x0400}, {B(2047 * 0x1p-25f) - 1, 0x03FF},
      {B(1023 * 0x1p-24f), 0x03FF}, {den_min, 0}, {nden_max, 0x8000}, {0, 0}, {nzero, 0x8000}, {B(1), 0x3C00},
      {B(1 + 0x1p-11f), 0x3C00}, {B(1 + 3 * 0x1p-11f), 0x3C02}, {B(0x1p-26f), 0}, {B(0x1p-26f) + 1, 0}};
  const case_ bf16[] = {
      {0, 0}, {nzero, 0x8000}, {den_min, 0}, {0x80000001u, 0x8000}, {0x00008000u, 0x0000},
      {0x00008001u, 0x0001}, {0x00018000u, 0x0002}, {den_max, 0x0080}, {0x7F7F7FFFu, 0x7F7F},
      {0x7F7F8000u, 0x7F80}, {fmax, 0x7F80}, {fmax | nzero, 0xFF80}, {inf, 0x7F80}, {ninf, 0xFF80},
      {snan, 0x7FC0}, {nsnan, 0xFFC0}, {qnan, 0x7FC0}, {0x7FFFFFFFu, 0x7FFF}, {0x7F810000u, 0x7FC1},
      {0x3F808000u, 0x3F80}, {0x3F818000u, 0x3F82}, {0x3F80FFFFu, 0x3F81}};
  check_cases(&CODECS[0], bf16, sizeof bf16 / sizeof bf16[0]);
  check_cases(&CODECS[1], f16, sizeof f16 / sizeof f16[0]);
  check_cases(&CODECS[2], e4m3, sizeof e4m3 / sizeof e4m3[0]);
  check_cases(&CODECS[3], e5m2, sizeof e5m2 / sizeof e5m2[0]);
}

static void every_nan_payload_follows_the_rule(void **state) {
  (void)state;
  for (size_t f = 0; f < NCODECS; f++) {
    const codec *c = &CODECS[f];
    for (uint32_t m = 1; m < (1u << 23); m++) {
      uint32_t u = 0x7F800000u | m;
      if (c->enc(bits_f32(u)) != c->nan_code(u) || c->enc(bits_f32(u | 0x80000000u)) != c->nan_code(u | 0x80000000u))
        fail_msg("%s: NaN 0x%08x encodes to 0x%x", c->name, u, c->enc(bits_f32(u)));
    }
  }
}

/* Denormal FP32 inputs round like any value: to the nearest code, which is
 * ±0 for the narrow formats and a subnormal for BF16. */
static void denormal_inputs_round_exactly(void **state) {
  (void)state;
  for (uint32_t m = 1; m < (1u << 23); m += 4099) {
    for (int neg = 0; neg < 2; neg++) {
      uint32_t u = m | (neg ? 0x80000000u : 0);
      float x = bits_f32(u);
      unsigned s8 = neg ? 0x80u : 0, s16 = neg ? 0x8000u : 0;
      assert_int_equal(sparq_e4m3_from_f32(x), s8);
      assert_int_equal(sparq_e5m2_from_f32(x), s8);
      assert_int_equal(sparq_f16_from_f32(x), s16);
      /* bf16: the upper 16 bits rounded on the lower 16, computed in double. */
      double v = ldexp((double)m, -149), step = ldexp(1.0, -133);
      double q = v / step, fl = floor(q);
      unsigned want = (unsigned)fl + ((q - fl > 0.5 || (q - fl == 0.5 && ((unsigned)fl & 1))) ? 1 : 0);
      assert_int_equal(sparq_bf16_from_f32(x), want | s16);
    }
  }
}

/* ---------------------------------------------- bulk vs scalar, every ISA */

/* Inputs from every class: each code's value and its FP32 neighbours, each
 * midpoint and its neighbours, boundaries, NaNs, denormals, random bits. */
static float *build_classes(size_t *count) {
  size_t cap = 2000000, n = 0;
  float *x = malloc(cap * sizeof *x);
  assert_non_null(x);
#define PUSH(v) (x[n++] = (v))
  for (size_t f = 0; f < NCODECS; f++) {
    const codec *c = &CODECS[f];
    for (unsigned code = 0; code < (1u << c->bits); code++) {
      float v = c->dec(code);
      uint32_t u = f32_bits(v);
      PUSH(v);
      PUSH(bits_f32(u + 1));
      PUSH(bits_f32(u - 1));
      unsigned k = code & ~sign_code(c);
      if (k < max_code(c)) {
        double mid = (decode_ref(c, k) + decode_ref(c, k + 1)) / 2;
        float fm = (float)((code & sign_code(c)) ? -mid : mid);
        PUSH(fm);
        PUSH(bits_f32(f32_bits(fm) + 1));
        PUSH(bits_f32(f32_bits(fm) - 1));
      }
    }
  }
  const uint32_t specials[] = {0, 0x80000000u, 1, 0x80000001u, 0x007FFFFFu, 0x807FFFFFu, 0x00800000u,
                               0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7F800001u, 0xFF800001u,
                               0x7FC00000u, 0xFFC00000u, 0x7FFFFFFFu, 0xFFFFFFFFu, 0x7FA00000u, 0x7F802000u,
                               B(448), B(464), B(480), B(57344), B(61440), B(65504), B(65520), B(65536)};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
    PUSH(bits_f32(specials[i]));
    PUSH(bits_f32(specials[i] ^ 0x80000000u));
  }
  sparq_rng rng = sparq_rng_make(7, 1);
  while (n < cap) {
    uint32_t r = sparq_rng_u32(&rng);
    switch (r & 3) {
      case 0: PUSH(bits_f32(sparq_rng_u32(&rng))); break;                     /* any bits */
      case 1: PUSH(bits_f32(sparq_rng_u32(&rng) & 0x807FFFFFu)); break;       /* denormal */
      case 2: PUSH(bits_f32(0x7F800000u | (sparq_rng_u32(&rng) & 0x807FFFFFu))); break; /* inf/NaN */
      default: PUSH(sparq_rng_normal(&rng) * ldexpf(1.0f, (int)(r >> 8) % 40 - 20)); break;
    }
  }
#undef PUSH
  *count = n;
  return x;
}

/* Runs the bulk converter on x[0..n) into a buffer with guard bytes and
 * compares with the scalar twin and with the scalar codec. */
static void compare_encode(const codec *c, const float *x, size_t n, sparq_isa isa) {
  size_t w = (size_t)c->bits / 8, guard = 64;
  unsigned char *got = malloc((n + guard) * w), *ref = malloc(n * w);
  assert_non_null(got);
  assert_non_null(ref);
  memset(got, 0xA5, (n + guard) * w);
  c->enc_n(x, got, n);
  c->enc_n_ref(x, ref, n);
  for (size_t i = 0; i < n; i++) {
    unsigned g = w == 1 ? got[i] : ((uint16_t *)(void *)got)[i];
    unsigned r = w == 1 ? ref[i] : ((uint16_t *)(void *)ref)[i];
    unsigned s = c->enc(x[i]);
    if (g != s || r != s)
      fail_msg("%s at %s: x[%zu] = 0x%08x: bulk 0x%x, ref 0x%x, scalar 0x%x", c->name, sparq_isa_name(isa), i,
               f32_bits(x[i]), g, r, s);
  }
  for (size_t i = n * w; i < (n + guard) * w; i++)
    if (got[i] != 0xA5) fail_msg("%s at %s: n = %zu wrote past the end", c->name, sparq_isa_name(isa), n);
  free(got);
  free(ref);
}

static void compare_decode(const codec *c, const void *codes, size_t n, sparq_isa isa) {
  size_t guard = 16;
  float *got = malloc((n + guard) * sizeof *got), *ref = malloc(n * sizeof *ref);
  assert_non_null(got);
  assert_non_null(ref);
  memset(got, 0xA5, (n + guard) * sizeof *got);
  c->dec_n(codes, got, n);
  c->dec_n_ref(codes, ref, n);
  for (size_t i = 0; i < n; i++) {
    unsigned code = c->bits == 8 ? ((const uint8_t *)codes)[i] : ((const uint16_t *)codes)[i];
    uint32_t s = f32_bits(c->dec(code));
    if (f32_bits(got[i]) != s || f32_bits(ref[i]) != s)
      fail_msg("%s at %s: code[%zu] = 0x%x: bulk 0x%08x, ref 0x%08x, scalar 0x%08x", c->name, sparq_isa_name(isa),
               i, code, f32_bits(got[i]), f32_bits(ref[i]), s);
  }
  const unsigned char *g = (const unsigned char *)(got + n);
  for (size_t i = 0; i < guard * sizeof *got; i++)
    if (g[i] != 0xA5) fail_msg("%s at %s: n = %zu wrote past the end", c->name, sparq_isa_name(isa), n);
  free(got);
  free(ref);
}

static const size_t LENGTHS[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000003};

static void bulk_encoders_match_scalar(void **state) {
  (void)state;
  size_t n;
  float *x = build_classes(&n);
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  for (int l = 0; l < nisa; l++) {
    sparq_set_isa_cap(isas[l]);
    for (size_t f = 0; f < NCODECS; f++) {
      const codec *c = &CODECS[f];
      compare_encode(c, x, n, isas[l]);
      /* Awkward lengths at awkward offsets (unaligned, mid-array). */
      for (size_t li = 0; li < sizeof LENGTHS / sizeof LENGTHS[0]; li++)
        for (size_t off = 0; off < 3; off++) compare_encode(c, x + off * 77 + 1, LENGTHS[li], isas[l]);
    }
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  free(x);
}

static void bulk_decoders_match_scalar(void **state) {
  (void)state;
  size_t n = 1000003 + 70000;
  uint16_t *c16 = malloc(n * sizeof *c16);
  uint8_t *c8 = malloc(n);
  assert_non_null(c16);
  assert_non_null(c8);
  sparq_rng rng = sparq_rng_make(11, 2);
  for (size_t i = 0; i < n; i++) {
    /* Every code in order first, then random ones. */
    c16[i] = i < 65536 ? (uint16_t)i : (uint16_t)sparq_rng_u32(&rng);
    c8[i] = (uint8_t)(i < 65536 ? i : sparq_rng_u32(&rng));
  }
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  for (int l = 0; l < nisa; l++) {
    sparq_set_isa_cap(isas[l]);
    for (size_t f = 0; f < NCODECS; f++) {
      const codec *c = &CODECS[f];
      const unsigned char *codes = c->bits == 8 ? (const unsigned char *)c8 : (const unsigned char *)c16;
      size_t w = (size_t)c->bits / 8;
      compare_decode(c, codes, n, isas[l]);
      for (size_t li = 0; li < sizeof LENGTHS / sizeof LENGTHS[0]; li++)
        for (size_t off = 0; off < 3; off++) compare_decode(c, codes + (off * 77 + 1) * w, LENGTHS[li], isas[l]);
    }
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  free(c16);
  free(c8);
}

/* sparq_set_threads turns on FTZ and DAZ in every worker; the codecs must
 * not notice, at any ISA level. */
static void results_ignore_ftz_and_daz(void **state) {
  (void)state;
  size_t n;
  float *x = build_classes(&n);
  n = 300000; /* the first part holds every code, midpoint and neighbour */
  unsigned char *plain[NCODECS], *flushed = malloc(n * 2);
  float *dec_plain[NCODECS], *dec_flushed = malloc(256 * 2 * sizeof(float));
  uint8_t codes[256];
  for (int i = 0; i < 256; i++) codes[i] = (uint8_t)i;
  for (size_t f = 0; f < NCODECS; f++) {
    plain[f] = malloc(n * 2);
    dec_plain[f] = malloc(256 * sizeof(float));
    CODECS[f].enc_n_ref(x, plain[f], n);
    if (CODECS[f].bits == 8) CODECS[f].dec_n_ref(codes, dec_plain[f], 256);
  }
  unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040u);
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  for (int l = 0; l < nisa; l++) {
    sparq_set_isa_cap(isas[l]);
    for (size_t f = 0; f < NCODECS; f++) {
      const codec *c = &CODECS[f];
      for (int pass = 0; pass < 2; pass++) {
        (pass ? c->enc_n_ref : c->enc_n)(x, flushed, n);
        if (memcmp(flushed, plain[f], n * (size_t)c->bits / 8) != 0)
          fail_msg("%s at %s: FTZ/DAZ changed an encoding", c->name, sparq_isa_name(isas[l]));
      }
      if (c->bits == 8) {
        c->dec_n(codes, dec_flushed, 256);
        assert_memory_equal(dec_flushed, dec_plain[f], 256 * sizeof(float));
      } else {
        /* Every 16-bit code, subnormals included, decodes the same. */
        uint16_t all[4096];
        float a[4096], b[4096];
        for (unsigned base = 0; base < 65536; base += 4096) {
          for (unsigned i = 0; i < 4096; i++) all[i] = (uint16_t)(base + i);
          c->dec_n(all, a, 4096);
          _mm_setcsr(csr);
          c->dec_n_ref(all, b, 4096);
          _mm_setcsr(csr | 0x8040u);
          assert_memory_equal(a, b, sizeof a);
        }
      }
    }
  }
  _mm_setcsr(csr);
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  for (size_t f = 0; f < NCODECS; f++) {
    free(plain[f]);
    free(dec_plain[f]);
  }
  free(flushed);
  free(dec_flushed);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(every_code_decodes_exactly, setup_mxcsr),
      cmocka_unit_test_setup(every_finite_code_round_trips, setup_mxcsr),
      cmocka_unit_test_setup(every_midpoint_ties_to_even, setup_mxcsr),
      cmocka_unit_test_setup(boundaries_saturation_and_nan, setup_mxcsr),
      cmocka_unit_test_setup(every_nan_payload_follows_the_rule, setup_mxcsr),
      cmocka_unit_test_setup(denormal_inputs_round_exactly, setup_mxcsr),
      cmocka_unit_test_setup(bulk_encoders_match_scalar, setup_mxcsr),
      cmocka_unit_test_setup(bulk_decoders_match_scalar, setup_mxcsr),
      cmocka_unit_test_setup(results_ignore_ftz_and_daz, setup_mxcsr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
