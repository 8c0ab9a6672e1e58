/* The generation metrics of sparq/gen_metrics.h: the Fréchet distance
 * against closed forms (identical sets, diagonal covariances, non-commuting
 * covariances checked against a Newton-Schulz square root computed here,
 * samples whose empirical moments are set exactly), its symmetry and
 * rank-deficient inputs; class accuracy; the IS-analog's limits; errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/base.h"
#include "sparq/gen_metrics.h"

/* ---------------------------------------------------- small dense algebra */

static double *dmat(int64_t F) { return calloc((size_t)(F * F), sizeof(double)); }

static void mm(double *c, const double *a, const double *b, int64_t F) {
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < F; j++) {
      double s = 0;
      for (int64_t k = 0; k < F; k++) s += a[i * F + k] * b[k * F + j];
      c[i * F + j] = s;
    }
}

/* A random SPD matrix Q diag(l) Q^T with eigenvalues in [lo, hi]; Q from
 * Gram-Schmidt on a random matrix, so different seeds do not commute. */
static double *random_spd(int64_t F, uint64_t seed, double lo, double hi) {
  sparq_rng rng = sparq_rng_make(seed, 5);
  double *q = dmat(F), *a = dmat(F);
  for (int64_t i = 0; i < F * F; i++) q[i] = sparq_rng_normal(&rng);
  for (int64_t j = 0; j < F; j++) { /* orthonormal columns */
    for (int64_t p = 0; p < j; p++) {
      double d = 0;
      for (int64_t i = 0; i < F; i++) d += q[i * F + j] * q[i * F + p];
      for (int64_t i = 0; i < F; i++) q[i * F + j] -= d * q[i * F + p];
    }
    double nrm = 0;
    for (int64_t i = 0; i < F; i++) nrm += q[i * F + j] * q[i * F + j];
    for (int64_t i = 0; i < F; i++) q[i * F + j] /= sqrt(nrm);
  }
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < F; j++) {
      double s = 0;
      for (int64_t k = 0; k < F; k++) {
        const double l = lo + (hi - lo) * (double)k / (double)(F > 1 ? F - 1 : 1);
        s += q[i * F + k] * l * q[j * F + k];
      }
      a[i * F + j] = s;
    }
  free(q);
  return a;
}

/* tr sqrt(M) for M = A B (A, B SPD: real positive eigenvalues, not
 * symmetric) by the coupled Newton-Schulz iteration on M / |M|_F:
 * Y <- Y (3I - Z Y) / 2, Z <- (3I - Z Y) Z / 2, Y -> sqrt(M / |M|_F).
 * Independent of the library's symmetric eigen route. */
static double trace_sqrt_newton_schulz(const double *a, const double *b, int64_t F) {
  double *m = dmat(F), *y = dmat(F), *z = dmat(F), *t = dmat(F), *zy = dmat(F), *tmp = dmat(F);
  mm(m, a, b, F);
  double c = 0;
  for (int64_t i = 0; i < F * F; i++) c += m[i] * m[i];
  c = sqrt(c);
  for (int64_t i = 0; i < F * F; i++) y[i] = m[i] / c;
  for (int64_t i = 0; i < F; i++) z[i * F + i] = 1;
  for (int it = 0; it < 100; it++) {
    mm(zy, z, y, F);
    for (int64_t i = 0; i < F * F; i++) t[i] = -0.5 * zy[i];
    for (int64_t i = 0; i < F; i++) t[i * F + i] += 1.5;
    mm(tmp, y, t, F);
    memcpy(y, tmp, (size_t)(F * F) * sizeof(double));
    mm(tmp, t, z, F);
    memcpy(z, tmp, (size_t)(F * F) * sizeof(double));
  }
  /* converged: Y Y = M / c */
  mm(tmp, y, y, F);
  double res = 0;
  for (int64_t i = 0; i < F * F; i++) res = fmax(res, fabs(tmp[i] - m[i] / c));
  assert_true(res < 1e-13);
  double tr = 0;
  for (int64_t i = 0; i < F; i++) tr += y[i * F + i];
  free(m), free(y), free(z), free(t), free(zy), free(tmp);
  return tr * sqrt(c);
}

