/* Metrics of generated images, computed on the evaluation classifier's
 * outputs (classifier.h): Fréchet distance of penultimate features, class
 * accuracy of conditional samples, and the IS-analog (spec gft.md §8.2).
 *
 * Everything is accumulated in double. Inputs are FP32 rows, row-major:
 * features [n,F], probabilities [n,K]. */
#ifndef SPARQ_GEN_METRICS_H
#define SPARQ_GEN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Feature statistics of one set, reusable across comparisons: the 10k
 * test images' statistics are computed once and every generated set is
 * compared against them. Owned arrays; sparq_feature_stats_free. */
typedef struct sparq_feature_stats {
  int64_t dim;      /* F */
  int64_t n;        /* samples the statistics came from (0: given directly) */
  double *mean;     /* [F] */
  double *cov;      /* [F,F] symmetric: the unbiased covariance, divided by n - 1 (numpy.cov) */
  double *cov_sqrt; /* [F,F] symmetric PSD square root of cov (see below) */
  double trace;     /* tr(cov) */
} sparq_feature_stats;

/* Mean and covariance of feats [n,F] (n >= 2, 1 <= F <= 4096, all finite:
 * SPARQ_ERR_ARG otherwise) and the square root of the covariance. The
 * result does not depend on the thread count. */
sparq_status sparq_feature_stats_compute(const float *feats, int64_t n, int64_t F, sparq_feature_stats *out);
/* Statistics given directly (mean [F], cov [F,F], copied; cov must be
 * finite and is symmetrised as (cov + cov^T) / 2), e.g. known Gaussians or
 * statistics stored elsewhere; n is set to 0. */
sparq_status sparq_feature_stats_set(const double *mean, const double *cov, int64_t F, sparq_feature_stats *out);
/* Frees the arrays and zeroes *s; safe on a zeroed struct and twice. */
void sparq_feature_stats_free(sparq_feature_stats *s);

/* Fréchet distance between Gaussians N(mu_r, S_r) (the reference) and
 * N(mu_g, S_g), with the symmetric eigen route of the spec:
 *
 *   FD = |mu_r - mu_g|^2 + tr S_r + tr S_g - 2 tr (S_r^{1/2} S_g S_r^{1/2})^{1/2}
 *
 * Both square roots come from LAPACKE_dsyevd: for a symmetric A = V diag(l)
 * V^T, A^{1/2} = V diag(sqrt(max(l, 0))) V^T, and tr M^{1/2} of the
 * symmetric PSD M = S_r^{1/2} S_g S_r^{1/2} (symmetrised against rounding)
 * is sum_i sqrt(max(l_i, 0)) over its eigenvalues. The clamp at 0: a
 * covariance is PSD, and a rank-deficient one (fewer samples than F, or
 * features that are always 0 such as dead ReLU units) has eigenvalues that
 * are 0 up to rounding, which can come out as tiny negatives (order
 * 1e-16 |S|); their true value is 0. The tr sqrt term equals
 * tr (S_r S_g)^{1/2} of the general formula, so FD is symmetric in its
 * arguments up to rounding. A tiny negative total (identical sets) is
 * returned as 0. Only `ref` needs cov_sqrt. */
sparq_status sparq_frechet_distance_stats(const sparq_feature_stats *ref, const sparq_feature_stats *gen, double *fd);
/* The same from two feature sets feat_a [na,F] (the reference) and
 * feat_b [nb,F]; na, nb >= 2. */
sparq_status sparq_frechet_distance(const float *feat_a, int64_t na, const float *feat_b, int64_t nb, int64_t F,
                                    double *fd);

/* Class accuracy of conditional samples: the fraction of rows whose argmax
 * of probs [n,K] (the first on ties) equals the requested class
 * classes[n] (each in 0..K-1). n >= 1. */
sparq_status sparq_class_accuracy(const float *probs, const int32_t *classes, int64_t n, int64_t K, double *acc);

/* IS-analog, exp(E_x KL(p(y|x) || p(y))) with p(y) = mean_x p(y|x), from
 * probs [n,K] (each row a distribution: finite, >= 0; rows are used as
 * given, not renormalised). Terms with p(y|x) = 0 contribute 0. It is 1 when
 * every row is the same distribution and K for confident predictions that
 * cover the K classes equally; in [1, K] in general. n >= 1. */
sparq_status sparq_is_analog(const float *probs, int64_t n, int64_t K, double *is);

#ifdef __cplusplus
}
#endif
#endif
