/* Class accuracy of conditional samples and the IS-analog (gen_metrics.h),
 * from the classifier's probabilities. Sums in double, rows in order. */
#include <inttypes.h>
#include <math.h>

#include "sparq/base.h"
#include "sparq/gen_metrics.h"

sparq_status sparq_class_accuracy(const float *probs, const int32_t *classes, int64_t n, int64_t K, double *acc) {
  static const char who[] = "sparq_class_accuracy";
  if (!probs || !classes || !acc) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (n < 1 || K < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: n %" PRId64 " and K %" PRId64 " must be >= 1", who, n, K);
  int64_t hits = 0;
  for (int64_t i = 0; i < n; i++) {
    if (classes[i] < 0 || classes[i] >= K)
      return sparq_fail(SPARQ_ERR_ARG, "%s: class %d of row %" PRId64 " is outside 0..%" PRId64, who, (int)classes[i],
                        i, K - 1);
    const float *p = probs + i * K;
    int64_t best = 0;
    for (int64_t k = 1; k < K; k++)
      if (p[k] > p[best]) best = k;
    hits += best == classes[i];
  }
  *acc = (double)hits / (double)n;
  return SPARQ_OK;
}

sparq_status sparq_is_analog(const float *probs, int64_t n, int64_t K, double *is) {
  static const char who[] = "sparq_is_analog";
  if (!probs || !is) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (n < 1 || K < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: n %" PRId64 " and K %" PRId64 " must be >= 1", who, n, K);
  double *py = sparq_calloc((size_t)K, sizeof(double), "class marginal");
  if (!py) return SPARQ_ERR_NOMEM;
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < K; k++) {
      const float p = probs[i * K + k];
      if (!(p >= 0.0f) || !isfinite(p)) {
        sparq_free(py);
        return sparq_fail(SPARQ_ERR_ARG, "%s: probability %" PRId64 " of row %" PRId64 " is %g", who, k, i, (double)p);
      }
      py[k] += p;
    }
  for (int64_t k = 0; k < K; k++) py[k] /= (double)n;
  /* KL(p || py) = sum_k p log(p / py); p > 0 implies py > 0 */
  double kl = 0.0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < K; k++) {
      const double p = probs[i * K + k];
      if (p > 0.0) kl += p * (log(p) - log(py[k]));
    }
  sparq_free(py);
  *is = exp(kl / (double)n);
  return SPARQ_OK;
}
