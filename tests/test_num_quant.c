/* num/: symmetric INT8/INT4 quantizers (per tensor, per group, per token),
 * dequantizers and INT4 nibble packing.
 *
 * The contract under test: scale = max|x| / qmax (1 for an all-zero group,
 * at least FLT_MIN), q = clamp(round_half_even(x / scale)), |x - q*scale|
 * <= scale/2, NaN/inf rejected with a message naming the function and the
 * index, and the AVX-512 kernels bit-identical to the scalar twins. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "sparq/base.h"
#include "sparq/num.h"
#include "num_test_util.h"

static const int QMAXES[] = {SPARQ_QMAX_INT8, SPARQ_QMAX_INT4};


static int setup(void **state) {
  (void)state;
  _mm_setcsr(_mm_getcsr() & ~0x8040u);
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  sparq_clear_error();
  return 0;
}

/* Normal data with occasional large outliers and exact zeros. */
static float *random_matrix(size_t n, uint64_t seed) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  assert_non_null(x);
  sparq_rng rng = sparq_rng_make(seed, 3);
  for (size_t i = 0; i < n; i++) {
    uint32_t r = sparq_rng_u32(&rng);
    float v = sparq_rng_normal(&rng);
    if (r % 97 == 0) v *= 1000.0f;
    if (r % 89 == 0) v = 0.0f;
    x[i] = v;
  }
  return x;
}

/* Checks one run that shares `scale`: the scale formula, the range of q,
 * the error bound, and that the largest element reaches ±qmax. */
static void check_run(const float *x, const int8_t *q, size_t n, float scale, int qmax) {
  float amax = 0;
  for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
  float want = amax == 0 ? 1.0f : fmaxf(amax / (float)qmax, FLT_MIN);
  if (scale != want) fail_msg("scale %a, want %a (max|x| %a, qmax %d)", (double)scale, (double)want, (double)amax, qmax);
  /* A floored scale (tiny groups) need not reach ±qmax. */
  bool hit = amax == 0 || want == FLT_MIN;
  for (size_t i = 0; i < n; i++) {
    if (q[i] < -qmax || q[i] > qmax) fail_msg("q[%zu] = %d outside ±%d", i, q[i], qmax);
    double err = fabs((double)x[i] - (double)q[i] * scale);
    /* scale/2 from rounding, plus the FP32 rounding of x/scale and q*scale. */
    if (err > scale * 0.5 * (1 + 1e-6) + fabs((double)x[i]) * 1e-7)
      fail_msg("x = %a, q = %d, scale = %a: error %g > scale/2", (double)x[i], q[i], (double)scale, err);
    if (fabsf(x[i]) == amax && abs(q[i]) == qmax) hit = true;
  }
  assert_true(hit);
}

static void round_trip_within_half_a_step(void **state) {
  (void)state;
  const size_t rows = 13, cols = 300, n = rows * cols;
  float *x = random_matrix(n, 1), *deq = malloc(n * sizeof *deq);
  int8_t *q = malloc(n);
  float scales[13 * 300];
  assert_non_null(deq);
  assert_non_null(q);
  for (size_t qi = 0; qi < 2; qi++) {
    int qmax = QMAXES[qi];
    float s;
    assert_int_equal(sparq_quantize_per_tensor(x, n, qmax, q, &s), SPARQ_OK);
    check_run(x, q, n, s, qmax);
    assert_int_equal(sparq_dequantize_per_tensor(q, n, s, deq), SPARQ_OK);
    for (size_t i = 0; i < n; i++) assert_true(deq[i] == (float)q[i] * s);

    assert_int_equal(sparq_quantize_per_token(x, rows, cols, qmax, q, scales), SPARQ_OK);
    for (size_t r = 0; r < rows; r++) check_run(x + r * cols, q + r * cols, cols, scales[r], qmax);
    assert_int_equal(sparq_dequantize_per_token(q, rows, cols, scales, deq), SPARQ_OK);
    for (size_t i = 0; i < n; i++) assert_true(deq[i] == (float)q[i] * scales[i / cols]);

    const size_t groups[] = {1, 3, 16, 32, 128, 299, 300, 301};
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
      size_t g = groups[gi], ng = (cols + g - 1) / g;
      assert_int_equal(sparq_quant_group_count(rows, cols, g), rows * ng);
      assert_int_equal(sparq_quantize_per_group(x, rows, cols, g, qmax, q, scales), SPARQ_OK);
      for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < ng; j++) {
          size_t c0 = j * g, len = cols - c0 < g ? cols - c0 : g;
          check_run(x + r * cols + c0, q + r * cols + c0, len, scales[r * ng + j], qmax);
        }
      assert_int_equal(sparq_dequantize_per_group(q, rows, cols, g, scales, deq), SPARQ_OK);
      for (size_t i = 0; i < n; i++) assert_true(deq[i] == (float)q[i] * scales[(i / cols) * ng + (i % cols) / g]);
    }
  }
  free(x);
  free(deq);
  free(q);
}