static double trace(const double *a, int64_t F) {
  double t = 0;
  for (int64_t i = 0; i < F; i++) t += a[i * F + i];
  return t;
}

/* Features with some correlation: x = z A + mu, z standard normal. */
static float *random_features(int64_t n, int64_t F, uint64_t seed, double shift) {
  sparq_rng rng = sparq_rng_make(seed, 9);
  float *z = malloc((size_t)(n * F) * sizeof(float)), *x = malloc((size_t)(n * F) * sizeof(float));
  sparq_rng_fill_normal(&rng, z, (size_t)(n * F), 0, 1);
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < F; j++) {
      double s = shift + 0.1 * (double)j;
      for (int64_t i = 0; i <= j; i++) s += z[k * F + i] * (i == j ? 1.0 : 0.3 / (double)(j - i));
      x[k * F + j] = (float)s;
    }
  free(z);
  return x;
}

/* ------------------------------------------------------------------ FD */

static void fd_identical_sets(void **state) {
  (void)state;
  const int64_t n = 600, F = 24;
  float *x = random_features(n, F, 1, 0.5);
  double fd = -1;
  assert_int_equal(sparq_frechet_distance(x, n, x, n, F, &fd), SPARQ_OK);
  if (!(fabs(fd) <= 1e-9)) fail_msg("FD of identical sets is %.3g", fd);
  /* the statistics reused: mean, unbiased covariance against a direct computation */
  sparq_feature_stats s;
  assert_int_equal(sparq_feature_stats_compute(x, n, F, &s), SPARQ_OK);
  assert_int_equal(s.n, n);
  assert_int_equal(s.dim, F);
  for (int64_t i = 0; i < F; i += 5)
    for (int64_t j = 0; j < F; j += 3) {
      double mi = 0, mj = 0, c = 0;
      for (int64_t k = 0; k < n; k++) mi += x[k * F + i], mj += x[k * F + j];
      mi /= n, mj /= n;
      for (int64_t k = 0; k < n; k++) c += (x[k * F + i] - mi) * (x[k * F + j] - mj);
      c /= (double)(n - 1);
      assert_true(fabs(s.mean[i] - mi) < 1e-12 * (1 + fabs(mi)));
      assert_true(fabs(s.cov[i * F + j] - c) < 1e-12 * (1 + fabs(c)));
    }
  /* cov_sqrt squared is cov */
  double *sq = dmat(F), err = 0;
  mm(sq, s.cov_sqrt, s.cov_sqrt, F);
  for (int64_t i = 0; i < F * F; i++) err = fmax(err, fabs(sq[i] - s.cov[i]));
  assert_true(err < 1e-12 * s.trace);
  assert_true(fabs(s.trace - trace(s.cov, F)) < 1e-12 * s.trace);
  sparq_feature_stats_free(&s);
  sparq_feature_stats_free(&s); /* twice is fine */
  free(sq);
  free(x);
}

static void fd_diagonal_closed_form(void **state) {
  (void)state;
  enum { F = 7 };
  double mu_a[F], mu_b[F], ca[F * F] = {0}, cb[F * F] = {0}, want = 0;
  for (int i = 0; i < F; i++) {
    mu_a[i] = 0.3 * i, mu_b[i] = 1.0 - 0.2 * i;
    ca[i * F + i] = 0.5 + i, cb[i * F + i] = 2.0 / (1 + i);
    want += (mu_a[i] - mu_b[i]) * (mu_a[i] - mu_b[i]);
    want += (sqrt(ca[i * F + i]) - sqrt(cb[i * F + i])) * (sqrt(ca[i * F + i]) - sqrt(cb[i * F + i]));
  }
  sparq_feature_stats a, b;
  assert_int_equal(sparq_feature_stats_set(mu_a, ca, F, &a), SPARQ_OK);
  assert_int_equal(sparq_feature_stats_set(mu_b, cb, F, &b), SPARQ_OK);
  assert_int_equal(a.n, 0);
  double fd;
  assert_int_equal(sparq_frechet_distance_stats(&a, &b, &fd), SPARQ_OK);
  if (!(fabs(fd - want) <= 1e-12 * want)) fail_msg("FD %.17g, closed form %.17g", fd, want);
  sparq_feature_stats_free(&a), sparq_feature_stats_free(&b);
}

