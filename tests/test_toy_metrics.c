/* The toy metrics of spec gft.md section 8.1: the energy distance (zero on
 * identical sets, symmetric, equal to its definition, independent of the
 * thread count), the Bayes accuracy of exact samples against the Bayes
 * rate, mode coverage, the eps error of the exact denoiser (zero), the
 * per-sweep-point struct, and the whole path through a sampler. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/sparq.h"
#include "sparq/toy_metrics.h"

#define K SPARQ_TOY2D_CLASSES

/* n exact samples of class cls (-1: the marginal). */
static float *exact_samples(const sparq_toy2d *toy, int32_t cls, int64_t n, uint64_t seed) {
  float *x = malloc((size_t)n * 2 * sizeof *x);
  int32_t *y = malloc((size_t)n * sizeof *y);
  for (int64_t i = 0; i < n; i++) y[i] = cls;
  sparq_rng rng = sparq_rng_make(seed, 0);
  sparq_toy2d_sample(toy, y, n, &rng, x);
  free(y);
  return x;
}

/* The definition, written plainly in double. */
static double naive_energy(const float *a, int64_t na, const float *b, int64_t nb) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < na; i++)
    for (int64_t j = 0; j < nb; j++) ab += hypot((double)a[2 * i] - b[2 * j], (double)a[2 * i + 1] - b[2 * j + 1]);
  for (int64_t i = 0; i < na; i++)
    for (int64_t j = 0; j < na; j++) aa += hypot((double)a[2 * i] - a[2 * j], (double)a[2 * i + 1] - a[2 * j + 1]);
  for (int64_t i = 0; i < nb; i++)
    for (int64_t j = 0; j < nb; j++) bb += hypot((double)b[2 * i] - b[2 * j], (double)b[2 * i + 1] - b[2 * j + 1]);
  return 2 * ab / ((double)na * nb) - aa / ((double)na * na) - bb / ((double)nb * nb);
}

static void energy_distance_properties(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  float *a = exact_samples(&toy, 0, 700, 1), *b = exact_samples(&toy, 1, 500, 2), *a2 = exact_samples(&toy, 0, 600, 3);
  assert_true(sparq_toy_energy_distance(a, 700, a, 700) == 0.0);
  const double ab = sparq_toy_energy_distance(a, 700, b, 500), ba = sparq_toy_energy_distance(b, 500, a, 700);
  assert_true(fabs(ab - ba) <= 1e-12 * ab);
  assert_true(fabs(ab - naive_energy(a, 700, b, 500)) <= 1e-10 * ab);
  /* two samples of one class are much closer than samples of two classes */
  const double same = sparq_toy_energy_distance(a, 700, a2, 600);
  assert_true(same >= 0.0 && same < 0.05 * ab);
  /* thread count: rows run in parallel (700 >= the parallel threshold) */
  sparq_set_threads(1);
  const double one = sparq_toy_energy_distance(a, 700, b, 500);
  sparq_set_threads(2);
  assert_memory_equal(&one, &ab, sizeof one);
  assert_true(isnan(sparq_toy_energy_distance(a, 0, b, 500)));
  assert_true(isnan(sparq_toy_energy_distance(NULL, 5, b, 500)));
  free(a), free(b), free(a2);
}

/* The Bayes accuracy of exact samples of class c is P(argmax_c' p(c'|x) = c | c);
 * by Monte Carlo over the marginal it is E_x[p(c|x) 1{argmax = c}] / prior_c,
 * and its prior-weighted mean is the Bayes rate E_x[max_c p(c|x)]. */
