/* The 2-D toy of toy2d.h: the default mixture's shape, sampling, densities,
 * class posteriors, and the exact posterior mean / eps against the score of
 * the closed-form noisy density (finite differences) and a Monte-Carlo
 * check; the exact network's heads for every formulation. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sparq/toy2d.h"

#define K SPARQ_TOY2D_CLASSES

static void assert_close(double got, double want, double tol) {
  if (!(fabs(got - want) <= tol)) fail_msg("got %.12g want %.12g (tol %.3g)", got, want, tol);
}

static void default_mixture_shape(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  double wsum[K] = {0}, psum = 0.0;
  int count[K] = {0};
  for (int k = 0; k < toy.ncomp; k++) {
    const sparq_toy2d_component *c = &toy.comp[k];
    assert_true(c->cls >= 0 && c->cls < K);
    assert_true(c->std >= 0.15 && c->std <= 0.3);
    wsum[c->cls] += c->weight;
    count[c->cls]++;
  }
  for (int c = 0; c < K; c++) {
    assert_close(wsum[c], 1.0, 1e-12);
    assert_true(count[c] >= 2 && count[c] <= 3);
    assert_close(toy.class_prior[c], 0.25, 0);
    psum += toy.class_prior[c];
  }
  assert_close(psum, 1.0, 1e-15);
}

/* Riemann sum of p(x|c) over [-3, 3]^2: each density integrates to 1. */
static void densities_are_normalised(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  const double h = 0.02;
  for (int c = -1; c < K; c++) {
    double s = 0.0;
    for (double u = -3.0; u < 3.0; u += h)
      for (double v = -3.0; v < 3.0; v += h) {
        const float x[2] = {(float)(u + h / 2), (float)(v + h / 2)};
        s += exp(sparq_toy2d_log_density(&toy, x, c)) * h * h;
      }
    assert_close(s, 1.0, 2e-3);
  }
}

static void class_posterior_is_bayes(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  const float pts[][2] = {{1.0f, 0.0f}, {0.3f, 0.5f}, {-0.9f, 0.1f}, {0.0f, -0.6f}, {0.7f, 0.7f}, {5.0f, 5.0f}};
  for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
    double post[K], s = 0.0;
    sparq_toy2d_class_posterior(&toy, pts[i], post);
    const double lm = sparq_toy2d_log_density(&toy, pts[i], -1);
    for (int c = 0; c < K; c++) {
      s += post[c];
      assert_close(post[c], 0.25 * exp(sparq_toy2d_log_density(&toy, pts[i], c) - lm), 1e-9);
    }
    assert_close(s, 1.0, 1e-12);
  }
  /* The null class SPARQ_TOY2D_CLASSES is the marginal too. */
  assert_close(sparq_toy2d_log_density(&toy, pts[1], K), sparq_toy2d_log_density(&toy, pts[1], -1), 0);
}

static void sampling_matches_the_mixture(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  enum { N = 40000 };
  static int32_t cls[N];
  static float x[2 * N];
  for (int c = -1; c < K; c++) {
    for (int i = 0; i < N; i++) cls[i] = c;
    sparq_rng rng = sparq_rng_make(11, (uint64_t)(c + 1));
    sparq_toy2d_sample(&toy, cls, N, &rng, x);
    double want[2] = {0, 0}, var = 0.0, got[2] = {0, 0};
    for (int k = 0; k < toy.ncomp; k++) {
      const sparq_toy2d_component *p = &toy.comp[k];
      const double w = c < 0 ? 0.25 * p->weight : (p->cls == c ? p->weight : 0.0);
      want[0] += w * p->mean[0];
      want[1] += w * p->mean[1];
      var += w * (p->std * p->std + p->mean[0] * p->mean[0] + p->mean[1] * p->mean[1]);
    }
    for (int i = 0; i < N; i++) {
      got[0] += x[2 * i];
      got[1] += x[2 * i + 1];
    }
    const double se = sqrt(var / N);
    assert_close(got[0] / N, want[0], 5 * se);
    assert_close(got[1] / N, want[1], 5 * se);
    if (c >= 0) { /* samples of class c are most likely under class c on average */
      double own = 0.0;
      for (int i = 0; i < 2000; i++) {
        double post[K];
        sparq_toy2d_class_posterior(&toy, x + 2 * i, post);
        own += post[c];
      }
      assert_true(own / 2000 > 0.6);
    }
  }
}