static void fd_non_commuting(void **state) {
  (void)state;
  const int64_t F = 12;
  double *ca = random_spd(F, 11, 0.3, 3.0), *cb = random_spd(F, 12, 0.5, 2.0);
  double *ab = dmat(F), *ba = dmat(F);
  mm(ab, ca, cb, F), mm(ba, cb, ca, F);
  double comm = 0;
  for (int64_t i = 0; i < F * F; i++) comm = fmax(comm, fabs(ab[i] - ba[i]));
  assert_true(comm > 0.1); /* they really do not commute */
  double mu_a[12], mu_b[12], d2 = 0;
  for (int i = 0; i < F; i++) mu_a[i] = sin(i), mu_b[i] = cos(i), d2 += (mu_a[i] - mu_b[i]) * (mu_a[i] - mu_b[i]);
  const double want = d2 + trace(ca, F) + trace(cb, F) - 2 * trace_sqrt_newton_schulz(ca, cb, F);
  sparq_feature_stats a, b;
  assert_int_equal(sparq_feature_stats_set(mu_a, ca, F, &a), SPARQ_OK);
  assert_int_equal(sparq_feature_stats_set(mu_b, cb, F, &b), SPARQ_OK);
  double fab, fba;
  assert_int_equal(sparq_frechet_distance_stats(&a, &b, &fab), SPARQ_OK);
  assert_int_equal(sparq_frechet_distance_stats(&b, &a, &fba), SPARQ_OK);
  if (!(fabs(fab - want) <= 1e-10 * want)) fail_msg("FD %.17g, Newton-Schulz %.17g", fab, want);
  if (!(fabs(fab - fba) <= 1e-10 * want)) fail_msg("FD(a,b) %.17g, FD(b,a) %.17g", fab, fba);
  sparq_feature_stats_free(&a), sparq_feature_stats_free(&b);
  free(ca), free(cb), free(ab), free(ba);
}

/* n samples whose empirical mean is exactly mu and whose unbiased
 * covariance is exactly C (in double, before the rounding to float):
 * centre and whiten random z (Cholesky of its covariance), then colour with
 * the Cholesky factor of C. */
static float *samples_with_moments(int64_t n, int64_t F, const double *mu, const double *c, uint64_t seed) {
  sparq_rng rng = sparq_rng_make(seed, 3);
  double *z = malloc((size_t)(n * F) * sizeof(double)), *s = dmat(F), *l = dmat(F), *lc = dmat(F);
  for (int64_t i = 0; i < n * F; i++) z[i] = sparq_rng_normal(&rng);
  for (int64_t j = 0; j < F; j++) {
    double m = 0;
    for (int64_t k = 0; k < n; k++) m += z[k * F + j];
    for (int64_t k = 0; k < n; k++) z[k * F + j] -= m / n;
  }
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < F; j++) {
      double v = 0;
      for (int64_t k = 0; k < n; k++) v += z[k * F + i] * z[k * F + j];
      s[i * F + j] = v / (double)(n - 1);
    }
  /* Cholesky factors (lower): s = l l^T, c = lc lc^T */
  const double *src[2] = {s, c};
  double *dst[2] = {l, lc};
  for (int m = 0; m < 2; m++)
    for (int64_t i = 0; i < F; i++)
      for (int64_t j = 0; j <= i; j++) {
        double v = src[m][i * F + j];
        for (int64_t k = 0; k < j; k++) v -= dst[m][i * F + k] * dst[m][j * F + k];
        dst[m][i * F + j] = i == j ? sqrt(v) : v / dst[m][j * F + j];
      }
  float *x = malloc((size_t)(n * F) * sizeof(float));
  double *w = malloc((size_t)F * sizeof(double));
  for (int64_t k = 0; k < n; k++) {
    /* w = l^{-1} z_k (forward substitution), then x = lc w + mu */
    for (int64_t i = 0; i < F; i++) {
      double v = z[k * F + i];
      for (int64_t j = 0; j < i; j++) v -= l[i * F + j] * w[j];
      w[i] = v / l[i * F + i];
    }
    for (int64_t i = 0; i < F; i++) {
      double v = mu[i];
      for (int64_t j = 0; j <= i; j++) v += lc[i * F + j] * w[j];
      x[k * F + i] = (float)v;
    }
  }
  free(z), free(s), free(l), free(lc), free(w);
  return x;
}

