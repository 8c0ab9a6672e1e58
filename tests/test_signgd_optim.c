/* SignGD study, spec section 8 invariants 3-5: value rows move together,
 * SignGD moves every entry by exactly lr or 0 (and the value noise and
 * signal by the predicted amounts), Adam's first step is SignGD's. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sparq/signgd.h"

static void sample_problem(uint64_t seed, sparq_signgd_data *data, sparq_signgd_model *m) {
  sparq_rng rng = sparq_rng_make(seed, 0);
  assert_int_equal(sparq_signgd_data_sample(data, 8, 60, 6, 2.0, 1.0, false, &rng), SPARQ_OK);
  assert_int_equal(sparq_signgd_model_init(m, 60, 4, 3, 0.05, &rng), SPARQ_OK);
}

static void init_optimizer(sparq_signgd_optimizer *o, sparq_signgd_optim kind, size_t count) {
  const double lr = kind == SPARQ_SIGNGD_OPT_GD ? 0.5 : 1e-2;
  assert_int_equal(sparq_signgd_optimizer_init(o, kind, lr, 0.9, 0.999, 1e-15, count), SPARQ_OK);
}

static void value_rows_move_together(void **state) {
  (void)state;
  for (int kind = 0; kind < 3; kind++) {
    sparq_signgd_data data;
    sparq_signgd_model m;
    sample_problem(11, &data, &m);
    const int64_t d = m.d, mv = m.m_v;
    double *grad = sparq_alloc(m.count * sizeof(double), "grad");
    double *diff0 = sparq_alloc((size_t)(2 * mv * d) * sizeof(double), "row differences");
    for (int j = 0; j < 2; j++) {
      const double *w = j ? m.wv_neg : m.wv_pos;
      for (int64_t r = 0; r < mv; r++)
        for (int64_t k = 0; k < d; k++) diff0[(j * mv + r) * d + k] = w[r * d + k] - w[k];
    }
    sparq_signgd_optimizer o;
    init_optimizer(&o, (sparq_signgd_optim)kind, m.count);
    for (int step = 0; step < 8; step++) {
      assert_int_equal(sparq_signgd_loss(&m, &data, NULL, NULL, grad), SPARQ_OK);
      const double *gpos = grad + 2 * m.m_k * d, *gneg = gpos + mv * d;
      for (int64_t r = 1; r < mv; r++) {
        assert_memory_equal(gpos + r * d, gpos, (size_t)d * sizeof(double));
        assert_memory_equal(gneg + r * d, gneg, (size_t)d * sizeof(double));
      }
      for (int64_t k = 0; k < d; k++) assert_true(gneg[k] == -gpos[k]);
      assert_int_equal(sparq_signgd_optimizer_step(&o, m.params, grad), SPARQ_OK);
    }
    /* every row took the same steps, so row differences keep their value up
     * to the rounding of each addition */
    for (int j = 0; j < 2; j++) {
      const double *w = j ? m.wv_neg : m.wv_pos;
      for (int64_t r = 0; r < mv; r++)
        for (int64_t k = 0; k < d; k++) {
          const double now = w[r * d + k] - w[k], then = diff0[(j * mv + r) * d + k];
          if (fabs(now - then) > 1e-13) fail_msg("%s: row %lld moved apart at %lld", sparq_signgd_optim_name(kind),
                                                 (long long)r, (long long)k);
        }
    }
    sparq_signgd_optimizer_free(&o);
    sparq_free(diff0);
    sparq_free(grad);
    sparq_signgd_model_free(&m);
    sparq_signgd_data_free(&data);
  }
}

/* n samples whose noise supports are disjoint: sample i owns coordinates
 * 1 + s*i .. s + s*i. */
static void disjoint_problem(sparq_signgd_data *data, sparq_signgd_model *m) {
  const int64_t n = 4, s = 5, d = 1 + n * s + 7; /* 7 coordinates no sample touches */
  assert_int_equal(sparq_signgd_data_alloc(data, n, d, s, 0.8), SPARQ_OK);
  sparq_rng rng = sparq_rng_make(3, 0);
  for (int64_t i = 0; i < n; i++) {
    data->y[i] = i % 2 ? 1 : -1;
    for (int64_t j = 0; j < s; j++) {
      data->noise_idx[i * s + j] = (int32_t)(1 + s * i + j);
      data->noise_val[i * s + j] = sparq_rng_normal(&rng);
    }
  }
  assert_int_equal(sparq_signgd_data_check(data), SPARQ_OK);
  assert_int_equal(sparq_signgd_model_init(m, d, 3, 3, 0.01, &rng), SPARQ_OK);
}

