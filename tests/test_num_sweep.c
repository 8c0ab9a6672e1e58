/* num/: every one of the 2^32 FP32 bit patterns through the BF16, FP16,
 * E4M3 and E5M2 encoders (the scalar codec loop and the bulk converter at
 * the best ISA), against a reference built independently of the codecs.
 *
 * The reference is nearest-even over the sorted table of representable
 * values, computed in double from the format definition. Since FP32 bit
 * patterns of one sign are ordered like their values, the answer is a step
 * function of the bits: constant between consecutive midpoints, the even
 * code exactly at a midpoint (every midpoint is an FP32). The sweep walks
 * the patterns in order alongside the table of midpoints, which keeps the
 * reference O(1) per input (a binary search per input costs ~10x more).
 *
 * It runs only in optimized builds without sanitizers: about 28 CPU
 * seconds, 14 s on an idle 2-core machine. Other builds skip it, and so does
 * SPARQ_NUM_SWEEP=0; test_num_formats covers the same rules on every code,
 * midpoint and boundary in about a second. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num_test_util.h"

#if defined(NDEBUG) && defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#define SWEEP_ENABLED 1
#else
#define SWEEP_ENABLED 0
#endif

typedef struct fmt {
  const char *name;
  int bits, ebits, mbits, bias;
  bool ieee;      /* all-ones exponent = inf/NaN; else E4M3 "fn" */
  bool saturates; /* finite overflow gives ±max */
  unsigned inf_code;
  void (*enc_n)(const float *, void *, size_t);
  void (*enc_n_ref)(const float *, void *, size_t);
  unsigned (*nan_code)(uint32_t u);
} fmt;

#define WRAP(f, T)                                                                                       \
  static void f##_enc_n(const float *s, void *d, size_t n) { sparq_f32_to_##f##_n(s, (T *)d, n); }       \
  static void f##_enc_n_ref(const float *s, void *d, size_t n) { sparq_f32_to_##f##_n_ref(s, (T *)d, n); }
WRAP(bf16, uint16_t)
WRAP(f16, uint16_t)
WRAP(e4m3, uint8_t)
WRAP(e5m2, uint8_t)


static const fmt FMTS[] = {
    {"bf16", 16, 8, 7, 127, true, false, 0x7F80, bf16_enc_n, bf16_enc_n_ref, bf16_nan},
    {"f16", 16, 5, 10, 15, true, false, 0x7C00, f16_enc_n, f16_enc_n_ref, f16_nan},
    {"e4m3", 8, 4, 3, 7, false, true, 0x7E, e4m3_enc_n, e4m3_enc_n_ref, e4m3_nan},
    {"e5m2", 8, 5, 2, 15, true, true, 0x7C, e5m2_enc_n, e5m2_enc_n_ref, e5m2_nan},
};

/* Value of positive code k, from the format definition. */
static double value_of(const fmt *f, unsigned k) {
  unsigned e = k >> f->mbits, m = k & ((1u << f->mbits) - 1u);
  if (e == 0) return ldexp((double)m, 1 - f->bias - f->mbits);
  return ldexp((double)((1u << f->mbits) + m), (int)e - f->bias - f->mbits);
}

/* The step function: nb midpoints (FP32 bits, ascending); below mid[0] the
 * code is code[0], between mid[j-1] and mid[j] it is code[j], above the
 * last it is code[nb]; exactly at mid[j] it is tie[j]. */
typedef struct steps {
  uint32_t *mid;
  unsigned *code, *tie;
  size_t nb;
} steps;

static steps build_steps(const fmt *f) {
  unsigned top = f->ieee ? ((((1u << f->ebits) - 1u) << f->mbits) - 1u) : (1u << (f->bits - 1)) - 2u;
  size_t k = top + 2; /* codes 0..top, plus the value one step past max */
  double *v = malloc(k * sizeof *v);
  steps s = {malloc(k * sizeof(uint32_t)), malloc(k * sizeof(unsigned)), malloc(k * sizeof(unsigned)), k - 1};
  assert_true(v && s.mid && s.code && s.tie);
  for (unsigned i = 0; i <= top; i++) {
    v[i] = value_of(f, i);
    s.code[i] = i;
  }
  /* One step past max rounds to inf (code top + 1) or saturates to max. */
  v[top + 1] = 2 * v[top] - v[top - 1];
  s.code[top + 1] = f->saturates ? top : top + 1;
  for (size_t j = 0; j + 1 < k; j++) {
    double mid = (v[j] + v[j + 1]) / 2;
    float fm = (float)mid;
    assert_true((double)fm == mid);
    memcpy(&s.mid[j], &fm, sizeof fm);
    s.tie[j] = (s.code[j] & 1) ? s.code[j + 1] : s.code[j];
  }
  free(v);
  return s;
}

static void free_steps(steps *s) {
  free(s->mid);
  free(s->code);
  free(s->tie);
}

/* First j with mid[j] >= u. */
static size_t lower_bound(const steps *s, uint32_t u) {
  size_t lo = 0, hi = s->nb;
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (s->mid[m] < u) lo = m + 1;
    else hi = m;
  }
  return lo;
}

typedef struct failure {
  bool failed;
  uint32_t u;
  unsigned got, want;
  const char *path;
} failure;

#define CHUNK ((size_t)1 << 16)

static void fill_codes(void *dst, size_t w, size_t from, size_t to, unsigned code) {
  if (w == 1) memset((uint8_t *)dst + from, (int)code, to - from);
  else
    for (size_t i = from; i < to; i++) ((uint16_t *)dst)[i] = (uint16_t)code;
}