static void fd_from_samples(void **state) {
  (void)state;
  const int64_t F = 8, na = 400, nb = 300;
  double *ca = random_spd(F, 21, 0.2, 2.0), *cb = random_spd(F, 22, 0.4, 1.5), mu_a[8], mu_b[8], d2 = 0;
  for (int i = 0; i < F; i++) mu_a[i] = 0.1 * i, mu_b[i] = 0.5 - 0.05 * i, d2 += (mu_a[i] - mu_b[i]) * (mu_a[i] - mu_b[i]);
  float *xa = samples_with_moments(na, F, mu_a, ca, 1), *xb = samples_with_moments(nb, F, mu_b, cb, 2);
  const double want = d2 + trace(ca, F) + trace(cb, F) - 2 * trace_sqrt_newton_schulz(ca, cb, F);
  double fab, fba;
  assert_int_equal(sparq_frechet_distance(xa, na, xb, nb, F, &fab), SPARQ_OK);
  assert_int_equal(sparq_frechet_distance(xb, nb, xa, na, F, &fba), SPARQ_OK);
  /* the features are rounded to float: relative 1e-7 per value */
  if (!(fabs(fab - want) <= 1e-5 * want)) fail_msg("FD %.10g, closed form %.10g", fab, want);
  if (!(fabs(fab - fba) <= 1e-9 * want)) fail_msg("FD(a,b) %.17g, FD(b,a) %.17g", fab, fba);
  /* reusing the reference statistics gives the same number */
  sparq_feature_stats ref, gen;
  assert_int_equal(sparq_feature_stats_compute(xa, na, F, &ref), SPARQ_OK);
  assert_int_equal(sparq_feature_stats_compute(xb, nb, F, &gen), SPARQ_OK);
  double again;
  assert_int_equal(sparq_frechet_distance_stats(&ref, &gen, &again), SPARQ_OK);
  assert_true(again == fab);
  sparq_feature_stats_free(&ref), sparq_feature_stats_free(&gen);
  free(ca), free(cb), free(xa), free(xb);
}

static void fd_rank_deficient(void **state) {
  (void)state;
  /* fewer samples than features, and a feature that is always 0 (a dead
   * ReLU unit): the covariances are singular; the clamp keeps it finite */
  const int64_t n = 6, F = 16;
  float *x = random_features(n, F, 31, 0.0), *y = random_features(n, F, 32, 0.2);
  for (int64_t k = 0; k < n; k++) x[k * F + 3] = y[k * F + 3] = 0.0f;
  double same, fd;
  assert_int_equal(sparq_frechet_distance(x, n, x, n, F, &same), SPARQ_OK);
  assert_true(same >= 0.0 && same < 1e-6);
  assert_int_equal(sparq_frechet_distance(x, n, y, n, F, &fd), SPARQ_OK);
  assert_true(isfinite(fd) && fd > 0.0);
  free(x), free(y);
}

