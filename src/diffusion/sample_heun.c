/* EDM's Heun sampler (Karras et al. 2022, Alg. 1 without churn): an Euler
 * predictor and a trapezoidal corrector, second order; the last update (to
 * sigma = 0) is plain Euler because d' is undefined there. */
#include "diffusion/diff_internal.h"

sparq_status diff_sample_heun(diff_run *r, float *xs, const double *sigmas, const double *times, int64_t steps) {
  const size_t len = r->len;
  float *dx = r->work1, *xp = r->work2, *Dp = r->work3;
  for (int64_t i = 0; i < steps; i++) {
    const double s = sigmas[i], sn = sigmas[i + 1], h = sn - s;
    sparq_status st = diff_denoise(r, xs, s, times[i], r->x0);
    if (st != SPARQ_OK) return st;
    const float *D = r->x0;
    if (sn == 0.0) {
      for (size_t k = 0; k < len; k++) xs[k] = D[k];
      diff_report_step(r, i, xs, sn);
      continue;
    }
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
    for (size_t k = 0; k < len; k++) {
      const double d = ((double)xs[k] - (double)D[k]) / s;
      dx[k] = (float)d;
      xp[k] = (float)((double)xs[k] + h * d);
    }
    st = diff_denoise(r, xp, sn, times[i + 1], Dp);
    if (st != SPARQ_OK) return st;
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
    for (size_t k = 0; k < len; k++) {
      const double d2 = ((double)xp[k] - (double)Dp[k]) / sn;
      xs[k] = (float)((double)xs[k] + 0.5 * h * ((double)dx[k] + d2));
    }
    diff_report_step(r, i, xs, sn);
  }
  return SPARQ_OK;
}
