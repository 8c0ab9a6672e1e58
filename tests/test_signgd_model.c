/* SignGD study, spec section 8 invariants 1 and 2: the hand-written
 * gradients against central finite differences in FP64, and the model's
 * identities (softmax rows, the W_V swap, dependence on v only). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sparq/signgd.h"

/* A small problem where every parameter matters: d 12 leaves few untouched
 * coordinates, sigma0 0.5 makes the attention far from uniform. */
static void make_problem(uint64_t seed, bool random_position, double sigma0, sparq_signgd_data *data,
                         sparq_signgd_model *m) {
  sparq_rng rng = sparq_rng_make(seed, 0);
  assert_int_equal(sparq_signgd_data_sample(data, 5, 12, 3, 1.5, 1.0, random_position, &rng), SPARQ_OK);
  assert_int_equal(sparq_signgd_model_init(m, 12, 3, 2, sigma0, &rng), SPARQ_OK);
}

static double loss_of(const sparq_signgd_model *m, const sparq_signgd_data *data) {
  double loss;
  assert_int_equal(sparq_signgd_loss(m, data, &loss, NULL, NULL), SPARQ_OK);
  return loss;
}

static void check_gradient(uint64_t seed, bool random_position, double sigma0) {
  sparq_signgd_data data;
  sparq_signgd_model m;
  make_problem(seed, random_position, sigma0, &data, &m);
  double *grad = sparq_alloc(m.count * sizeof(double), "grad"), *fd = sparq_alloc(m.count * sizeof(double), "fd");
  double loss, error;
  assert_int_equal(sparq_signgd_loss(&m, &data, &loss, &error, grad), SPARQ_OK);
  assert_true(fabs(loss - loss_of(&m, &data)) == 0);
  const double h = 1e-5;
  double fd_max = 0;
  for (size_t j = 0; j < m.count; j++) {
    const double w = m.params[j];
    m.params[j] = w + h;
    const double up = loss_of(&m, &data);
    m.params[j] = w - h;
    const double down = loss_of(&m, &data);
    m.params[j] = w;
    fd[j] = (up - down) / (2 * h);
    if (fabs(fd[j]) > fd_max) fd_max = fabs(fd[j]);
  }
  assert_true(fd_max > 1e-3);
  /* 1e-4 relative per entry; entries below 1e-3 of the largest are compared
   * against that floor, where FD rounding noise would dominate a ratio */
  int strict = 0;
  for (size_t j = 0; j < m.count; j++) {
    const double scale = fmax(fabs(fd[j]), 1e-3 * fd_max);
    strict += fabs(fd[j]) >= 1e-3 * fd_max;
    if (fabs(grad[j] - fd[j]) > 1e-4 * scale)
      fail_msg("seed %llu entry %zu: analytic %.10g vs finite difference %.10g", (unsigned long long)seed, j, grad[j],
               fd[j]);
  }
  /* most entries face the pure relative test (the query, key and value blocks all do) */
  assert_true(strict > (int)m.count / 2);
  sparq_free(grad);
  sparq_free(fd);
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

static void gradients_match_finite_differences(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 3; seed++) check_gradient(seed, false, 0.5);
  check_gradient(7, true, 0.5);
  check_gradient(8, false, 1.0);
}

