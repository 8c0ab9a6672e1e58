/* SignGD study, spec section 8 invariants 6 and 7: the data generator's
 * properties and bitwise determinism (same seed, any thread count), plus the
 * run's bookkeeping: schedule, t_conv, report and plot script files. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/io.h"
#include "test_file_util.h"
#include "sparq/signgd.h"

static void generator_properties(bool random_position) {
  const int64_t n = 3000, d = 2000, s = 40;
  const double mu = 2.5, sigma_p = 1.5;
  sparq_signgd_data data;
  sparq_rng rng = sparq_rng_make(17, 0);
  assert_int_equal(sparq_signgd_data_sample(&data, n, d, s, mu, sigma_p, random_position, &rng), SPARQ_OK);
  assert_int_equal(sparq_signgd_data_check(&data), SPARQ_OK);
  double *x = sparq_alloc((size_t)d * sizeof(double), "patch");
  int *hits = calloc((size_t)d, sizeof *hits);
  int64_t positives = 0, in_patch1 = 0;
  double sum2 = 0;
  for (int64_t i = 0; i < n; i++) {
    positives += data.y[i] > 0;
    in_patch1 += data.signal_pos[i];
    const int sig = data.signal_pos[i];
    assert_int_equal(sparq_signgd_data_patch(&data, i, sig, x), SPARQ_OK);
    assert_true(x[0] == data.y[i] * mu); /* x_signal = y * mu, mu = ||mu|| e_1 */
    for (int64_t k = 1; k < d; k++) assert_true(x[k] == 0);
    assert_int_equal(sparq_signgd_data_patch(&data, i, 1 - sig, x), SPARQ_OK);
    assert_true(x[0] == 0); /* noise never touches the signal coordinate */
    int64_t nonzero = 0;
    for (int64_t k = 1; k < d; k++)
      if (x[k] != 0) {
        nonzero++;
        hits[k]++;
        sum2 += x[k] * x[k];
      }
    assert_int_equal(nonzero, s);
  }
  /* balanced labels within 3 sigma of a fair coin */
  assert_true(fabs((double)positives - n / 2.0) <= 3 * sqrt(n / 4.0));
  if (random_position) assert_true(fabs((double)in_patch1 - n / 2.0) <= 3 * sqrt(n / 4.0));
  else assert_int_equal(in_patch1, 0);
  /* N(0, sigma_p^2) values: the sample variance of 120000 draws is within 2 % */
  assert_true(fabs(sum2 / (double)(n * s) / (sigma_p * sigma_p) - 1) < 0.02);
  /* uniform coordinates: about 60 hits each, every one of 1..d-1 used */
  int lo = 1 << 30, hi = 0;
  for (int64_t k = 1; k < d; k++) {
    if (hits[k] < lo) lo = hits[k];
    if (hits[k] > hi) hi = hits[k];
  }
  assert_true(lo >= 25 && hi <= 105);
  free(hits);
  sparq_free(x);
  sparq_signgd_data_free(&data);
}

static void data_generator_properties(void **state) {
  (void)state;
  generator_properties(false);
  generator_properties(true);
}

static void data_check_rejects_bad_sets(void **state) {
  (void)state;
  sparq_signgd_data data;
  assert_int_equal(sparq_signgd_data_alloc(&data, 2, 10, 3, 1), SPARQ_OK);
  assert_int_equal(sparq_signgd_data_check(&data), SPARQ_ERR_ARG); /* labels still 0 */
  data.y[0] = 1, data.y[1] = -1;
  for (int j = 0; j < 6; j++) data.noise_idx[j] = 1 + j % 3;
  assert_int_equal(sparq_signgd_data_check(&data), SPARQ_OK);
  data.noise_idx[4] = 1;
  assert_int_equal(sparq_signgd_data_check(&data), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "not ascending"));
  sparq_signgd_data_free(&data);
  assert_int_equal(sparq_signgd_data_alloc(&data, 2, 10, 10, 1), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "1..d-1"));
  sparq_signgd_data_free(&data);
}

static sparq_signgd_config small_config(sparq_signgd_optim optim, double snr, uint64_t seed) {
  sparq_signgd_config c;
  sparq_signgd_config_default(&c, optim);
  c.d = 300, c.s = 10, c.n = 16, c.n_test = 200, c.steps = 75, c.snr = snr, c.seed = seed;
  return c;
}

static char *slurp(const char *path, size_t *size) {
  char *text = test_slurp(path, size);
  assert_non_null(text);
  return text;
}

static void assert_same_trace(const sparq_signgd_trace *a, const sparq_signgd_trace *b) {
  assert_int_equal(a->count, b->count);
  assert_int_equal(a->t_conv, b->t_conv);
  assert_int_equal(a->t_align, b->t_align);
  assert_memory_equal(a->points, b->points, (size_t)a->count * sizeof *a->points);
  assert_memory_equal(a->q_signal_neuron, b->q_signal_neuron, (size_t)(a->count * a->config.m_k) * sizeof(double));
  assert_memory_equal(a->k_signal_neuron, b->k_signal_neuron, (size_t)(a->count * a->config.m_k) * sizeof(double));
  assert_memory_equal(a->train_loss, b->train_loss, (size_t)(a->config.steps + 1) * sizeof(double));
}

