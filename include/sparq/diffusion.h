/* Diffusion models: the two formulations (DDPM's variance-preserving VP
 * schedule and EDM/Karras), the three head parameterisations (eps, x0, v),
 * training batches, and the samplers (DDIM, Euler, Heun, DPM-Solver++(2M))
 * with classifier-free guidance and exact NFE counts.
 *
 * Notation. A noisy sample is x_t = alpha x0 + sigma_vp eps (VP, alpha^2 +
 * sigma_vp^2 = 1) or x = x0 + sigma eps (EDM, alpha = 1). Every sampler runs
 * in the "sigma space" of EDM: x~ = x_t / alpha, sigma = sigma_vp / alpha =
 * sqrt((1 - abar) / abar), so one probability-flow ODE
 *   dx~/dsigma = (x~ - D(x~, sigma)) / sigma = eps
 * serves both formulations; D is the x0 estimate. A network is only ever fed
 * its own variables (VP: x_t and a timestep; EDM: c_in x~ and c_noise).
 *
 * Time inputs of the network (net_t):
 *   VP:  the DDPM timestep t in [0, 999] as a float. Training and DDIM use
 *        integers; Euler, Heun and DPM-Solver++ use continuous t found by
 *        linear interpolation of ln sigma(t) between the integer steps
 *        (k-diffusion's convention), so a network sees t in its trained range.
 *   EDM: c_noise = 250 ln sigma (analytic-precond.md section 1).
 *
 * Heads (sparq_diff_pred) for VP: eps, x0 or v = alpha eps - sigma_vp x0.
 * EDM always uses its preconditioned head F with
 *   D = c_skip x~ + c_out F(c_in x~, c_noise),
 *   c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
 *   c_in = 1 / sqrt(sigma^2 + sd^2), sd = sigma_data;
 * for EDM `pred` is recorded but does not change the head (F already
 * interpolates between -eps at small sigma and x0 / sd at large sigma). */
#ifndef SPARQ_DIFFUSION_H
#define SPARQ_DIFFUSION_H

#include <stdbool.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_diff_kind { SPARQ_DIFF_VP = 0, SPARQ_DIFF_EDM = 1 } sparq_diff_kind;
typedef enum sparq_diff_pred { SPARQ_PRED_EPS = 0, SPARQ_PRED_X0 = 1, SPARQ_PRED_V = 2 } sparq_diff_pred;

typedef struct sparq_diffusion {
  sparq_diff_kind kind;
  sparq_diff_pred pred; /* VP head; ignored by EDM (see above) */
  /* VP: DDPM linear beta schedule beta_t = beta_start .. beta_end over
   * num_steps, abar_t = prod_{s <= t} (1 - beta_s). */
  int64_t num_steps;      /* 1000 */
  double beta_start;      /* 1e-4 */
  double beta_end;        /* 0.02 */
  double *alphas_cumprod; /* [num_steps] abar_t, owned (NULL for EDM) */
  double *log_sigmas;     /* [num_steps] ln sqrt((1 - abar_t) / abar_t), owned (NULL for EDM) */
  /* EDM: */
  double sigma_data; /* 0.5 */
  double sigma_min;  /* 0.002 */
  double sigma_max;  /* 80 */
  double rho;        /* 7, Karras grid exponent; also used for VP Karras grids */
  double p_mean;     /* -1.2: training ln sigma ~ N(p_mean, p_std^2) */
  double p_std;      /* 1.2 */
} sparq_diffusion;

/* Fills *d with the defaults above for `kind` and `pred` (VP builds its
 * tables). Fails with SPARQ_ERR_ARG on an unknown kind or pred. Free with
 * sparq_diffusion_free (safe on a zeroed struct and twice). */
sparq_status sparq_diffusion_init(sparq_diffusion *d, sparq_diff_kind kind, sparq_diff_pred pred);
void sparq_diffusion_free(sparq_diffusion *d);

/* "vp", "edm"; "eps", "x0", "v". from_name returns false on an unknown name. */
bool sparq_diff_kind_from_name(const char *name, sparq_diff_kind *out);
bool sparq_diff_pred_from_name(const char *name, sparq_diff_pred *out);
const char *sparq_diff_kind_name(sparq_diff_kind kind);
const char *sparq_diff_pred_name(sparq_diff_pred pred);

