/* The exact metrics of the 2-D toy (spec gft.md section 8.1): the
 * epsilon error of a network against the exact guided eps, and, for a set
 * of samples of one class at one sweep point, the paired endpoint distance
 * and the energy distance to reference samples, the exact log-density, the
 * Bayes accuracy, the mode coverage, and the sampler's NFE and wall time.
 * Everything is computed in double with fixed-order sums, so results do not
 * depend on the thread count. */
#ifndef SPARQ_TOY_METRICS_H
#define SPARQ_TOY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/diffusion.h"
#include "sparq/status.h"
#include "sparq/toy2d.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------- (i) epsilon error */

typedef struct sparq_toy_eps_config {
  /* Guidance scale w of the target eps_w* = eps*_u + w (eps*_c - eps*_u)
   * (eps*_u: the marginal over classes). Finite, > 0 when gft is set. */
  float w;
  /* How the network is asked for its guided eps:
   *   false (CFG): eps_u + w (eps_c - eps_u) from the head outputs for the
   *     label and for the null class (one call of 2n rows; w == 1: one call
   *     of n rows with the labels only); extra = NULL;
   *   true (GFT): one call of n rows with extra = gft_beta = 1 / w. */
  bool gft;
  int64_t n;     /* (t, x_t) samples, >= 1; default 10000 */
  uint64_t seed; /* draws of labels, x0, t and noise; default 0 */
} sparq_toy_eps_config;

/* w 1, CFG, n 10000, seed 0. */
sparq_toy_eps_config sparq_toy_eps_config_default(void);

typedef struct sparq_toy_eps_error {
  double err;    /* mean over samples of ||eps_theta - eps_w*||^2 (summed over the 2 dims) */
  double ref_sq; /* mean ||eps_w*||^2 over the same samples (spec 9.9 compares err to 0.05 of it) */
  int64_t n;
} sparq_toy_eps_error;

/* Estimates E_t E_{x_t ~ q_t} ||eps_theta(x_t, t, c, .) - eps_w*||^2 with
 * exact samples of q_t: labels c (cls in 0..K-1 for one class, or -1 for
 * labels uniform over the K classes), x0 ~ p(x | c) (sparq_toy2d_sample),
 * and (t, x_t) from sparq_diffusion_training_batch, i.e. the training
 * distribution of times (VP t ~ U{0..999}; EDM ln sigma ~ N(p_mean, p_std^2)).
 * The network's head output is turned into eps for d's parameterisation
 * (VP eps, x0 or v; EDM's F) in the network's own variables; the exact eps
 * comes from sparq_toy2d_exact_eps. net->dim must be 2 and net->null_class
 * must be the marginal's label for the network (the toy's K for the toy MLP
 * and the exact denoiser). Fails with SPARQ_ERR_ARG on bad arguments;
 * returns a failing eval()'s status unchanged. */
sparq_status sparq_toy_eps_error_eval(const sparq_toy2d *toy, const sparq_diffusion *d, const sparq_denoiser *net,
                                      int32_t cls, const sparq_toy_eps_config *cfg, sparq_toy_eps_error *out);

/* --------------------------------------------- (ii)-(vii) sample metrics */

typedef struct sparq_toy_sample_metrics {
  int64_t n;               /* samples evaluated */
  double endpoint_dist;    /* (ii) mean_i ||x_i - ref_i||, pairs by index (same initial noise);
                              NaN without reference or when the counts differ */
  double log_density;      /* (iii) mean_i ln p(x_i | c), exact */
  double bayes_acc;        /* (iv) fraction of i with argmax_c' p(c' | x_i) == c */
  double energy_dist;      /* (v) energy distance to the reference (see below); NaN without reference */
  double mode_coverage;    /* (vi) modes_covered / modes */
  int modes_covered, modes; /* class c's components with responsibility mass >= 1 % of their prior share */
  int64_t nfe;             /* (vii) network evaluations per sample (0 without stats) */
  double seconds;          /* (vii) the sampling call's wall time (0 without stats) */
  double seconds_per_sample; /* seconds / n */
} sparq_toy_sample_metrics;

/* Evaluates samples x [n, 2] drawn for class cls (0..K-1) at one sweep
 * point, against reference samples ref [m, 2] of the same class (the
 * exact-CFG sampler from the same initial noise; ref may be NULL) and the
 * sampler's stats (may be NULL):
 *   endpoint distance  mean Euclidean distance of pairs (x_i, ref_i) when m == n;
 *   log density        sparq_toy2d_log_density;
 *   Bayes accuracy     argmax of sparq_toy2d_class_posterior (ties to the lower class);
 *   energy distance    the exact V-statistic over all n m pairs,
 *                      2 E||X - Y|| - E||X - X'|| - E||Y - Y'||, the means taken
 *                      over all ordered pairs including i = j; it is >= 0, 0 for
 *                      identical sets, and symmetric (up to rounding);
 *   mode coverage      for each component k of class c, the responsibility
 *                      mass M_k = mean_i w_k N(x_i; mu_k, s_k^2) / sum_{j in c} w_j N(x_i; mu_j, s_j^2),
 *                      covered when M_k >= 0.01 w_k (w_k its weight in the class).
 * Cost O(n m + n^2 + m^2) for the energy distance (about a second at
 * n = m = 10000 on 2 cores), O(n) for the rest. Fails with SPARQ_ERR_ARG on
 * NULL pointers, n < 1, ref with m < 1, or cls out of range. */
sparq_status sparq_toy_sample_metrics_eval(const sparq_toy2d *toy, int32_t cls, const float *x, int64_t n,
                                           const float *ref, int64_t m, const sparq_sample_stats *stats,
                                           sparq_toy_sample_metrics *out);

/* The energy distance alone (the definition above), for any two sets
 * a [na, 2] and b [nb, 2]; NaN on NULL pointers, empty sets or when its
 * row buffer cannot be allocated. */
double sparq_toy_energy_distance(const float *a, int64_t na, const float *b, int64_t nb);

#ifdef __cplusplus
}
#endif
#endif
