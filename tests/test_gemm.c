/* sparq_sgemm against its double-precision reference on every transpose
 * combination, awkward sizes, padded leading dimensions and adversarial values. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sparq/base.h"
#include "sparq/kernels.h"

static float *random_matrix(sparq_rng *rng, int64_t rows, int64_t ld) {
  size_t n = (size_t)(rows * ld > 0 ? rows * ld : 1);
  float *p = sparq_alloc(n * sizeof(float), "matrix");
  sparq_rng_fill_uniform(rng, p, n, -1, 1);
  return p;
}

/* Runs both implementations on copies of the same C and compares with a
 * tolerance scaled by k (FP32 accumulation error grows with the sum length). */
static void compare_case(sparq_rng *rng, sparq_transpose ta, sparq_transpose tb, int64_t m, int64_t n, int64_t k,
                         int64_t pad, float alpha, float beta) {
  int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  float *a = random_matrix(rng, ta ? k : m, lda), *b = random_matrix(rng, tb ? n : k, ldb);
  float *c1 = random_matrix(rng, m, ldc), *c2 = random_matrix(rng, m, ldc);
  memcpy(c2, c1, (size_t)(m * ldc > 0 ? m * ldc : 1) * sizeof(float));
  assert_int_equal(sparq_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc), SPARQ_OK);
  assert_int_equal(sparq_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc), SPARQ_OK);
  double tol = 1e-5 * (double)(k + 1) * (fabs(alpha) + 1) + 1e-6;
  for (int64_t i = 0; i < m; i++) {
    for (int64_t j = 0; j < n; j++) {
      double d = fabs((double)c1[i * ldc + j] - (double)c2[i * ldc + j]);
      if (d > tol) fail_msg("ta=%d tb=%d m=%lld n=%lld k=%lld at (%lld,%lld): %g vs %g", ta, tb, (long long)m,
                            (long long)n, (long long)k, (long long)i, (long long)j, c1[i * ldc + j], c2[i * ldc + j]);
    }
    /* the padding columns of C are never touched */
    for (int64_t j = n; j < ldc; j++) assert_true(c1[i * ldc + j] == c2[i * ldc + j]);
  }
  sparq_free(a);
  sparq_free(b);
  sparq_free(c1);
  sparq_free(c2);
}

static void matches_reference_on_awkward_shapes(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(7, 0);
  const int64_t sizes[][3] = {{1, 1, 1}, {1, 17, 3}, {17, 1, 33}, {7, 13, 1}, {33, 65, 129}, {64, 64, 64},
                              {100, 3, 257}, {255, 129, 31}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int pad = 0; pad <= 3; pad += 3) {
          compare_case(&rng, (sparq_transpose)ta, (sparq_transpose)tb, sizes[s][0], sizes[s][1], sizes[s][2], pad,
                       1.0f, 0.0f);
          compare_case(&rng, (sparq_transpose)ta, (sparq_transpose)tb, sizes[s][0], sizes[s][1], sizes[s][2], pad,
                       -0.5f, 1.25f);
        }
}

static void beta_zero_ignores_nan_in_c_and_k_zero_scales(void **state) {
  (void)state;
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1};
  float c[4] = {NAN, INFINITY, NAN, -INFINITY};
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2), SPARQ_OK);
  const float want[4] = {4, 5, 10, 11};
  for (int i = 0; i < 4; i++) assert_true(c[i] == want[i]);
  float d[4] = {1, 2, NAN, 4};
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 0, 1, a, 1, b, 2, 2, d, 2), SPARQ_OK);
  assert_true(d[0] == 2 && d[1] == 4 && isnan(d[2]) && d[3] == 8);
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 0, 1, a, 1, b, 2, 0, d, 2), SPARQ_OK);
  for (int i = 0; i < 4; i++) assert_true(d[i] == 0);
  /* empty outputs are fine, even with NULL pointers */
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 0, 5, 5, 1, NULL, 5, NULL, 5, 0, NULL, 5), SPARQ_OK);
}

static void nan_and_inf_in_inputs_propagate(void **state) {
  (void)state;
  float a[4] = {1, NAN, 1, 1}, b[4] = {1, 1, 1, 1}, c[4];
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), SPARQ_OK);
  assert_true(isnan(c[0]) && isnan(c[1]) && c[2] == 2 && c[3] == 2);
  float big[4] = {INFINITY, 0, 1, 1};
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 2, 1, big, 2, b, 2, 0, c, 2), SPARQ_OK);
  assert_true(isinf(c[0]) && c[2] == 2);
}

static void bad_arguments_are_errors_not_crashes(void **state) {
  (void)state;
  float x[16] = {0};
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 4, 1, x, 3, x, 2, 0, x, 2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "lda 3"));
  assert_int_equal(sparq_sgemm(SPARQ_TRANS, SPARQ_NO_TRANS, 4, 2, 2, 1, x, 3, x, 2, 0, x, 2), SPARQ_ERR_ARG);
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, 2, 2, 4, 1, x, 4, x, 3, 0, x, 2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "ldb"));
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 3, 1, 1, x, 1, x, 3, 0, x, 2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "ldc"));
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, -1, 2, 2, 1, x, 2, x, 2, 0, x, 2), SPARQ_ERR_ARG);
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 2, 1, NULL, 2, x, 2, 0, x, 2), SPARQ_ERR_ARG);
  assert_int_equal(sparq_sgemm((sparq_transpose)5, SPARQ_NO_TRANS, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2), SPARQ_ERR_ARG);
  assert_int_equal(sparq_sgemm_ref(SPARQ_NO_TRANS, SPARQ_NO_TRANS, 2, 2, 4, 1, x, 3, x, 2, 0, x, 2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_sgemm_ref"));
}

static void peak_probe_reports_positive_rates(void **state) {
  (void)state;
  sparq_peak p;
  assert_int_equal(sparq_peak_measure(&p, 0.1), SPARQ_OK);
  assert_true(p.fp32_fma_1 > 0 && p.fp32_fma_n > 0);
  if (sparq_has_vnni()) assert_true(p.int8_vnni_1 > 0);
  else assert_true(p.int8_vnni_1 == 0);
  assert_true(sparq_peak_fp32(1) > 0);
  assert_int_equal(sparq_peak_measure(NULL, 0.1), SPARQ_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(matches_reference_on_awkward_shapes),
      cmocka_unit_test(beta_zero_ignores_nan_in_c_and_k_zero_scales),
      cmocka_unit_test(nan_and_inf_in_inputs_propagate),
      cmocka_unit_test(bad_arguments_are_errors_not_crashes),
      cmocka_unit_test(peak_probe_reports_positive_rates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