static void a_seed_fixes_the_trajectory_and_the_log(void **state) {
  (void)state;
  for (int o = 0; o < 3; o++) {
    sparq_signgd_config c = small_config((sparq_signgd_optim)o, 0.5, 3);
    sparq_signgd_trace a, b, other;
    assert_int_equal(sparq_signgd_train(&c, &a, NULL, NULL), SPARQ_OK);
    assert_int_equal(sparq_signgd_train(&c, &b, NULL, NULL), SPARQ_OK);
    assert_same_trace(&a, &b);
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/signgd_det_a.jsonl", SPARQ_TEST_TMP);
    snprintf(pb, sizeof pb, "%s/signgd_det_b.jsonl", SPARQ_TEST_TMP);
    assert_int_equal(sparq_signgd_write_log(pa, &a), SPARQ_OK);
    assert_int_equal(sparq_signgd_write_log(pb, &b), SPARQ_OK);
    size_t na, nb;
    char *la = slurp(pa, &na), *lb = slurp(pb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(la, lb, na);
    free(la);
    free(lb);
    c.seed = 4;
    assert_int_equal(sparq_signgd_train(&c, &other, NULL, NULL), SPARQ_OK);
    assert_true(other.train_loss[c.steps] != a.train_loss[c.steps]);
    sparq_signgd_trace_free(&a);
    sparq_signgd_trace_free(&b);
    sparq_signgd_trace_free(&other);
  }
}

static void results_do_not_depend_on_the_thread_count(void **state) {
  (void)state;
  enum { RUNS = 5 };
  sparq_signgd_config c[RUNS];
  for (int i = 0; i < RUNS; i++) c[i] = small_config((sparq_signgd_optim)(i % 3), i < 3 ? 0.25 : 1.0, (uint64_t)i);
  sparq_signgd_trace one[RUNS], two[RUNS];
  sparq_set_threads(1);
  assert_int_equal(sparq_signgd_run_all(c, RUNS, one, NULL, NULL), SPARQ_OK);
  sparq_set_threads(2);
  assert_int_equal(sparq_signgd_run_all(c, RUNS, two, NULL, NULL), SPARQ_OK);
  for (int i = 0; i < RUNS; i++) {
    assert_same_trace(&one[i], &two[i]);
    sparq_signgd_trace_free(&one[i]);
    sparq_signgd_trace_free(&two[i]);
  }
  /* a bad config fails the batch with its message, and nothing leaks */
  c[2].s = c[2].d;
  assert_int_equal(sparq_signgd_run_all(c, RUNS, one, NULL, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "run 2"));
  for (int i = 0; i < RUNS; i++) assert_null(one[i].points);
}

/* The model has no positional information and the variant draws the same
 * labels and noise, so the signal position changes only rounding. */
static void the_random_position_variant_follows_the_same_path(void **state) {
  (void)state;
  sparq_signgd_config c = small_config(SPARQ_SIGNGD_OPT_SIGN, 0.5, 2);
  sparq_signgd_trace fixed, moved;
  assert_int_equal(sparq_signgd_train(&c, &fixed, NULL, NULL), SPARQ_OK);
  c.random_position = true;
  assert_int_equal(sparq_signgd_train(&c, &moved, NULL, NULL), SPARQ_OK);
  for (int64_t step = 0; step <= c.steps; step++)
    assert_true(fabs(moved.train_loss[step] - fixed.train_loss[step]) <= 1e-9 * fixed.train_loss[step]);
  const sparq_signgd_point *a = sparq_signgd_trace_at(&fixed, 30), *b = sparq_signgd_trace_at(&moved, 30);
  assert_true(fabs(a->s21 - b->s21) <= 1e-9 * a->s21 && fabs(a->alignment - b->alignment) <= 0.01);
  sparq_signgd_trace_free(&fixed);
  sparq_signgd_trace_free(&moved);
}

static void the_schedule_and_the_convergence_step(void **state) {
  (void)state;
  sparq_signgd_config c = small_config(SPARQ_SIGNGD_OPT_SIGN, 1.0, 1);
  c.steps = 300;
  sparq_signgd_trace t;
  assert_int_equal(sparq_signgd_train(&c, &t, NULL, NULL), SPARQ_OK);
  /* every step to 50, every 10 after, plus t_conv when it falls between */
  for (int64_t step = 0; step <= c.steps; step++) {
    const bool want = step <= 50 || step % 10 == 0 || step == t.t_conv;
    assert_true((sparq_signgd_trace_at(&t, step) != NULL) == want);
  }
  assert_true(t.t_conv > 0);
  assert_true(t.train_loss[t.t_conv] < SPARQ_SIGNGD_CONV_LOSS && t.train_loss[t.t_conv - 1] >= SPARQ_SIGNGD_CONV_LOSS);
  const sparq_signgd_point *p = sparq_signgd_trace_at(&t, t.t_conv);
  assert_true(p->train_loss == t.train_loss[t.t_conv]);
  assert_true(p->test_loss > 0 && p->s11 > 0 && p->s11 < 1 && p->alignment >= 0 && p->alignment <= 1);
  sparq_signgd_summary s;
  sparq_signgd_summarize(&t, &s);
  assert_int_equal(s.t_conv, t.t_conv);
  assert_true(s.test_loss_conv == p->test_loss);
  assert_true(isnan(s.s11_at_40) == 0 && s.growth_ratio > 0);
  sparq_signgd_trace_free(&t);
}

static bool contains(const char *path, const char *needle) {
  size_t n;
  char *text = slurp(path, &n);
  bool found = strstr(text, needle) != NULL;
  free(text);
  return found;
}

static void the_report_and_the_plot_script(void **state) {
  (void)state;
  sparq_signgd_config *configs;
  size_t count;
  assert_int_equal(sparq_signgd_protocol(120, 12, false, &configs, &count), SPARQ_OK);
  assert_int_equal(count, 60);
  assert_true(configs[0].optim == SPARQ_SIGNGD_OPT_SIGN && configs[0].snr == 0.1 && configs[0].seed == 0);
  assert_true(configs[59].optim == SPARQ_SIGNGD_OPT_GD && configs[59].snr == 1.0 && configs[59].seed == 4);
  assert_true(configs[59].lr == 0.5 && configs[25].eps == 1e-15 && configs[7].d == 120 && configs[7].steps == 12);
  /* a third of the grid keeps the test quick */
  const size_t keep = 20;
  for (size_t i = 0; i < keep; i++) configs[i] = configs[3 * i];
  sparq_signgd_trace traces[20];
  assert_int_equal(sparq_signgd_run_all(configs, keep, traces, NULL, NULL), SPARQ_OK);
  char md[512], csv[512], gp[512], dat[20][512];
  const char *dats[20];
  snprintf(md, sizeof md, "%s/signgd_report.md", SPARQ_TEST_TMP);
  snprintf(csv, sizeof csv, "%s/signgd_report.csv", SPARQ_TEST_TMP);
  snprintf(gp, sizeof gp, "%s/signgd_plots.gp", SPARQ_TEST_TMP);
  char *text;
  assert_int_equal(sparq_signgd_write_report(traces, keep, md, csv, &text), SPARQ_OK);
  assert_non_null(strstr(text, "| signgd | 0.1 |"));
  assert_non_null(strstr(text, "| gd | 1 |"));
  assert_non_null(strstr(text, "## Acceptance checks"));
  assert_true(contains(md, "## Stage markers"));
  assert_true(contains(csv, "optimizer,snr,seed,d,steps"));
  free(text);
  for (size_t i = 0; i < keep; i++) {
    snprintf(dat[i], sizeof dat[i], "%s/signgd_%zu.dat", SPARQ_TEST_TMP, i);
    dats[i] = dat[i];
    assert_int_equal(sparq_signgd_write_dat(dat[i], &traces[i]), SPARQ_OK);
  }
  assert_true(contains(dat[0], "# step train_loss test_loss"));
  assert_int_equal(sparq_signgd_write_plot_script(gp, "out'dir", traces, dats, keep), SPARQ_OK);
  assert_true(contains(gp, "set output 'out''dir/softmax.png'"));
  assert_true(contains(gp, "set multiplot layout 2,2"));
  for (size_t i = 0; i < keep; i++) sparq_signgd_trace_free(&traces[i]);
  sparq_free(configs);
  assert_int_equal(sparq_signgd_write_report(traces, 0, md, NULL, NULL), SPARQ_ERR_ARG);
}

static void bad_configs_name_the_field(void **state) {
  (void)state;
  sparq_signgd_config c;
  sparq_signgd_config_default(&c, SPARQ_SIGNGD_OPT_ADAM);
  assert_int_equal(sparq_signgd_config_check(&c), SPARQ_OK);
  c.s = c.d;
  sparq_signgd_trace t;
  assert_int_equal(sparq_signgd_train(&c, &t, NULL, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "s 2000 must be in 1..d-1"));
  assert_null(t.points);
  c.s = 40, c.beta2 = 1;
  assert_int_equal(sparq_signgd_config_check(&c), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "Adam"));
  c.beta2 = 0.999, c.lr = -1;
  assert_int_equal(sparq_signgd_config_check(&c), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "lr"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(data_generator_properties),
      cmocka_unit_test(data_check_rejects_bad_sets),
      cmocka_unit_test(a_seed_fixes_the_trajectory_and_the_log),
      cmocka_unit_test(results_do_not_depend_on_the_thread_count),
      cmocka_unit_test(the_random_position_variant_follows_the_same_path),
      cmocka_unit_test(the_schedule_and_the_convergence_step),
      cmocka_unit_test(the_report_and_the_plot_script),
      cmocka_unit_test(bad_configs_name_the_field),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
