/* Fréchet distance between two feature Gaussians (gen_metrics.h), by the
 * symmetric eigen route: tr (S_r^{1/2} S_g S_r^{1/2})^{1/2}. Unlike the
 * general sqrtm(S_r S_g) of a non-symmetric product, every matrix here is
 * symmetric, so LAPACK's symmetric solver applies and no complex parts or
 * iterations need handling. */
#include <math.h>
#include <string.h>

#include "eval/gen_metrics_internal.h"
#include "sparq/base.h"

/* c [F,F] = a b for row-major F x F matrices, rows of c in order. */
static void matmul(double *restrict c, const double *restrict a, const double *restrict b, int64_t F) {
  for (int64_t i = 0; i < F; i++) {
    double *restrict ci = c + i * F;
    for (int64_t j = 0; j < F; j++) ci[j] = 0.0;
    for (int64_t k = 0; k < F; k++) {
      const double aik = a[i * F + k];
      const double *restrict bk = b + k * F;
      for (int64_t j = 0; j < F; j++) ci[j] += aik * bk[j];
    }
  }
}

sparq_status sparq_frechet_distance_stats(const sparq_feature_stats *ref, const sparq_feature_stats *gen, double *fd) {
  static const char who[] = "sparq_frechet_distance";
  if (!ref || !gen || !fd) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (!ref->mean || !ref->cov_sqrt || !gen->mean || !gen->cov)
    return sparq_fail(SPARQ_ERR_ARG, "%s: statistics not computed", who);
  if (ref->dim != gen->dim)
    return sparq_fail(SPARQ_ERR_ARG, "%s: feature dimensions differ (%lld and %lld)", who, (long long)ref->dim,
                      (long long)gen->dim);
  const int64_t F = ref->dim;
  double *t = sparq_alloc((size_t)(F * F) * sizeof(double), "Frechet workspace");
  double *m = sparq_alloc((size_t)(F * F) * sizeof(double), "Frechet workspace");
  double *w = sparq_alloc((size_t)F * sizeof(double), "eigenvalues");
  sparq_status s = (!t || !m || !w) ? SPARQ_ERR_NOMEM : SPARQ_OK;
  double tr_sqrt = 0.0;
  if (!s) {
    matmul(t, ref->cov_sqrt, gen->cov, F);
    matmul(m, t, ref->cov_sqrt, F);
    /* symmetric in exact arithmetic; symmetrise so rounding cannot tilt it */
    for (int64_t i = 0; i < F; i++)
      for (int64_t j = i + 1; j < F; j++) m[i * F + j] = m[j * F + i] = 0.5 * (m[i * F + j] + m[j * F + i]);
    s = gm_sym_eigvals(w, m, F);
  }
  if (!s)
    for (int64_t i = 0; i < F; i++) tr_sqrt += sqrt(w[i] > 0.0 ? w[i] : 0.0);
  sparq_free(t);
  sparq_free(m);
  sparq_free(w);
  if (s) return s;
  double d2 = 0.0;
  for (int64_t i = 0; i < F; i++) {
    const double d = ref->mean[i] - gen->mean[i];
    d2 += d * d;
  }
  const double v = d2 + ref->trace + gen->trace - 2.0 * tr_sqrt;
  *fd = v > 0.0 ? v : 0.0;
  return SPARQ_OK;
}

sparq_status sparq_frechet_distance(const float *feat_a, int64_t na, const float *feat_b, int64_t nb, int64_t F,
                                    double *fd) {
  if (!fd) return sparq_fail(SPARQ_ERR_ARG, "sparq_frechet_distance: NULL output");
  sparq_feature_stats a, b;
  sparq_status s = sparq_feature_stats_compute(feat_a, na, F, &a);
  if (s) return s;
  if (!(s = sparq_feature_stats_compute(feat_b, nb, F, &b))) {
    s = sparq_frechet_distance_stats(&a, &b, fd);
    sparq_feature_stats_free(&b);
  }
  sparq_feature_stats_free(&a);
  return s;
}