/* eps* = -sigma grad ln p_t(x_t | c), by central differences of the
 * closed-form noisy log density, against the posterior-mean formula. */
static void exact_eps_is_the_scaled_score(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  const double sig[] = {0.01, 0.1, 0.4, 1.0, 3.0, 50.0};
  const float pts[][2] = {{1.0f, 0.1f}, {0.3f, 0.5f}, {-0.9f, 0.1f}, {0.0f, -0.6f}, {-1.3f, 2.0f}};
  for (size_t si = 0; si < sizeof sig / sizeof sig[0]; si++) {
    const double s = sig[si] / sqrt(1.0 + sig[si] * sig[si]), a = 1.0 / sqrt(1.0 + sig[si] * sig[si]);
    for (int c = -1; c <= K; c++)
      for (size_t pi = 0; pi < sizeof pts / sizeof pts[0]; pi++) {
        float xt[2] = {pts[pi][0] * (float)(a + s), pts[pi][1] * (float)(a + s)};
        const int32_t cl = c;
        double D[2];
        float eps[2];
        sparq_toy2d_posterior_mean(&toy, xt, &cl, 1, a, s, D);
        sparq_toy2d_exact_eps(&toy, xt, &cl, 1, a, s, eps);
        const double h = 1e-4 * (a * 0.15 + s);
        for (int j = 0; j < 2; j++) {
          double xp[2] = {xt[0], xt[1]}, xm[2] = {xt[0], xt[1]};
          xp[j] += h;
          xm[j] -= h;
          const double g = (sparq_toy2d_log_density_t(&toy, xp, cl, a, s) -
                            sparq_toy2d_log_density_t(&toy, xm, cl, a, s)) / (2 * h);
          const double want = -s * g;
          assert_close(eps[j], want, 1e-4 * (1.0 + fabs(want)));
          /* and the textbook form (x_t - alpha D) / sigma */
          assert_close(eps[j], ((double)xt[j] - a * D[j]) / s, 2e-4 * (1.0 + fabs(want)) / fmin(1.0, s / 0.01));
        }
      }
  }
  /* sigma -> 0 with alpha = 1: D is x itself. */
  const float x[2] = {0.2f, -0.4f};
  const int32_t c0 = 2;
  double D[2];
  sparq_toy2d_posterior_mean(&toy, x, &c0, 1, 1.0, 0.0, D);
  assert_close(D[0], x[0], 1e-7);
  assert_close(D[1], x[1], 1e-7);
}

/* E[x0 | x_t] is the best predictor: the residual x0 - D has mean zero and
 * no correlation with any function of x_t (checked against x_t and D). */
