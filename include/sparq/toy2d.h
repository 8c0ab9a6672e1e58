/* The 2-D class-conditional Gaussian mixture of spec gft.md section 8.1,
 * with its exact quantities: densities, class posteriors, and the exact
 * posterior mean E[x0 | x_t] and eps of every noise level, which give an
 * exact "network" to test samplers and guidance against.
 *
 * Class c has density p(x|c) = sum_k w_k N(x; mu_k, s_k^2 I) over its
 * components; the marginal is p(x) = sum_c prior_c p(x|c). Under
 * x_t = alpha x0 + sigma eps each component becomes
 * N(alpha mu_k, (alpha^2 s_k^2 + sigma^2) I), so everything stays closed form.
 * All math runs in double. */
#ifndef SPARQ_TOY2D_H
#define SPARQ_TOY2D_H

#include <stdint.h>

#include "sparq/base.h"
#include "sparq/diffusion.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPARQ_TOY2D_CLASSES 4
#define SPARQ_TOY2D_MAX_COMPONENTS 16

typedef struct sparq_toy2d_component {
  int32_t cls;    /* 0..SPARQ_TOY2D_CLASSES-1 */
  double weight;  /* within its class; a class's weights sum to 1 */
  double mean[2];
  double std;     /* isotropic */
} sparq_toy2d_component;

typedef struct sparq_toy2d {
  int ncomp;
  sparq_toy2d_component comp[SPARQ_TOY2D_MAX_COMPONENTS];
  double class_prior[SPARQ_TOY2D_CLASSES]; /* sums to 1 */
} sparq_toy2d;

/* The default toy: 4 classes of 2-3 isotropic components each (std
 * 0.15-0.3), means on arcs around the origin (radius 0.6-1.0) whose ends
 * overlap the neighbouring classes, equal class priors. */
void sparq_toy2d_default(sparq_toy2d *toy);

/* x [n, 2]: row i drawn from class cls[i] (the marginal when cls[i] < 0 or
 * cls[i] >= SPARQ_TOY2D_CLASSES), sequentially from rng. */
void sparq_toy2d_sample(const sparq_toy2d *toy, const int32_t *cls, int64_t n, sparq_rng *rng, float *x);

/* Exact posterior mean d [n, 2] = E[x0 | x_t = xt[i]] under
 * x_t = alpha x0 + sigma eps, given class cls[i] (the marginal over classes
 * when cls[i] < 0 or cls[i] >= SPARQ_TOY2D_CLASSES, so the null class
 * SPARQ_TOY2D_CLASSES is unconditional). alpha > 0, sigma >= 0. */
void sparq_toy2d_posterior_mean(const sparq_toy2d *toy, const float *xt, const int32_t *cls, int64_t n,
                                double alpha, double sigma, double *d);
/* Exact eps [n, 2] = (x_t - alpha D) / sigma = -sigma grad ln p_t(x_t | c),
 * evaluated without the cancellation of that formula. sigma > 0. */
void sparq_toy2d_exact_eps(const sparq_toy2d *toy, const float *xt, const int32_t *cls, int64_t n, double alpha,
                           double sigma, float *eps);
/* ln p_t(x_t | c) of the noisy variable (marginal for cls out of range);
 * alpha = 1, sigma = 0 gives the data density. */
double sparq_toy2d_log_density_t(const sparq_toy2d *toy, const double x[2], int32_t cls, double alpha,
                                 double sigma);
/* ln p(x | c) of the data (t = 0); the marginal for cls < 0 or >= K. */
double sparq_toy2d_log_density(const sparq_toy2d *toy, const float x[2], int32_t cls);
/* p(c | x) of the data for every class. */
void sparq_toy2d_class_posterior(const sparq_toy2d *toy, const float x[2], double post[SPARQ_TOY2D_CLASSES]);

/* The exact network for a diffusion d, as a sparq_denoiser (dim 2,
 * null_class SPARQ_TOY2D_CLASSES = marginal): it maps the network time input
 * back to (alpha, sigma_vp) with sparq_diffusion_alpha_sigma and writes the
 * exact head output for d's head: VP eps, x0 or v per d->pred; EDM the
 * F-target (D - c_skip x~) / c_out. It ignores `extra`. The denoiser's self
 * points to *bind, which keeps pointers to toy and d: all three must outlive
 * the denoiser. */
typedef struct sparq_toy2d_exact {
  const sparq_toy2d *toy;
  const sparq_diffusion *diff;
} sparq_toy2d_exact;
void sparq_toy2d_exact_denoiser(sparq_toy2d_exact *bind, const sparq_toy2d *toy, const sparq_diffusion *d,
                                sparq_denoiser *out);

#ifdef __cplusplus
}
#endif
#endif