/* -------------------------------------------------- schedule helpers */

/* VP: sigma space value sqrt((1 - abar) / abar) at a continuous timestep
 * t in [0, num_steps - 1] (ln sigma interpolated linearly between integers;
 * t is clamped into range), and its inverse (sigma clamped into the table's
 * range). Both return 0 for an EDM diffusion. */
double sparq_diffusion_vp_sigma(const sparq_diffusion *d, double t);
double sparq_diffusion_vp_timestep(const sparq_diffusion *d, double sigma);

/* The network time input for sigma-space noise level sigma > 0:
 * VP the (continuous) timestep, EDM 250 ln sigma. */
double sparq_diffusion_time_input(const sparq_diffusion *d, double sigma);
/* Inverse of sparq_diffusion_time_input: the (alpha, sigma_vp) of the noisy
 * variable the network sees for time input t, i.e. VP alpha = sqrt(abar),
 * sigma_vp = sqrt(1 - abar); EDM alpha = 1, sigma_vp = exp(t / 250). */
void sparq_diffusion_alpha_sigma(const sparq_diffusion *d, double t, double *alpha, double *sigma_vp);

/* EDM preconditioning at noise level sigma (uses d->sigma_data). */
typedef struct sparq_edm_scalings {
  double c_skip, c_out, c_in, c_noise;
} sparq_edm_scalings;
sparq_edm_scalings sparq_edm_precond(const sparq_diffusion *d, double sigma);

/* The sampling range in sigma space: EDM [sigma_min, sigma_max]; VP
 * [sigma(0), sigma(num_steps - 1)] (about 0.01 and 157). */
void sparq_diffusion_sigma_range(const sparq_diffusion *d, double *sigma_lo, double *sigma_hi);

/* Karras et al. grid, descending, steps + 1 entries:
 *   sigmas[i] = (hi^(1/rho) + i / (steps - 1) (lo^(1/rho) - hi^(1/rho)))^rho, i < steps,
 *   sigmas[steps] = 0 (steps == 1: sigmas = {hi, 0}).
 * Fails with SPARQ_ERR_ARG on steps < 1, 0 < lo < hi violated, rho <= 0. */
sparq_status sparq_karras_sigmas(double lo, double hi, double rho, int64_t steps, double *sigmas);

/* ------------------------------------------------------ training batch */

/* For n rows of `dim` floats of clean data x0, draws each row's time and
 * noise from rng (first the n times in row order, then the n * dim normals
 * through sparq_rng_fill_normal, so results do not depend on the thread
 * count) and writes:
 *   net_x  [n, dim]  the network input: VP alpha x0 + sigma_vp eps with
 *                    t ~ U{0..999}; EDM c_in (x0 + sigma eps) with
 *                    ln sigma ~ N(p_mean, p_std^2);
 *   net_t  [n]       the network time input (VP t as a float; EDM c_noise);
 *   target [n, dim]  the regression target of the head: VP eps, x0 or
 *                    v = alpha eps - sigma_vp x0 per d->pred; EDM the
 *                    F-target (x0 - c_skip x) / c_out, x = x0 + sigma eps;
 *   weight [n]       per-row loss weight: 1 everywhere. (EDM's
 *                    lambda(sigma) = 1 / c_out^2 cancels the c_out^2 that
 *                    the F-target's scale carries, so the weighted loss
 *                    lambda ||D - x0||^2 equals ||F - target||^2.)
 * The loss is mean over rows of weight * mean over dim (out - target)^2.
 * Fails with SPARQ_ERR_ARG on NULL pointers, n < 1 or dim < 1. */
sparq_status sparq_diffusion_training_batch(const sparq_diffusion *d, const float *x0, int64_t n, int64_t dim,
                                            sparq_rng *rng, float *net_x, float *net_t, float *target,
                                            float *weight);

/* ----------------------------------------------------------- samplers */

/* A network as the samplers see it. */
typedef struct sparq_denoiser {
  void *self;
  /* Writes the raw head output out [n, dim] for network input x [n, dim],
   * time input t [n], labels y [n] (null_class = unconditional) and extra [n]
   * (NULL when the sampler has no extra scalar to feed). */
  sparq_status (*eval)(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                       int64_t n, float *out);
  int64_t dim;
  int32_t null_class;
} sparq_denoiser;