static void bayes_accuracy_matches_monte_carlo_rate(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  enum { N = 20000, M = 40000 };
  float *mx = exact_samples(&toy, -1, M, 100);
  double rate = 0.0, per_class[K] = {0};
  for (int64_t i = 0; i < M; i++) {
    double post[K];
    sparq_toy2d_class_posterior(&toy, mx + 2 * i, post);
    int best = 0;
    for (int c = 1; c < K; c++)
      if (post[c] > post[best]) best = c;
    rate += post[best] / M;
    per_class[best] += post[best] / (M * toy.class_prior[best]);
  }
  free(mx);
  double mean_acc = 0.0;
  for (int32_t c = 0; c < K; c++) {
    float *x = exact_samples(&toy, c, N, 200 + (uint64_t)c);
    sparq_toy_sample_metrics m;
    assert_int_equal(sparq_toy_sample_metrics_eval(&toy, c, x, N, NULL, 0, NULL, &m), SPARQ_OK);
    printf("class %d: Bayes accuracy %.4f, Monte Carlo %.4f\n", (int)c, m.bayes_acc, per_class[c]);
    assert_true(fabs(m.bayes_acc - per_class[c]) < 0.02);
    mean_acc += toy.class_prior[c] * m.bayes_acc;
    free(x);
  }
  printf("Bayes rate %.4f, mean accuracy of exact samples %.4f\n", rate, mean_acc);
  assert_true(fabs(mean_acc - rate) < 0.01);
  assert_true(rate > 0.6 && rate < 0.99); /* the classes overlap, but not completely */
}

static void mode_coverage_of_exact_and_dropped(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  for (int32_t c = 0; c < K; c++) {
    float *x = exact_samples(&toy, c, 5000, 300 + (uint64_t)c);
    sparq_toy_sample_metrics m;
    assert_int_equal(sparq_toy_sample_metrics_eval(&toy, c, x, 5000, NULL, 0, NULL, &m), SPARQ_OK);
    assert_true(m.mode_coverage == 1.0);
    assert_int_equal(m.modes, c % 2 ? 2 : 3);
    free(x);
  }
  /* Three well-separated components of class 0; samples from the mixture
   * without the third cover two of them. (Neighbours of the default toy
   * overlap so much that a dropped component still gets more than 1 % of
   * its share from its neighbours' samples.) */
  sparq_toy2d sep;
  memset(&sep, 0, sizeof sep);
  const double means[3][2] = {{-3, 0}, {0, 0}, {3, 0}};
  for (int k = 0; k < 3; k++) {
    sep.comp[k] = (sparq_toy2d_component){.cls = 0, .weight = 1.0 / 3, .mean = {means[k][0], means[k][1]}, .std = 0.2};
  }
  sep.comp[3] = (sparq_toy2d_component){.cls = 1, .weight = 1.0, .mean = {0, 3}, .std = 0.2};
  sep.ncomp = 4;
  sep.class_prior[0] = sep.class_prior[1] = 0.5;
  sparq_toy2d dropped = sep;
  dropped.comp[0].weight = dropped.comp[1].weight = 0.5, dropped.comp[2].weight = 0.0;
  float *full = exact_samples(&sep, 0, 3000, 7), *part = exact_samples(&dropped, 0, 3000, 7);
  sparq_toy_sample_metrics m;
  assert_int_equal(sparq_toy_sample_metrics_eval(&sep, 0, full, 3000, NULL, 0, NULL, &m), SPARQ_OK);
  assert_true(m.mode_coverage == 1.0);
  assert_int_equal(sparq_toy_sample_metrics_eval(&sep, 0, part, 3000, NULL, 0, NULL, &m), SPARQ_OK);
  assert_int_equal(m.modes_covered, 2);
  assert_int_equal(m.modes, 3);
  assert_true(m.mode_coverage < 1.0);
  free(full), free(part);
}

