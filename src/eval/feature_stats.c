/* Feature statistics for the Fréchet distance: mean, unbiased covariance
 * and the covariance's symmetric square root, all in double.
 *
 * The covariance is sum_k (x_k - mu)(x_k - mu)^T / (n - 1) over centred
 * columns: entry (i, j) is one dot product of two centred columns, summed
 * in a fixed order by whichever thread owns row i, so the result does not
 * depend on the thread count. Centring first (two passes) avoids the
 * cancellation of the one-pass E[x x^T] - mu mu^T. */
#include <math.h>
#include <string.h>

#include "eval/gen_metrics_internal.h"
#include "sparq/base.h"

#define STATS_MAX_DIM 4096

void sparq_feature_stats_free(sparq_feature_stats *s) {
  if (!s) return;
  sparq_free(s->mean);
  sparq_free(s->cov);
  sparq_free(s->cov_sqrt);
  memset(s, 0, sizeof *s);
}

static sparq_status stats_alloc(sparq_feature_stats *s, int64_t F) {
  memset(s, 0, sizeof *s);
  s->dim = F;
  s->mean = sparq_alloc((size_t)F * sizeof(double), "feature mean");
  s->cov = sparq_alloc((size_t)(F * F) * sizeof(double), "feature covariance");
  s->cov_sqrt = sparq_alloc((size_t)(F * F) * sizeof(double), "feature covariance square root");
  if (!s->mean || !s->cov || !s->cov_sqrt) {
    sparq_feature_stats_free(s);
    return SPARQ_ERR_NOMEM;
  }
  return SPARQ_OK;
}

/* sum_k a[k] b[k] with four partial sums (a fixed order, and enough
 * independent chains to keep the FMA units busy). */
static double dot(const double *restrict a, const double *restrict b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; k++) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

/* Fills cov_sqrt and trace from cov. */
static sparq_status finish(sparq_feature_stats *s) {
  const int64_t F = s->dim;
  double tr = 0.0;
  for (int64_t i = 0; i < F; i++) tr += s->cov[i * F + i];
  s->trace = tr;
  return gm_sym_sqrt(s->cov_sqrt, s->cov, F);
}

sparq_status sparq_feature_stats_compute(const float *feats, int64_t n, int64_t F, sparq_feature_stats *out) {
  static const char who[] = "sparq_feature_stats_compute";
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL output", who);
  memset(out, 0, sizeof *out);
  if (!feats) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL features", who);
  if (n < 2) return sparq_fail(SPARQ_ERR_ARG, "%s: %lld samples; a covariance needs at least 2", who, (long long)n);
  if (F < 1 || F > STATS_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "%s: feature dimension %lld is outside 1..%d", who, (long long)F, STATS_MAX_DIM);
  size_t total;
  if (!sparq_size_mul((size_t)n, (size_t)F, &total) || total > ((size_t)1 << 32))
    return sparq_fail(SPARQ_ERR_ARG, "%s: %lld x %lld features are too many", who, (long long)n, (long long)F);
  for (size_t i = 0; i < total; i++)
    if (!isfinite(feats[i]))
      return sparq_fail(SPARQ_ERR_ARG, "%s: feature %zu of row %zu is not finite", who, i % (size_t)F, i / (size_t)F);
  sparq_status st = stats_alloc(out, F);
  if (st) return st;
  out->n = n;
  /* columns as rows: xt[j, k] = feats[k, j] - mean[j] */
  double *xt = sparq_alloc(total * sizeof(double), "centred features");
  if (!xt) {
    sparq_feature_stats_free(out);
    return SPARQ_ERR_NOMEM;
  }
  for (int64_t j = 0; j < F; j++) {
    double sum = 0.0;
    for (int64_t k = 0; k < n; k++) sum += feats[k * F + j];
    out->mean[j] = sum / (double)n;
  }
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < F; j++) xt[j * n + k] = (double)feats[k * F + j] - out->mean[j];
  double *cov = out->cov;
  const double scale = 1.0 / (double)(n - 1);
#pragma omp parallel if ((double)n * (double)F * (double)F > 1e6)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < F; i++)
      for (int64_t j = i; j < F; j++) cov[i * F + j] = dot(xt + i * n, xt + j * n, n) * scale;
  }
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < i; j++) cov[i * F + j] = cov[j * F + i];
  sparq_free(xt);
  if ((st = finish(out))) sparq_feature_stats_free(out);
  return st;
}

sparq_status sparq_feature_stats_set(const double *mean, const double *cov, int64_t F, sparq_feature_stats *out) {
  static const char who[] = "sparq_feature_stats_set";
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL output", who);
  memset(out, 0, sizeof *out);
  if (!mean || !cov) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL mean or covariance", who);
  if (F < 1 || F > STATS_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "%s: feature dimension %lld is outside 1..%d", who, (long long)F, STATS_MAX_DIM);
  for (int64_t i = 0; i < F * F; i++)
    if (!isfinite(cov[i]) || (i < F && !isfinite(mean[i])))
      return sparq_fail(SPARQ_ERR_ARG, "%s: the mean or covariance has a non-finite entry", who);
  sparq_status st = stats_alloc(out, F);
  if (st) return st;
  memcpy(out->mean, mean, (size_t)F * sizeof(double));
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < F; j++) out->cov[i * F + j] = 0.5 * (cov[i * F + j] + cov[j * F + i]);
  if ((st = finish(out))) sparq_feature_stats_free(out);
  return st;
}