static void posterior_mean_monte_carlo(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  enum { N = 20000 };
  static int32_t cls[N];
  static float x0[2 * N], xt[2 * N], z[2 * N], eps[2 * N];
  static double D[2 * N];
  const double cases[][2] = {{0.9, 0.4359}, {0.5, 0.8660}, {1.0, 0.3}};
  for (size_t ci = 0; ci < 3; ci++) {
    const double a = cases[ci][0], s = cases[ci][1];
    for (int i = 0; i < N; i++) cls[i] = (int32_t)(i % (K + 1)); /* K is the null label */
    sparq_rng rng = sparq_rng_make(3, ci);
    sparq_toy2d_sample(&toy, cls, N, &rng, x0);
    sparq_rng_fill_normal(&rng, z, 2 * N, 0.0f, 1.0f);
    for (int i = 0; i < 2 * N; i++) xt[i] = (float)(a * x0[i] + s * z[i]);
    sparq_toy2d_posterior_mean(&toy, xt, cls, N, a, s, D);
    sparq_toy2d_exact_eps(&toy, xt, cls, N, a, s, eps);
    double m[2] = {0, 0}, cx[2] = {0, 0}, cd[2] = {0, 0}, mse = 0.0, mse_eps = 0.0, mse_bad = 0.0, v = 0.0;
    for (int i = 0; i < 2 * N; i++) {
      const double r = x0[i] - D[i];
      m[i & 1] += r;
      cx[i & 1] += r * xt[i];
      cd[i & 1] += r * D[i];
      mse += r * r;
      v += (double)x0[i] * x0[i];
      mse_eps += ((double)z[i] - eps[i]) * ((double)z[i] - eps[i]);
      const double bad = 1.1 * eps[i]; /* any other predictor does worse */
      mse_bad += ((double)z[i] - bad) * ((double)z[i] - bad);
    }
    const double se = sqrt(mse / (2 * N) / N) * sqrt(1.0 + v / N);
    for (int j = 0; j < 2; j++) {
      assert_close(m[j] / N, 0.0, 5 * se);
      assert_close(cx[j] / N, 0.0, 5 * se * 2);
      assert_close(cd[j] / N, 0.0, 5 * se * 2);
    }
    assert_true(mse_eps < mse_bad);
    /* eps error and x0 error are the same quantity scaled: ||eps - eps*|| = (alpha / sigma) ||x0 - D||. */
    assert_close(mse_eps / mse, a * a / (s * s), 1e-3 * a * a / (s * s));
  }
}

static void exact_denoiser_heads(void **state) {
  (void)state;
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  const float xs[4] = {0.3f, -0.2f, -1.1f, 0.8f};
  const int32_t y[2] = {1, K};
  for (int cfg = 0; cfg < 4; cfg++) {
    sparq_diffusion d;
    assert_int_equal(sparq_diffusion_init(&d, cfg == 3 ? SPARQ_DIFF_EDM : SPARQ_DIFF_VP,
                                          cfg == 3 ? SPARQ_PRED_EPS : (sparq_diff_pred)cfg),
                     SPARQ_OK);
    sparq_toy2d_exact bind;
    sparq_denoiser net;
    sparq_toy2d_exact_denoiser(&bind, &toy, &d, &net);
    assert_int_equal(net.dim, 2);
    assert_int_equal(net.null_class, K);
    const float t[2] = {cfg == 3 ? (float)(250.0 * log(0.7)) : 300.0f, cfg == 3 ? (float)(250.0 * log(0.7)) : 300.0f};
    float out[4], eps[4], xin[4];
    double a, s, D[4];
    sparq_diffusion_alpha_sigma(&d, t[0], &a, &s);
    const double cin = cfg == 3 ? sparq_edm_precond(&d, s).c_in : 1.0;
    for (int i = 0; i < 4; i++) xin[i] = (float)(cin * xs[i]);
    assert_int_equal(net.eval(net.self, xin, t, y, NULL, 2, out), SPARQ_OK);
    sparq_toy2d_posterior_mean(&toy, xs, y, 2, a, s, D);
    sparq_toy2d_exact_eps(&toy, xs, y, 2, a, s, eps);
    for (int i = 0; i < 4; i++) {
      double want;
      if (cfg == 3) {
        const sparq_edm_scalings c = sparq_edm_precond(&d, s);
        want = (D[i] - c.c_skip * xs[i]) / c.c_out;
      } else if (cfg == SPARQ_PRED_X0) {
        want = D[i];
      } else if (cfg == SPARQ_PRED_V) {
        want = a * eps[i] - s * D[i];
      } else {
        want = eps[i];
      }
      assert_close(out[i], want, 1e-5 * (1.0 + fabs(want)));
    }
    sparq_diffusion_free(&d);
  }
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_mixture_shape),
      cmocka_unit_test(densities_are_normalised),
      cmocka_unit_test(class_posterior_is_bayes),
      cmocka_unit_test(sampling_matches_the_mixture),
      cmocka_unit_test(exact_eps_is_the_scaled_score),
      cmocka_unit_test(posterior_mean_monte_carlo),
      cmocka_unit_test(exact_denoiser_heads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