static double exact_eps_error(sparq_diff_kind kind, sparq_diff_pred pred, int32_t cls, float w, bool gft,
                              double *ref) {
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, kind, pred), SPARQ_OK);
  sparq_toy2d_exact bind;
  sparq_denoiser net;
  sparq_toy2d_exact_denoiser(&bind, &toy, &d, &net);
  sparq_toy_eps_config cfg = sparq_toy_eps_config_default();
  cfg.n = 3000, cfg.seed = 5, cfg.w = w, cfg.gft = gft;
  sparq_toy_eps_error e;
  assert_int_equal(sparq_toy_eps_error_eval(&toy, &d, &net, cls, &cfg, &e), SPARQ_OK);
  assert_int_equal(e.n, 3000);
  sparq_diffusion_free(&d);
  if (ref) *ref = e.ref_sq;
  return e.err;
}

static void exact_denoiser_has_zero_eps_error(void **state) {
  (void)state;
  double ref = 0;
  /* eps head: the network output is the exact eps itself */
  assert_true(exact_eps_error(SPARQ_DIFF_VP, SPARQ_PRED_EPS, -1, 1.0f, false, &ref) == 0.0);
  assert_true(ref > 0.5 && ref < 2.0);
  assert_true(exact_eps_error(SPARQ_DIFF_VP, SPARQ_PRED_EPS, 2, 3.0f, false, NULL) == 0.0);
  assert_true(exact_eps_error(SPARQ_DIFF_VP, SPARQ_PRED_EPS, -1, 1.0f, true, NULL) == 0.0);
  /* other heads go through float outputs and a conversion: zero to rounding */
  const struct {
    sparq_diff_kind kind;
    sparq_diff_pred pred;
  } heads[] = {{SPARQ_DIFF_VP, SPARQ_PRED_X0}, {SPARQ_DIFF_VP, SPARQ_PRED_V}, {SPARQ_DIFF_EDM, SPARQ_PRED_EPS}};
  for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
    const double err = exact_eps_error(heads[h].kind, heads[h].pred, -1, 2.0f, false, &ref);
    assert_true(err <= 1e-6 * ref);
  }
  /* the metric sees a wrong guidance: the exact denoiser ignores gft_beta,
   * so asked for w = 2 it gives eps_c, off by (eps_c - eps_u) */
  assert_true(exact_eps_error(SPARQ_DIFF_VP, SPARQ_PRED_EPS, 0, 2.0f, true, NULL) > 1e-3);
  /* argument checks */
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_toy2d_exact bind;
  sparq_denoiser net;
  sparq_toy2d_exact_denoiser(&bind, &toy, &d, &net);
  sparq_toy_eps_config cfg = sparq_toy_eps_config_default();
  sparq_toy_eps_error e;
  assert_int_equal(sparq_toy_eps_error_eval(&toy, &d, &net, K, &cfg, &e), SPARQ_ERR_ARG);
  cfg.gft = true, cfg.w = 0.0f;
  assert_int_equal(sparq_toy_eps_error_eval(&toy, &d, &net, 0, &cfg, &e), SPARQ_ERR_ARG);
  cfg = sparq_toy_eps_config_default();
  cfg.n = 0;
  assert_int_equal(sparq_toy_eps_error_eval(&toy, &d, &net, 0, &cfg, &e), SPARQ_ERR_ARG);
  sparq_diffusion_free(&d);
}