/* Groups never straddle rows, the short last group gets its own scale, and
 * changing one element moves only its group's scale. */
static void group_edges_and_short_last_group(void **state) {
  (void)state;
  enum { R = 3, C = 37, G = 16, NG = 3 };
  float x[R * C], scales[R * NG], scales2[R * NG];
  int8_t q[R * C];
  for (int i = 0; i < R * C; i++) x[i] = (float)(i % C + 1) * (i / C + 1); /* row r: (c+1)*(r+1) */
  assert_int_equal(sparq_quantize_per_group(x, R, C, G, 127, q, scales), SPARQ_OK);
  for (int r = 0; r < R; r++) {
    assert_true(scales[r * NG + 0] == 16.0f * (r + 1) / 127);
    assert_true(scales[r * NG + 1] == 32.0f * (r + 1) / 127);
    assert_true(scales[r * NG + 2] == 37.0f * (r + 1) / 127); /* the short group: cols 32..36 */
    assert_int_equal(q[r * C + 15], 127);
    assert_int_equal(q[r * C + 31], 127);
    assert_int_equal(q[r * C + 36], 127);
  }
  x[1 * C + 33] = -1000.0f;
  assert_int_equal(sparq_quantize_per_group(x, R, C, G, 127, q, scales2), SPARQ_OK);
  for (int k = 0; k < R * NG; k++) {
    if (k == 1 * NG + 2) assert_true(scales2[k] == 1000.0f / 127);
    else assert_true(scales2[k] == scales[k]);
  }
  assert_int_equal(q[1 * C + 33], -127);
}

