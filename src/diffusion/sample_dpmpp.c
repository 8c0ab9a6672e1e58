/* DPM-Solver++(2M) (Lu et al. 2022): multistep, second order, on the data
 * prediction D in lambda = -ln sigma (sigma space has alpha = 1). Exact
 * integration of the linear part gives
 *   x' = (s'/s) x + (1 - s'/s) D_eff,
 * with D_eff = D on the first update and on the last (s' = 0: x' = D),
 * otherwise the linear extrapolation in lambda through the previous D:
 *   D_eff = (1 + 1/(2r)) D - (1/(2r)) D_prev,  r = h_prev / h. */
#include <math.h>
#include <string.h>

#include "diffusion/diff_internal.h"

sparq_status diff_sample_dpmpp2m(diff_run *r, float *xs, const double *sigmas, const double *times,
                                 int64_t steps) {
  const size_t len = r->len;
  float *Dprev = r->work1;
  double h_prev = 0.0;
  for (int64_t i = 0; i < steps; i++) {
    const double s = sigmas[i], sn = sigmas[i + 1];
    sparq_status st = diff_denoise(r, xs, s, times[i], r->x0);
    if (st != SPARQ_OK) return st;
    const float *D = r->x0;
    const double ratio = sn / s;
    double a = 1.0, b = 0.0; /* D_eff = a D + b D_prev */
    double h = 0.0;
    if (sn > 0.0) {
      h = log(s) - log(sn);
      if (i > 0) {
        const double rr = h_prev / h;
        a = 1.0 + 0.5 / rr;
        b = -0.5 / rr;
      }
    }
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
    for (size_t k = 0; k < len; k++) {
      /* b == 0 on the first update, where Dprev holds nothing yet. */
      const double de = b != 0.0 ? a * (double)D[k] + b * (double)Dprev[k] : (double)D[k];
      xs[k] = (float)(ratio * (double)xs[k] + (1.0 - ratio) * de);
    }
    memcpy(Dprev, D, len * sizeof(float));
    h_prev = h;
    diff_report_step(r, i, xs, sn);
  }
  return SPARQ_OK;
}
