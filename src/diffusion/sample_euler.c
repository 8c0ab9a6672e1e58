/* Euler on the probability-flow ODE dx~/dsigma = (x~ - D) / sigma. */
#include "diffusion/diff_internal.h"

sparq_status diff_sample_euler(diff_run *r, float *xs, const double *sigmas, const double *times, int64_t steps) {
  const size_t len = r->len;
  for (int64_t i = 0; i < steps; i++) {
    const double s = sigmas[i], sn = sigmas[i + 1];
    sparq_status st = diff_denoise(r, xs, s, times[i], r->x0);
    if (st != SPARQ_OK) return st;
    /* x + (sn - s)(x - D)/s written as D + (sn/s)(x - D): the last update
     * (sn = 0) returns D exactly. */
    const double ratio = sn / s;
    const float *D = r->x0;
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
    for (size_t k = 0; k < len; k++) xs[k] = (float)((double)D[k] + ratio * ((double)xs[k] - (double)D[k]));
    diff_report_step(r, i, xs, sn);
  }
  return SPARQ_OK;
}