static void softmax_rows_sum_to_one(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model m;
  make_problem(4, true, 1.0, &data, &m);
  for (int64_t i = 0; i < data.n; i++) {
    double f, S[4];
    assert_int_equal(sparq_signgd_forward(&m, &data, i, &f, S), SPARQ_OK);
    for (int l = 0; l < 2; l++) {
      assert_true(S[2 * l] > 0 && S[2 * l + 1] > 0);
      assert_true(fabs(S[2 * l] + S[2 * l + 1] - 1) <= 1e-15);
    }
  }
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

static void swapping_the_value_matrices_negates_f(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model m;
  make_problem(5, false, 0.5, &data, &m);
  const size_t block = (size_t)(m.m_v * m.d);
  double f[5] = {0}, g;
  for (int64_t i = 0; i < data.n; i++) assert_int_equal(sparq_signgd_forward(&m, &data, i, &f[i], NULL), SPARQ_OK);
  for (size_t j = 0; j < block; j++) {
    double t = m.wv_pos[j];
    m.wv_pos[j] = m.wv_neg[j];
    m.wv_neg[j] = t;
  }
  for (int64_t i = 0; i < data.n; i++) {
    assert_int_equal(sparq_signgd_forward(&m, &data, i, &g, NULL), SPARQ_OK);
    assert_true(g == -f[i]);
  }
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

static void f_depends_on_the_values_only_through_v(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model m;
  make_problem(6, false, 0.5, &data, &m);
  double f[5] = {0}, g;
  for (int64_t i = 0; i < data.n; i++) assert_int_equal(sparq_signgd_forward(&m, &data, i, &f[i], NULL), SPARQ_OK);
  /* v is unchanged by: a vector added to every row of both matrices, and a
   * vector moved from one row of a matrix to another row of the same one */
  sparq_rng rng = sparq_rng_make(99, 0);
  for (int64_t k = 0; k < m.d; k++) {
    const double shift = sparq_rng_normal(&rng), move = sparq_rng_normal(&rng);
    for (int64_t r = 0; r < m.m_v; r++) {
      m.wv_pos[r * m.d + k] += shift;
      m.wv_neg[r * m.d + k] += shift;
    }
    m.wv_pos[k] += move;
    m.wv_pos[m.d + k] -= move;
  }
  for (int64_t i = 0; i < data.n; i++) {
    assert_int_equal(sparq_signgd_forward(&m, &data, i, &g, NULL), SPARQ_OK);
    assert_true(fabs(g - f[i]) <= 1e-12 * (1 + fabs(f[i])));
  }
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

/* The model has no positional information, so moving the signal to the
 * other patch cannot change f (only the order of floating-point sums). */
static void the_signal_position_does_not_change_f(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model m;
  make_problem(9, false, 1.0, &data, &m);
  double f[5] = {0}, S[4], g, T[4];
  for (int64_t i = 0; i < data.n; i++) {
    assert_int_equal(sparq_signgd_forward(&m, &data, i, &f[i], S), SPARQ_OK);
    data.signal_pos[i] = 1;
    assert_int_equal(sparq_signgd_forward(&m, &data, i, &g, T), SPARQ_OK);
    assert_true(fabs(g - f[i]) <= 1e-12 * (1 + fabs(f[i])));
    /* the scores swap with the patches */
    assert_true(fabs(T[3] - S[0]) <= 1e-15 && fabs(T[1] - S[2]) <= 1e-15);
  }
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

static void bad_arguments_are_errors(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model m;
  make_problem(10, false, 0.5, &data, &m);
  double f, loss;
  assert_int_equal(sparq_signgd_forward(&m, &data, 5, &f, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_signgd_forward"));
  data.d = 13;
  assert_int_equal(sparq_signgd_loss(&m, &data, &loss, NULL, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "does not match"));
  data.d = 12;
  sparq_rng rng = sparq_rng_make(1, 0);
  sparq_signgd_model bad;
  assert_int_equal(sparq_signgd_model_init(&bad, 12, 0, 2, 0.1, &rng), SPARQ_ERR_ARG);
  assert_int_equal(sparq_signgd_model_init(&bad, 12, 2, 2, -1, &rng), SPARQ_ERR_ARG);
  assert_null(bad.params);
  sparq_signgd_model_free(&bad);
  sparq_signgd_model_free(&m);
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gradients_match_finite_differences),
      cmocka_unit_test(softmax_rows_sum_to_one),
      cmocka_unit_test(swapping_the_value_matrices_negates_f),
      cmocka_unit_test(f_depends_on_the_values_only_through_v),
      cmocka_unit_test(the_signal_position_does_not_change_f),
      cmocka_unit_test(bad_arguments_are_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