/* Expected codes for the positive patterns u0..u0+CHUNK-1 and their
 * negatives, written at the output width, one constant run at a time. */
static void expected_chunk(const fmt *f, const steps *s, uint32_t u0, void *pos, void *neg) {
  size_t w = (size_t)f->bits / 8, i = 0;
  unsigned sign = 1u << (f->bits - 1);
  size_t j = lower_bound(s, u0);
  while (i < CHUNK) {
    uint32_t u = u0 + (uint32_t)i;
    size_t end;
    unsigned p, n;
    if (u >= 0x7F800000u) { /* inf, then NaNs: one at a time */
      p = u == 0x7F800000u ? f->inf_code : f->nan_code(u);
      n = u == 0x7F800000u ? f->inf_code | sign : f->nan_code(u | 0x80000000u);
      end = i + 1;
    } else if (j < s->nb && s->mid[j] == u) {
      p = s->tie[j];
      n = p | sign;
      end = i + 1;
      j++;
    } else {
      /* code[j] holds up to the next midpoint (or to inf). */
      uint32_t stop = j < s->nb ? s->mid[j] : 0x7F800000u;
      p = s->code[j];
      n = p | sign;
      end = stop - u0 < CHUNK ? stop - u0 : CHUNK;
    }
    fill_codes(pos, w, i, end, p);
    fill_codes(neg, w, i, end, n);
    i = end;
  }
}

static void note_mismatch(const fmt *f, const float *in, const void *got, const void *want, const char *path,
                          failure *fl) {
  size_t w = (size_t)f->bits / 8;
  for (size_t i = 0; i < CHUNK; i++) {
    unsigned g = w == 1 ? ((const uint8_t *)got)[i] : ((const uint16_t *)got)[i];
    unsigned e = w == 1 ? ((const uint8_t *)want)[i] : ((const uint16_t *)want)[i];
    if (g == e) continue;
#pragma omp critical(sweep_failure)
    if (!fl->failed) {
      uint32_t u;
      memcpy(&u, &in[i], sizeof u);
      *fl = (failure){true, u, g, e, path};
    }
    return;
  }
}

static double sweep_format(const fmt *f) {
  steps s = build_steps(f);
  /* At the scalar level the bulk converter is the scalar loop itself. */
  bool bulk = sparq_isa_active() != SPARQ_ISA_SCALAR;
  failure fl = {false, 0, 0, 0, NULL};
  double t0 = sparq_now();
  size_t nchunks = ((size_t)1 << 31) / CHUNK;
#pragma omp parallel
  {
    size_t w = (size_t)f->bits / 8;
    float *pos = malloc(CHUNK * sizeof *pos), *neg = malloc(CHUNK * sizeof *neg);
    unsigned char *ep = malloc(CHUNK * w), *en = malloc(CHUNK * w), *out = malloc(CHUNK * w);
#pragma omp for schedule(dynamic, 16)
    for (size_t c = 0; c < nchunks; c++) {
      if (!pos || !neg || !ep || !en || !out || fl.failed) continue;
      uint32_t u0 = (uint32_t)(c * CHUNK);
      for (size_t i = 0; i < CHUNK; i++) {
        uint32_t u = u0 + (uint32_t)i, un = u | 0x80000000u;
        memcpy(&pos[i], &u, sizeof u);
        memcpy(&neg[i], &un, sizeof un);
      }
      expected_chunk(f, &s, u0, ep, en);
      if (bulk) {
        f->enc_n(pos, out, CHUNK);
        if (memcmp(out, ep, CHUNK * w)) note_mismatch(f, pos, out, ep, "bulk", &fl);
        f->enc_n(neg, out, CHUNK);
        if (memcmp(out, en, CHUNK * w)) note_mismatch(f, neg, out, en, "bulk", &fl);
      }
      f->enc_n_ref(pos, out, CHUNK);
      if (memcmp(out, ep, CHUNK * w)) note_mismatch(f, pos, out, ep, "scalar", &fl);
      f->enc_n_ref(neg, out, CHUNK);
      if (memcmp(out, en, CHUNK * w)) note_mismatch(f, neg, out, en, "scalar", &fl);
    }
    bool ok = pos && neg && ep && en && out;
    free(pos);
    free(neg);
    free(ep);
    free(en);
    free(out);
    if (!ok) {
#pragma omp critical(sweep_failure)
      fl = (failure){true, 0, 0, 0, "allocation"};
    }
  }
  free_steps(&s);
  double dt = sparq_now() - t0;
  if (fl.failed)
    fail_msg("%s (%s at %s): 0x%08x encodes to 0x%x, want 0x%x", f->name, fl.path, sparq_isa_name(sparq_isa_active()),
             fl.u, fl.got, fl.want);
  return dt;
}

static void all_2_32_inputs_match_reference(void **state) {
  (void)state;
  if (!SWEEP_ENABLED) {
    print_message("skipped: the 2^32 sweep runs only in optimized builds without sanitizers\n");
    skip();
  }
  const char *env = getenv("SPARQ_NUM_SWEEP");
  if (env && !strcmp(env, "0")) {
    print_message("skipped: SPARQ_NUM_SWEEP=0\n");
    skip();
  }
  _mm_setcsr(_mm_getcsr() & ~0x8040u);
  for (size_t i = 0; i < sizeof FMTS / sizeof FMTS[0]; i++) {
    double dt = sweep_format(&FMTS[i]);
    print_message("%s: 2^32 inputs in %.2f s (%d threads, bulk at %s)\n", FMTS[i].name, dt, omp_get_max_threads(),
                  sparq_isa_name(sparq_isa_active()));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(all_2_32_inputs_match_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