typedef enum sparq_sampler_kind {
  SPARQ_SAMPLER_DDIM = 0,    /* DDIM (Song et al.), eta >= 0 */
  SPARQ_SAMPLER_EULER = 1,   /* Euler on the PF-ODE, Karras grid */
  SPARQ_SAMPLER_HEUN = 2,    /* EDM's Heun (2nd order), Karras grid */
  SPARQ_SAMPLER_DPMPP2M = 3, /* DPM-Solver++(2M), Karras grid */
} sparq_sampler_kind;

/* "ddim", "euler", "heun", "dpmpp2m". */
bool sparq_sampler_from_name(const char *name, sparq_sampler_kind *out);
const char *sparq_sampler_name(sparq_sampler_kind kind);

/* Time grids (steps = number of updates; the last update lands on sigma 0
 * and returns the x0 estimate there):
 *   DDIM on VP: the integer timesteps t_i = floor((steps - i) 1000 / steps) - 1,
 *     i = 0..steps-1 (999 first, evenly spaced, "trailing"), then abar = 1;
 *     steps <= num_steps.
 *   Everything else: the Karras grid (rho = d->rho) over
 *     sparq_diffusion_sigma_range, then sigma = 0. For VP this starts at
 *     sigma(999), the same point DDIM starts at, so all samplers solve one ODE.
 * Heun skips its second evaluation on the last update (to sigma = 0), as EDM
 * does: 2 steps - 1 evaluations. */
typedef struct sparq_sample_config {
  sparq_sampler_kind sampler;
  int64_t steps; /* >= 1 */
  float eta;     /* DDIM only: 0 deterministic (ODE), 1 DDPM-like; >= 0 */
  /* Classifier-free guidance, eps_w = eps_u + w (eps_c - eps_u), combined on
   * the raw head outputs (every head is affine in eps for a fixed x_t, so
   * this is the same for eps, x0, v and F heads). w == 1: plain conditional,
   * one evaluation of n rows per network call. w != 1 (w < 1 is allowed and
   * extrapolates toward the unconditional model, w = 0 is unconditional):
   * conditional rows [0, n) and unconditional rows (label null_class)
   * [n, 2n) go to ONE eval call of 2n rows. Must be finite. */
  float cfg_scale;
  /* Per-row extra scalar [n] for the conditional rows (e.g. GFT's gft_beta),
   * or NULL (then eval gets extra = NULL). Unconditional rows get extra_uncond. */
  const float *extra;
  float extra_uncond;
  uint64_t seed; /* noise of DDIM eta > 0: step i draws stream i of this seed */
  /* Optional per-step callback (trajectories, GIFs), called after update
   * `step` (0-based) of `steps` with the new state x in the model's own
   * variable (VP x_t = alpha x~; EDM x) and the x0 estimate that update used,
   * [n, dim] each. NULL: none. */
  void (*on_step)(void *user, int64_t step, int64_t steps, const float *x, const float *x0_hat, int64_t n);
  void *user;
} sparq_sample_config;

/* DDIM, 50 steps, eta 0, cfg 1, no extra (extra_uncond 1: GFT feeds the
 * unconditional call gft_beta = 1), seed 0, no callback. */
sparq_sample_config sparq_sample_config_default(void);

typedef struct sparq_sample_stats {
  int64_t nfe;    /* network evaluations per sample: steps (Heun 2 steps - 1), x2 with CFG */
  int64_t calls;  /* eval() invocations */
  int64_t rows;   /* rows evaluated in total (n per call, 2n with CFG) */
  double seconds; /* wall time of the whole call */
} sparq_sample_stats;

/* Draws samples for labels y [n] starting from unit Gaussian noise x [n, dim]
 * (scaled internally: VP x_T = noise at t = 999, i.e. x~ = noise / alpha_999;
 * EDM x = sigma_max noise), overwriting x with the samples. stats may be NULL.
 * Fails with SPARQ_ERR_ARG on NULL pointers, n < 1, steps < 1, a non-finite
 * or negative eta, a non-finite cfg_scale, net->dim < 1, or DDIM on VP with
 * steps > num_steps; returns the status of a failing eval() unchanged. */
sparq_status sparq_diffusion_sample(const sparq_diffusion *d, const sparq_denoiser *net,
                                    const sparq_sample_config *cfg, const int32_t *y, int64_t n, float *x,
                                    sparq_sample_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