static void sample_metrics_fill_the_struct(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  enum { N = 800 };
  float *x = exact_samples(&toy, 1, N, 9), *y = exact_samples(&toy, 1, N, 10);
  sparq_sample_stats st = {.nfe = 50, .calls = 50, .rows = 50 * N, .seconds = 0.4};
  sparq_toy_sample_metrics m;
  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 1, x, N, x, N, &st, &m), SPARQ_OK);
  assert_int_equal(m.n, N);
  assert_true(m.endpoint_dist == 0.0 && m.energy_dist == 0.0);
  assert_int_equal(m.nfe, 50);
  assert_true(m.seconds == 0.4 && fabs(m.seconds_per_sample - 0.4 / N) < 1e-15);
  assert_true(isfinite(m.log_density));
  const double exact_logp = m.log_density;

  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 1, x, N, y, N, NULL, &m), SPARQ_OK);
  assert_true(m.endpoint_dist > 0.1 && m.energy_dist > 0.0 && m.energy_dist < 0.05);
  assert_int_equal(m.nfe, 0);
  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 1, x, N, y, N / 2, NULL, &m), SPARQ_OK);
  assert_true(isnan(m.endpoint_dist) && isfinite(m.energy_dist)); /* unpaired */
  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 1, x, N, NULL, 0, NULL, &m), SPARQ_OK);
  assert_true(isnan(m.endpoint_dist) && isnan(m.energy_dist));

  /* blurred samples score a lower fidelity */
  for (int i = 0; i < 2 * N; i++) y[i] = x[i] + 0.3f * (float)((i * 7919) % 13 - 6) / 6.0f;
  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 1, y, N, NULL, 0, NULL, &m), SPARQ_OK);
  assert_true(m.log_density < exact_logp - 0.1);

  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, K, x, N, NULL, 0, NULL, &m), SPARQ_ERR_ARG);
  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 0, x, 0, NULL, 0, NULL, &m), SPARQ_ERR_ARG);
  assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 0, x, N, y, 0, NULL, &m), SPARQ_ERR_ARG);
  free(x), free(y);
}

/* The spec's evaluation path with the exact network: DDIM 50 against the
 * DDIM 500 reference from the same noise, with and without guidance. */
static void sweep_point_with_the_exact_sampler(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_toy2d_exact bind;
  sparq_denoiser net;
  sparq_toy2d_exact_denoiser(&bind, &toy, &d, &net);
  enum { N = 1000 };
  float *noise = malloc(2 * N * sizeof *noise), *x = malloc(2 * N * sizeof *x), *ref = malloc(2 * N * sizeof *ref);
  int32_t *y = malloc(N * sizeof *y);
  sparq_rng rng = sparq_rng_make(42, 0);
  sparq_rng_fill_normal(&rng, noise, 2 * N, 0.0f, 1.0f);
  for (int i = 0; i < N; i++) y[i] = 2;
  const float scales[2] = {1.0f, 3.0f};
  for (int s = 0; s < 2; s++) {
    sparq_sample_config sc = sparq_sample_config_default();
    sc.cfg_scale = scales[s];
    sparq_sample_stats st;
    memcpy(ref, noise, 2 * N * sizeof *ref);
    sc.steps = 500;
    assert_int_equal(sparq_diffusion_sample(&d, &net, &sc, y, N, ref, &st), SPARQ_OK);
    memcpy(x, noise, 2 * N * sizeof *x);
    sc.steps = 50;
    assert_int_equal(sparq_diffusion_sample(&d, &net, &sc, y, N, x, &st), SPARQ_OK);
    sparq_toy_sample_metrics m;
    assert_int_equal(sparq_toy_sample_metrics_eval(&toy, 2, x, N, ref, N, &st, &m), SPARQ_OK);
    printf("w %.0f: endpoint %.4f energy %.5f log p %.3f Bayes acc %.3f coverage %d/%d nfe %lld %.3f s\n",
           (double)scales[s], m.endpoint_dist, m.energy_dist, m.log_density, m.bayes_acc, m.modes_covered, m.modes,
           (long long)m.nfe, m.seconds);
    assert_int_equal(m.nfe, s == 0 ? 50 : 100);
    assert_true(m.endpoint_dist < 0.05 && m.energy_dist < 0.01);
    assert_true(m.mode_coverage == 1.0);
  }
  free(noise), free(x), free(ref), free(y);
  sparq_diffusion_free(&d);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(energy_distance_properties),
      cmocka_unit_test(bayes_accuracy_matches_monte_carlo_rate),
      cmocka_unit_test(mode_coverage_of_exact_and_dropped),
      cmocka_unit_test(exact_denoiser_has_zero_eps_error),
      cmocka_unit_test(sample_metrics_fill_the_struct),
      cmocka_unit_test(sweep_point_with_the_exact_sampler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