static void zero_constant_and_outlier_groups(void **state) {
  (void)state;
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  for (int l = 0; l < nisa; l++) {
    sparq_set_isa_cap(isas[l]);
    for (size_t qi = 0; qi < 2; qi++) {
      int qmax = QMAXES[qi];
      float x[40], s[2], deq[40];
      int8_t q[40];
      /* Row 0 all zero (with -0.0), row 1 constant -2.5. */
      for (int i = 0; i < 20; i++) x[i] = (i & 1) ? -0.0f : 0.0f;
      for (int i = 20; i < 40; i++) x[i] = -2.5f;
      assert_int_equal(sparq_quantize_per_token(x, 2, 20, qmax, q, s), SPARQ_OK);
      assert_true(s[0] == 1.0f);
      assert_true(s[1] == 2.5f / (float)qmax);
      for (int i = 0; i < 20; i++) assert_int_equal(q[i], 0);
      for (int i = 20; i < 40; i++) assert_int_equal(q[i], -qmax);
      assert_int_equal(sparq_dequantize_per_token(q, 2, 20, s, deq), SPARQ_OK);
      for (int i = 0; i < 20; i++) assert_true(deq[i] == 0.0f);
      for (int i = 20; i < 40; i++) assert_true(fabsf(deq[i] + 2.5f) <= 2.5f * 1e-6f);

      /* One outlier: the small values collapse to 0 but stay within scale/2. */
      for (int i = 0; i < 40; i++) x[i] = 0.001f * (float)(i - 20);
      x[17] = 1e4f;
      float st;
      assert_int_equal(sparq_quantize_per_tensor(x, 40, qmax, q, &st), SPARQ_OK);
      check_run(x, q, 40, st, qmax);
      assert_int_equal(q[17], qmax);
      assert_int_equal(q[3], 0);
    }
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
}

/* With scale 1 (max|x| = qmax) x/scale is x itself, so exact halves test
 * the rounding: ties go to even, in both directions, at every ISA. */
static void ties_round_half_to_even(void **state) {
  (void)state;
  const float x[] = {127, 0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, 126.5f, -126.5f, 0.49999997f, 2.5000002f};
  const int8_t want[] = {127, 0, 2, 2, 4, 0, -2, -2, 126, -126, 0, 3};
  enum { N = sizeof x / sizeof x[0] };
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  for (int l = 0; l < nisa; l++) {
    sparq_set_isa_cap(isas[l]);
    int8_t q[N];
    float s;
    assert_int_equal(sparq_quantize_per_tensor(x, N, 127, q, &s), SPARQ_OK);
    assert_true(s == 1.0f);
    assert_memory_equal(q, want, N);
    assert_int_equal(sparq_quantize_per_tensor_ref(x, N, 127, q, &s), SPARQ_OK);
    assert_memory_equal(q, want, N);
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
}

/* A group too small for a normal scale: the scale floors at FLT_MIN, and
 * the error bound still holds (IEEE mode). */
static void tiny_groups_floor_the_scale(void **state) {
  (void)state;
  float x[20];
  int8_t q[20];
  for (int i = 0; i < 20; i++) x[i] = (float)(i - 10) * 1e-39f; /* denormal FP32 */
  x[3] = 2e-38f;
  float s;
  assert_int_equal(sparq_quantize_per_tensor(x, 20, 127, q, &s), SPARQ_OK);
  assert_true(s == FLT_MIN);
  check_run(x, q, 20, s, 127);
  int8_t qr[20];
  float sr;
  assert_int_equal(sparq_quantize_per_tensor_ref(x, 20, 127, qr, &sr), SPARQ_OK);
  assert_memory_equal(q, qr, 20);
}

static void expect_rejected(sparq_status st, const char *fn, const char *what) {
  assert_int_equal(st, SPARQ_ERR_ARG);
  const char *msg = sparq_last_error();
  if (!strstr(msg, fn) || !strstr(msg, what)) fail_msg("message \"%s\" should name %s and %s", msg, fn, what);
}

static void nan_and_inf_are_rejected_with_the_index(void **state) {
  (void)state;
  enum { R = 4, C = 37 };
  float x[R * C], s[R * 3];
  int8_t q[R * C];
  const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
  const char *names[] = {"NaN", "NaN", "+inf", "-inf"};
  const size_t where[] = {0, 5, 16, 36, 37, 75, R * C - 1};
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  for (int l = 0; l < nisa; l++) {
    sparq_set_isa_cap(isas[l]);
    for (size_t b = 0; b < 4; b++)
      for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
        for (int i = 0; i < R * C; i++) x[i] = (float)i;
        size_t i = where[w];
        x[i] = bad[b];
        char idx[64], rc[64];
        snprintf(idx, sizeof idx, "x[%zu] is %s", i, names[b]);
        snprintf(rc, sizeof rc, "x[%zu] (row %zu, col %zu) is %s", i, i / C, i % C, names[b]);
        float st;
        expect_rejected(sparq_quantize_per_tensor(x, R * C, 127, q, &st), "sparq_quantize_per_tensor:", idx);
        expect_rejected(sparq_quantize_per_tensor_ref(x, R * C, 7, q, &st), "sparq_quantize_per_tensor_ref:", idx);
        expect_rejected(sparq_quantize_per_token(x, R, C, 127, q, s), "sparq_quantize_per_token:", rc);
        expect_rejected(sparq_quantize_per_token_ref(x, R, C, 127, q, s), "sparq_quantize_per_token_ref:", rc);
        expect_rejected(sparq_quantize_per_group(x, R, C, 16, 7, q, s), "sparq_quantize_per_group:", rc);
        expect_rejected(sparq_quantize_per_group_ref(x, R, C, 16, 7, q, s), "sparq_quantize_per_group_ref:", rc);
      }
  }
  /* The first bad element is the one named. */
  for (int i = 0; i < R * C; i++) x[i] = 1.0f;
  x[50] = INFINITY;
  x[40] = NAN;
  float st;
  expect_rejected(sparq_quantize_per_tensor(x, R * C, 127, q, &st), "sparq_quantize_per_tensor", "x[40] is NaN");
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
}

static void bad_arguments_are_rejected(void **state) {
  (void)state;
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, s[8], y[8];
  int8_t q[8];
  expect_rejected(sparq_quantize_per_tensor(x, 8, 0, q, s), "sparq_quantize_per_tensor", "qmax 0");
  expect_rejected(sparq_quantize_per_tensor(x, 8, 128, q, s), "sparq_quantize_per_tensor", "qmax 128");
  expect_rejected(sparq_quantize_per_tensor(x, 8, 127, q, NULL), "sparq_quantize_per_tensor", "scale is NULL");
  expect_rejected(sparq_quantize_per_tensor(NULL, 8, 127, q, s), "sparq_quantize_per_tensor", "NULL");
  expect_rejected(sparq_quantize_per_group(x, 2, 4, 0, 127, q, s), "sparq_quantize_per_group", "group size 0");
  expect_rejected(sparq_quantize_per_group(x, 2, 4, 2, 127, q, NULL), "sparq_quantize_per_group", "scales is NULL");
  expect_rejected(sparq_quantize_per_group(x, SIZE_MAX, 4, 2, 127, q, s), "sparq_quantize_per_group", "overflows");
  expect_rejected(sparq_quantize_per_token(x, 2, 4, -7, q, s), "sparq_quantize_per_token", "qmax -7");
  expect_rejected(sparq_quantize_per_token(x, 2, 4, 7, NULL, s), "sparq_quantize_per_token", "NULL");
  expect_rejected(sparq_dequantize_per_tensor(q, 8, NAN, y), "sparq_dequantize_per_tensor", "not finite");
  expect_rejected(sparq_dequantize_per_group(q, 2, 4, 0, s, y), "sparq_dequantize_per_group", "group size 0");
  s[1] = INFINITY;
  s[0] = 1;
  expect_rejected(sparq_dequantize_per_token(q, 2, 4, s, y), "sparq_dequantize_per_token", "scale[1]");
  assert_int_equal(sparq_quant_group_count(2, 4, 0), 0);
  assert_int_equal(sparq_quant_group_count(SIZE_MAX, 4, 1), 0);
  assert_int_equal(sparq_quant_group_count(3, 10, 4), 9);
  /* Empty inputs are fine: an empty group is an all-zero group. */
  float one = 0;
  assert_int_equal(sparq_quantize_per_tensor(NULL, 0, 127, NULL, &one), SPARQ_OK);
  assert_true(one == 1.0f);
  assert_int_equal(sparq_quantize_per_group(NULL, 0, 5, 2, 127, NULL, NULL), SPARQ_OK);
  s[0] = s[1] = 0;
  assert_int_equal(sparq_quantize_per_token(NULL, 2, 0, 127, NULL, s), SPARQ_OK);
  assert_true(s[0] == 1.0f && s[1] == 1.0f);
}

/* The AVX-512 kernels against the scalar twins: q and scales bit for bit,
 * on many shapes (tails of every length), both qmax, with FTZ/DAZ off and
 * on (denormal inputs included). */
static void simd_matches_scalar(void **state) {
  (void)state;
  const size_t shapes[][2] = {{1, 1}, {1, 7}, {3, 15}, {2, 16}, {5, 17}, {4, 33}, {7, 100}, {3, 257}, {64, 128}, {1, 1000003}};
  const size_t groups[] = {1, 3, 16, 32, 128, 1000};
  sparq_isa isas[3];
  int nisa = isa_levels(isas);
  unsigned csr = _mm_getcsr();
  for (int ftz = 0; ftz < 2; ftz++) {
    _mm_setcsr(ftz ? (csr | 0x8040u) : (csr & ~0x8040u));
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
      size_t rows = shapes[si][0], cols = shapes[si][1], n = rows * cols;
      float *x = random_matrix(n, 100 + si);
      /* Some rows of denormals and of tiny normals (scale floor). */
      if (rows > 2) {
        for (size_t c = 0; c < cols; c++) x[cols + c] *= 1e-40f;
        for (size_t c = 0; c < cols; c++) x[2 * cols + c] *= 1e-37f;
      }
      int8_t *q = malloc(n), *qr = malloc(n);
      size_t maxs = n + rows;
      float *s = malloc(maxs * sizeof *s), *sr = malloc(maxs * sizeof *sr);
      assert_true(q && qr && s && sr);
      for (size_t qi = 0; qi < 2; qi++) {
        int qmax = QMAXES[qi];
        for (int l = 0; l < nisa; l++) {
          sparq_set_isa_cap(isas[l]);
          assert_int_equal(sparq_quantize_per_token(x, rows, cols, qmax, q, s), SPARQ_OK);
          assert_int_equal(sparq_quantize_per_token_ref(x, rows, cols, qmax, qr, sr), SPARQ_OK);
          assert_memory_equal(q, qr, n);
          assert_memory_equal(s, sr, rows * sizeof *s);
          assert_int_equal(sparq_quantize_per_tensor(x, n, qmax, q, s), SPARQ_OK);
          assert_int_equal(sparq_quantize_per_tensor_ref(x, n, qmax, qr, sr), SPARQ_OK);
          assert_memory_equal(q, qr, n);
          assert_true(s[0] == sr[0]);
          for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
            if (groups[gi] > 2 * cols) continue;
            size_t ns = sparq_quant_group_count(rows, cols, groups[gi]);
            assert_int_equal(sparq_quantize_per_group(x, rows, cols, groups[gi], qmax, q, s), SPARQ_OK);
            assert_int_equal(sparq_quantize_per_group_ref(x, rows, cols, groups[gi], qmax, qr, sr), SPARQ_OK);
            assert_memory_equal(q, qr, n);
            assert_memory_equal(s, sr, ns * sizeof *s);
          }
        }
      }
      free(x);
      free(q);
      free(qr);
      free(s);
      free(sr);
    }
  }
  _mm_setcsr(csr);
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
}

