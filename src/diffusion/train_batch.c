/* One training batch: noise levels, noisy inputs and the head's regression
 * target for either formulation and any head. */
#include <math.h>

#include "sparq/diffusion.h"
#include "diffusion/diff_internal.h"

/* Row i's VP variables; eps arrives in tgt and leaves as the head target. */
static void vp_row(const sparq_diffusion *d, const float *x0, int64_t t, int64_t dim, float *nx, float *tgt) {
  const double abar = d->alphas_cumprod[t];
  const double a = sqrt(abar), s = sqrt(1.0 - abar);
  for (int64_t j = 0; j < dim; j++) {
    const double e = tgt[j], x = x0[j];
    nx[j] = (float)(a * x + s * e);
    switch (d->pred) {
    case SPARQ_PRED_X0: tgt[j] = (float)x; break;
    case SPARQ_PRED_V: tgt[j] = (float)(a * e - s * x); break;
    default: break; /* eps: already there */
    }
  }
}

/* Row i's EDM variables at noise level sigma. */
static void edm_row(const sparq_diffusion *d, const float *x0, double sigma, int64_t dim, float *nx, float *tgt) {
  const sparq_edm_scalings c = sparq_edm_precond(d, sigma);
  for (int64_t j = 0; j < dim; j++) {
    const double x = (double)x0[j] + sigma * (double)tgt[j];
    nx[j] = (float)(c.c_in * x);
    tgt[j] = (float)(((double)x0[j] - c.c_skip * x) / c.c_out);
  }
}

sparq_status sparq_diffusion_training_batch(const sparq_diffusion *d, const float *x0, int64_t n, int64_t dim,
                                            sparq_rng *rng, float *net_x, float *net_t, float *target,
                                            float *weight) {
  if (!d || !x0 || !rng || !net_x || !net_t || !target || !weight)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_training_batch: NULL argument");
  if (n < 1 || dim < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_training_batch: n %lld and dim %lld must be >= 1",
                      (long long)n, (long long)dim);
  if (d->kind == SPARQ_DIFF_VP && !d->alphas_cumprod)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_training_batch: the VP diffusion is not initialised");
  size_t len;
  if (!sparq_size_mul((size_t)n, (size_t)dim, &len))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_training_batch: n * dim overflows");

  /* Times first, in row order, then all the noise in one counter-based fill:
   * the batch is a function of the rng state alone, whatever the threads.
   * EDM keeps ln sigma in net_t until the rows are built. */
  for (int64_t i = 0; i < n; i++) {
    if (d->kind == SPARQ_DIFF_VP)
      net_t[i] = (float)sparq_rng_below(rng, (uint64_t)d->num_steps);
    else
      net_t[i] = (float)(d->p_mean + d->p_std * (double)sparq_rng_normal(rng));
    weight[i] = 1.0f;
  }
  sparq_rng_fill_normal(rng, target, len, 0.0f, 1.0f);

#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float *xr = x0 + (size_t)i * (size_t)dim;
    float *nx = net_x + (size_t)i * (size_t)dim, *tg = target + (size_t)i * (size_t)dim;
    if (d->kind == SPARQ_DIFF_VP) {
      vp_row(d, xr, (int64_t)net_t[i], dim, nx, tg);
    } else {
      const double sigma = exp((double)net_t[i]);
      edm_row(d, xr, sigma, dim, nx, tg);
      net_t[i] = (float)(250.0 * log(sigma));
    }
  }
  return SPARQ_OK;
}