static void value_noise_and_signal(const sparq_signgd_model *m, const sparq_signgd_data *data, double *noise,
                                   double *signal) {
  double v[64], x[64];
  assert_true(m->d <= 64);
  sparq_signgd_value_direction(m, v);
  *signal = data->mu_norm * v[0];
  double total = 0;
  for (int64_t i = 0; i < data->n; i++) {
    assert_int_equal(sparq_signgd_data_patch(data, i, 1, x), SPARQ_OK);
    for (int64_t k = 0; k < m->d; k++) total += data->y[i] * v[k] * x[k];
  }
  *noise = total / (double)data->n;
}

static void signgd_moves_each_entry_by_exactly_lr(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model m;
  disjoint_problem(&data, &m);
  /* dyadic weights and lr make w -/+ lr exact, so "exactly lr" is testable
   * with ==: |w| < 1 on a 2^-40 grid needs at most 41 significant bits */
  for (size_t j = 0; j < m.count; j++) m.params[j] = ldexp(nearbyint(ldexp(m.params[j], 40)), -40);
  const double lr = 0x1p-10;
  double l1 = 0;
  for (int64_t j = 0; j < data.n * data.s; j++) l1 += fabs(data.noise_val[j]);
  const double noise_rise = 2 * lr * l1 / (double)data.n, signal_rise = 2 * lr * data.mu_norm;

  double *grad = sparq_alloc(m.count * sizeof(double), "grad"), *before = sparq_alloc(m.count * sizeof(double), "w");
  sparq_signgd_optimizer o;
  assert_int_equal(sparq_signgd_optimizer_init(&o, SPARQ_SIGNGD_OPT_SIGN, lr, 0, 0, 0, m.count), SPARQ_OK);
  double noise, signal, noise_next, signal_next;
  value_noise_and_signal(&m, &data, &noise, &signal);
  for (int step = 0; step < 20; step++) {
    assert_int_equal(sparq_signgd_loss(&m, &data, NULL, NULL, grad), SPARQ_OK);
    memcpy(before, m.params, m.count * sizeof(double));
    assert_int_equal(sparq_signgd_optimizer_step(&o, m.params, grad), SPARQ_OK);
    size_t moved = 0;
    for (size_t j = 0; j < m.count; j++) {
      const double delta = m.params[j] - before[j];
      const double want = grad[j] > 0 ? -lr : grad[j] < 0 ? lr : 0;
      if (delta != want) fail_msg("step %d entry %zu moved %a, not %a", step, j, delta, want);
      moved += delta != 0;
    }
    assert_true(moved > m.count / 2);
    /* coordinates no sample touches have gradient exactly 0: sign(0) = 0 */
    for (int64_t k = 1 + data.n * data.s; k < m.d; k++) assert_true(m.wq[k] == before[k]);
    value_noise_and_signal(&m, &data, &noise_next, &signal_next);
    assert_true(fabs(noise_next - noise - noise_rise) <= 1e-12 * noise_rise);
    assert_true(fabs(signal_next - signal - signal_rise) <= 1e-12 * signal_rise);
    noise = noise_next, signal = signal_next;
  }
  sparq_signgd_optimizer_free(&o);
  sparq_free(grad);
  sparq_free(before);
  sparq_signgd_model_free(&m);
  sparq_signgd_data_free(&data);
}