static void int4_pack_layout_and_round_trip(void **state) {
  (void)state;
  /* Low nibble first, two's complement. */
  const int8_t q[] = {1, -1, -8, 7, 0, -3, 5};
  uint8_t p[4];
  memset(p, 0xEE, sizeof p);
  assert_int_equal(sparq_int4_pack(q, 7, p), SPARQ_OK);
  assert_int_equal(p[0], 0xF1);
  assert_int_equal(p[1], 0x78);
  assert_int_equal(p[2], 0xD0);
  assert_int_equal(p[3], 0x05); /* odd n: the last high nibble is 0 */
  int8_t back[8];
  memset(back, 0x55, sizeof back);
  sparq_int4_unpack(p, 7, back);
  assert_memory_equal(back, q, 7);
  assert_int_equal(back[7], 0x55); /* nothing written past n */

  /* Every pair of INT4 values. */
  int8_t all[512], out[512];
  uint8_t packed[256];
  for (int i = 0; i < 256; i++) {
    all[2 * i] = (int8_t)(i % 16 - 8);
    all[2 * i + 1] = (int8_t)(i / 16 - 8);
  }
  assert_int_equal(sparq_int4_pack(all, 512, packed), SPARQ_OK);
  sparq_int4_unpack(packed, 512, out);
  assert_memory_equal(all, out, 512);

  /* Quantized INT4 tensors survive the packing. */
  float x[33];
  for (int i = 0; i < 33; i++) x[i] = sinf((float)i);
  int8_t qi[33], qo[33];
  float s;
  assert_int_equal(sparq_quantize_per_tensor(x, 33, SPARQ_QMAX_INT4, qi, &s), SPARQ_OK);
  assert_int_equal(sparq_int4_pack(qi, 33, packed), SPARQ_OK);
  sparq_int4_unpack(packed, 33, qo);
  assert_memory_equal(qi, qo, 33);

  const int8_t bad[] = {0, 1, 2, 8};
  expect_rejected(sparq_int4_pack(bad, 4, packed), "sparq_int4_pack", "q[3] = 8");
  const int8_t bad2[] = {-9};
  expect_rejected(sparq_int4_pack(bad2, 1, packed), "sparq_int4_pack", "q[0] = -9");
  assert_int_equal(sparq_int4_pack(NULL, 0, NULL), SPARQ_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(round_trip_within_half_a_step, setup),
      cmocka_unit_test_setup(group_edges_and_short_last_group, setup),
      cmocka_unit_test_setup(zero_constant_and_outlier_groups, setup),
      cmocka_unit_test_setup(ties_round_half_to_even, setup),
      cmocka_unit_test_setup(tiny_groups_floor_the_scale, setup),
      cmocka_unit_test_setup(nan_and_inf_are_rejected_with_the_index, setup),
      cmocka_unit_test_setup(bad_arguments_are_rejected, setup),
      cmocka_unit_test_setup(simd_matches_scalar, setup),
      cmocka_unit_test_setup(int4_pack_layout_and_round_trip, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
