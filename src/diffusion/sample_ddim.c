/* DDIM (Song et al. 2021) in sigma space. With s = sigma_vp / alpha the VP
 * update x_prev = alpha' x0 + sqrt(1 - abar' - c_vp^2) eps + c_vp z becomes,
 * after dividing by alpha',
 *   x~' = D + sqrt(s'^2 - c^2) eps + c z,  c^2 = eta^2 s'^2 (s^2 - s'^2) / s^2,
 * so the same code serves VP (integer timesteps) and EDM (Karras grid). At
 * eta = 0 it is the Euler update of the PF-ODE, first order. */
#include <math.h>

#include "diffusion/diff_internal.h"

sparq_status diff_sample_ddim(diff_run *r, float *xs, const double *sigmas, const double *times, int64_t steps) {
  const size_t len = r->len;
  const double eta = r->cfg->eta;
  float *z = r->work1;
  for (int64_t i = 0; i < steps; i++) {
    const double s = sigmas[i], sn = sigmas[i + 1];
    sparq_status st = diff_denoise(r, xs, s, times[i], r->x0);
    if (st != SPARQ_OK) return st;
    const double c = eta * sn * sqrt((s * s - sn * sn) / (s * s));
    const double keep = sqrt(fmax(sn * sn - c * c, 0.0)) / s; /* multiplies x - D = s eps */
    if (c > 0.0) {
      /* Stream i of the seed: the noise of a step depends on the seed and
       * the step alone, not on threads or on n of earlier calls. */
      sparq_rng rng = sparq_rng_make(r->cfg->seed, (uint64_t)i);
      sparq_rng_fill_normal(&rng, z, len, 0.0f, 1.0f);
    }
    const float *D = r->x0;
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
    for (size_t k = 0; k < len; k++) {
      double v = (double)D[k] + keep * ((double)xs[k] - (double)D[k]);
      if (c > 0.0) v += c * (double)z[k];
      xs[k] = (float)v;
    }
    diff_report_step(r, i, xs, sn);
  }
  return SPARQ_OK;
}