static void adam_first_step_equals_signgd_with_eps_zero(void **state) {
  (void)state;
  sparq_signgd_data data;
  sparq_signgd_model a, b;
  sample_problem(21, &data, &a);
  sparq_rng rng = sparq_rng_make(21, 0);
  sparq_signgd_data scratch;
  assert_int_equal(sparq_signgd_data_sample(&scratch, 8, 60, 6, 2.0, 1.0, false, &rng), SPARQ_OK);
  assert_int_equal(sparq_signgd_model_init(&b, 60, 4, 3, 0.05, &rng), SPARQ_OK);
  assert_memory_equal(a.params, b.params, a.count * sizeof(double));
  double *grad = sparq_alloc(a.count * sizeof(double), "grad");
  assert_int_equal(sparq_signgd_loss(&a, &data, NULL, NULL, grad), SPARQ_OK);
  size_t zeros = 0;
  for (size_t j = 0; j < a.count; j++) zeros += grad[j] == 0;
  assert_true(zeros > 0 && zeros < a.count); /* coordinates outside every support */
  sparq_signgd_optimizer adam, sign;
  assert_int_equal(sparq_signgd_optimizer_init(&adam, SPARQ_SIGNGD_OPT_ADAM, 1e-3, 0.9, 0.999, 0, a.count), SPARQ_OK);
  assert_int_equal(sparq_signgd_optimizer_init(&sign, SPARQ_SIGNGD_OPT_SIGN, 1e-3, 0, 0, 0, b.count), SPARQ_OK);
  assert_int_equal(sparq_signgd_optimizer_step(&adam, a.params, grad), SPARQ_OK);
  assert_int_equal(sparq_signgd_optimizer_step(&sign, b.params, grad), SPARQ_OK);
  assert_memory_equal(a.params, b.params, a.count * sizeof(double));
  /* an entry whose gradient has been 0 so far has a 0/0 Adam ratio: it stays */
  assert_int_equal(sparq_signgd_optimizer_step(&adam, a.params, grad), SPARQ_OK);
  for (size_t j = 0; j < a.count; j++)
    if (grad[j] == 0) assert_true(a.params[j] == b.params[j]);
  sparq_signgd_optimizer_free(&adam);
  sparq_signgd_optimizer_free(&sign);
  sparq_free(grad);
  sparq_signgd_model_free(&a);
  sparq_signgd_model_free(&b);
  sparq_signgd_data_free(&data);
  sparq_signgd_data_free(&scratch);
}

/* The bias-corrected moments kept directly are the usual Adam recursion. */
static void adam_matches_the_textbook_recursion(void **state) {
  (void)state;
  enum { N = 5, STEPS = 40 };
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  double w[N] = {0.3, -0.2, 0.1, 0, 0.05}, ref[N], m[N] = {0}, v[N] = {0}, g[N];
  memcpy(ref, w, sizeof w);
  sparq_signgd_optimizer o;
  assert_int_equal(sparq_signgd_optimizer_init(&o, SPARQ_SIGNGD_OPT_ADAM, lr, b1, b2, eps, N), SPARQ_OK);
  sparq_rng rng = sparq_rng_make(5, 0);
  for (int t = 1; t <= STEPS; t++) {
    for (int i = 0; i < N; i++) g[i] = ref[i] + 0.1 * sparq_rng_normal(&rng);
    for (int i = 0; i < N; i++) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
      ref[i] -= lr * mh / (sqrt(vh) + eps);
    }
    assert_int_equal(sparq_signgd_optimizer_step(&o, w, g), SPARQ_OK);
    for (int i = 0; i < N; i++) assert_true(fabs(w[i] - ref[i]) <= 1e-12);
  }
  assert_int_equal(o.t, STEPS);
  sparq_signgd_optimizer_free(&o);
}

static void bad_optimizer_arguments(void **state) {
  (void)state;
  sparq_signgd_optimizer o;
  assert_int_equal(sparq_signgd_optimizer_init(&o, SPARQ_SIGNGD_OPT_SIGN, 0, 0, 0, 0, 4), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "lr"));
  assert_int_equal(sparq_signgd_optimizer_init(&o, SPARQ_SIGNGD_OPT_ADAM, 1e-3, 1.0, 0.9, 0, 4), SPARQ_ERR_ARG);
  assert_int_equal(sparq_signgd_optimizer_init(&o, SPARQ_SIGNGD_OPT_ADAM, 1e-3, 0.9, 0.9, -1, 4), SPARQ_ERR_ARG);
  assert_int_equal(sparq_signgd_optimizer_init(&o, (sparq_signgd_optim)7, 1e-3, 0.9, 0.9, 0, 4), SPARQ_ERR_ARG);
  assert_int_equal(sparq_signgd_optimizer_step(&o, NULL, NULL), SPARQ_ERR_ARG);
  sparq_signgd_optim k;
  assert_true(sparq_signgd_optim_from_name("adam", &k) && k == SPARQ_SIGNGD_OPT_ADAM);
  assert_false(sparq_signgd_optim_from_name("sgd", &k));
  assert_string_equal(sparq_signgd_optim_name(SPARQ_SIGNGD_OPT_GD), "gd");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(value_rows_move_together),
      cmocka_unit_test(signgd_moves_each_entry_by_exactly_lr),
      cmocka_unit_test(adam_first_step_equals_signgd_with_eps_zero),
      cmocka_unit_test(adam_matches_the_textbook_recursion),
      cmocka_unit_test(bad_optimizer_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