static void fd_errors(void **state) {
  (void)state;
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  double fd;
  sparq_feature_stats s, t;
  assert_int_equal(sparq_frechet_distance(x, 1, x, 4, 2, &fd), SPARQ_ERR_ARG); /* one sample */
  assert_int_equal(sparq_frechet_distance(x, 4, x, 4, 0, &fd), SPARQ_ERR_ARG);
  assert_int_equal(sparq_frechet_distance(NULL, 4, x, 4, 2, &fd), SPARQ_ERR_ARG);
  x[5] = NAN;
  assert_int_equal(sparq_feature_stats_compute(x, 4, 2, &s), SPARQ_ERR_ARG);
  assert_null(s.mean);
  x[5] = 6;
  assert_int_equal(sparq_feature_stats_compute(x, 4, 2, &s), SPARQ_OK);
  assert_int_equal(sparq_feature_stats_compute(x, 2, 4, &t), SPARQ_OK);
  assert_int_equal(sparq_frechet_distance_stats(&s, &t, &fd), SPARQ_ERR_ARG); /* dimensions differ */
  sparq_feature_stats_free(&s), sparq_feature_stats_free(&t);
  const double mu[1] = {0}, bad[1] = {INFINITY};
  assert_int_equal(sparq_feature_stats_set(mu, bad, 1, &s), SPARQ_ERR_ARG);
}

/* ----------------------------------------------- accuracy and IS-analog */

static void class_accuracy(void **state) {
  (void)state;
  const float p[4 * 3] = {0.7f, 0.2f, 0.1f, 0.1f, 0.1f, 0.8f, 0.3f, 0.3f, 0.4f, 0.5f, 0.5f, 0.0f};
  const int32_t want[4] = {0, 2, 1, 0}; /* right, right, wrong, right (tie -> first) */
  double acc;
  assert_int_equal(sparq_class_accuracy(p, want, 4, 3, &acc), SPARQ_OK);
  assert_true(acc == 0.75);
  const int32_t bad[4] = {0, 3, 0, 0};
  assert_int_equal(sparq_class_accuracy(p, bad, 4, 3, &acc), SPARQ_ERR_ARG);
  assert_int_equal(sparq_class_accuracy(p, want, 0, 3, &acc), SPARQ_ERR_ARG);
}

static void is_analog_limits(void **state) {
  (void)state;
  enum { N = 1000, K = 10 };
  float *p = malloc(N * K * sizeof(float));
  double is;
  /* uniform predictions: 1 */
  for (int i = 0; i < N * K; i++) p[i] = 1.0f / K;
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_OK);
  assert_true(fabs(is - 1.0) < 1e-12);
  /* confident, balanced: K */
  for (int i = 0; i < N; i++)
    for (int k = 0; k < K; k++) p[i * K + k] = (i % K == k) ? 1.0f : 0.0f;
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_OK);
  assert_true(fabs(is - K) < 1e-9);
  /* confident but all one class: 1 (no diversity) */
  for (int i = 0; i < N; i++)
    for (int k = 0; k < K; k++) p[i * K + k] = k == 4 ? 1.0f : 0.0f;
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_OK);
  assert_true(fabs(is - 1.0) < 1e-12);
  /* confident over 5 of the 10 classes: 5 */
  for (int i = 0; i < N; i++)
    for (int k = 0; k < K; k++) p[i * K + k] = (2 * (i % 5) == k) ? 1.0f : 0.0f;
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_OK);
  assert_true(fabs(is - 5.0) < 1e-9);
  /* random distributions: between 1 and K */
  sparq_rng rng = sparq_rng_make(7, 7);
  for (int i = 0; i < N; i++) {
    float s = 0;
    for (int k = 0; k < K; k++) s += p[i * K + k] = sparq_rng_uniform(&rng) + 1e-3f;
    for (int k = 0; k < K; k++) p[i * K + k] /= s;
  }
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_OK);
  assert_true(is > 1.0 && is < K);
  p[3] = -0.1f;
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_ERR_ARG);
  p[3] = NAN;
  assert_int_equal(sparq_is_analog(p, N, K, &is), SPARQ_ERR_ARG);
  free(p);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fd_identical_sets), cmocka_unit_test(fd_diagonal_closed_form),
      cmocka_unit_test(fd_non_commuting),  cmocka_unit_test(fd_from_samples),
      cmocka_unit_test(fd_rank_deficient), cmocka_unit_test(fd_errors),
      cmocka_unit_test(class_accuracy),    cmocka_unit_test(is_analog_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
