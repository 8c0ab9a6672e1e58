/* Noise schedules: the DDPM linear-beta VP table, EDM's preconditioning,
 * the VP timestep <-> sigma map and the Karras grid. */
#include <math.h>
#include <string.h>

#include "sparq/diffusion.h"

sparq_status sparq_diffusion_init(sparq_diffusion *d, sparq_diff_kind kind, sparq_diff_pred pred) {
  if (!d) return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_init: d is NULL");
  memset(d, 0, sizeof *d);
  if (kind != SPARQ_DIFF_VP && kind != SPARQ_DIFF_EDM)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_init: unknown kind %d", (int)kind);
  if (pred != SPARQ_PRED_EPS && pred != SPARQ_PRED_X0 && pred != SPARQ_PRED_V)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_init: unknown head parameterisation %d", (int)pred);
  d->kind = kind;
  d->pred = pred;
  d->num_steps = 1000;
  d->beta_start = 1e-4;
  d->beta_end = 0.02;
  d->sigma_data = 0.5;
  d->sigma_min = 0.002;
  d->sigma_max = 80.0;
  d->rho = 7.0;
  d->p_mean = -1.2;
  d->p_std = 1.2;
  if (kind == SPARQ_DIFF_EDM) return SPARQ_OK;

  const int64_t T = d->num_steps;
  d->alphas_cumprod = sparq_alloc((size_t)T * sizeof(double), "diffusion alphas_cumprod");
  d->log_sigmas = sparq_alloc((size_t)T * sizeof(double), "diffusion log_sigmas");
  if (!d->alphas_cumprod || !d->log_sigmas) {
    sparq_diffusion_free(d);
    return SPARQ_ERR_NOMEM;
  }
  /* DDPM's linspace(beta_start, beta_end, T) in double, then a running
   * product. abar stays within [4e-5, 1 - 1e-4], so 1 - abar keeps about 12
   * significant digits and the direct ln sigma formula is accurate. */
  double abar = 1.0;
  for (int64_t t = 0; t < T; t++) {
    const double beta = d->beta_start + (d->beta_end - d->beta_start) * (double)t / (double)(T - 1);
    abar *= 1.0 - beta;
    d->alphas_cumprod[t] = abar;
    d->log_sigmas[t] = 0.5 * log((1.0 - abar) / abar);
  }
  return SPARQ_OK;
}

void sparq_diffusion_free(sparq_diffusion *d) {
  if (!d) return;
  sparq_free(d->alphas_cumprod);
  sparq_free(d->log_sigmas);
  d->alphas_cumprod = NULL;
  d->log_sigmas = NULL;
}

static const char *const kind_names[] = {"vp", "edm"};
static const char *const pred_names[] = {"eps", "x0", "v"};

bool sparq_diff_kind_from_name(const char *name, sparq_diff_kind *out) {
  for (int i = 0; name && i < 2; i++)
    if (strcmp(name, kind_names[i]) == 0) {
      if (out) *out = (sparq_diff_kind)i;
      return true;
    }
  return false;
}

bool sparq_diff_pred_from_name(const char *name, sparq_diff_pred *out) {
  for (int i = 0; name && i < 3; i++)
    if (strcmp(name, pred_names[i]) == 0) {
      if (out) *out = (sparq_diff_pred)i;
      return true;
    }
  return false;
}

const char *sparq_diff_kind_name(sparq_diff_kind kind) {
  return (unsigned)kind < 2 ? kind_names[kind] : "unknown";
}

const char *sparq_diff_pred_name(sparq_diff_pred pred) {
  return (unsigned)pred < 3 ? pred_names[pred] : "unknown";
}

double sparq_diffusion_vp_sigma(const sparq_diffusion *d, double t) {
  if (!d || d->kind != SPARQ_DIFF_VP || !d->log_sigmas) return 0.0;
  const int64_t T = d->num_steps;
  if (!(t > 0.0)) t = 0.0; /* also maps NaN to 0 */
  if (t > (double)(T - 1)) t = (double)(T - 1);
  int64_t i = (int64_t)t;
  if (i >= T - 1) return exp(d->log_sigmas[T - 1]);
  const double f = t - (double)i;
  return exp((1.0 - f) * d->log_sigmas[i] + f * d->log_sigmas[i + 1]);
}

double sparq_diffusion_vp_timestep(const sparq_diffusion *d, double sigma) {
  if (!d || d->kind != SPARQ_DIFF_VP || !d->log_sigmas) return 0.0;
  const int64_t T = d->num_steps;
  const double *ls = d->log_sigmas;
  const double l = sigma > 0.0 ? log(sigma) : ls[0];
  if (!(l > ls[0])) return 0.0;
  if (l >= ls[T - 1]) return (double)(T - 1);
  /* ls is strictly increasing: find i with ls[i] <= l < ls[i + 1]. */
  int64_t lo = 0, hi = T - 1;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (ls[mid] <= l)
      lo = mid;
    else
      hi = mid;
  }
  return (double)lo + (l - ls[lo]) / (ls[lo + 1] - ls[lo]);
}

double sparq_diffusion_time_input(const sparq_diffusion *d, double sigma) {
  if (!d) return 0.0;
  if (d->kind == SPARQ_DIFF_EDM) return 250.0 * log(sigma);
  return sparq_diffusion_vp_timestep(d, sigma);
}

void sparq_diffusion_alpha_sigma(const sparq_diffusion *d, double t, double *alpha, double *sigma_vp) {
  double a = 1.0, s = 0.0;
  if (d && d->kind == SPARQ_DIFF_EDM) {
    s = exp(t / 250.0);
  } else if (d) {
    const double sg = sparq_diffusion_vp_sigma(d, t);
    a = 1.0 / sqrt(1.0 + sg * sg);
    s = sg * a;
  }
  if (alpha) *alpha = a;
  if (sigma_vp) *sigma_vp = s;
}

sparq_edm_scalings sparq_edm_precond(const sparq_diffusion *d, double sigma) {
  const double sd = d ? d->sigma_data : 0.5;
  const double r = sqrt(sigma * sigma + sd * sd);
  sparq_edm_scalings s;
  s.c_skip = sd * sd / (r * r);
  s.c_out = sigma * sd / r;
  s.c_in = 1.0 / r;
  s.c_noise = 250.0 * log(sigma);
  return s;
}

void sparq_diffusion_sigma_range(const sparq_diffusion *d, double *sigma_lo, double *sigma_hi) {
  double lo = 0.0, hi = 0.0;
  if (d && d->kind == SPARQ_DIFF_EDM) {
    lo = d->sigma_min;
    hi = d->sigma_max;
  } else if (d && d->log_sigmas) {
    lo = exp(d->log_sigmas[0]);
    hi = exp(d->log_sigmas[d->num_steps - 1]);
  }
  if (sigma_lo) *sigma_lo = lo;
  if (sigma_hi) *sigma_hi = hi;
}

sparq_status sparq_karras_sigmas(double lo, double hi, double rho, int64_t steps, double *sigmas) {
  if (!sigmas) return sparq_fail(SPARQ_ERR_ARG, "sparq_karras_sigmas: sigmas is NULL");
  if (steps < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_karras_sigmas: steps %lld < 1", (long long)steps);
  if (!(lo > 0.0 && hi > lo && isfinite(hi)))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_karras_sigmas: need 0 < lo < hi, got lo %g hi %g", lo, hi);
  if (!(rho > 0.0 && isfinite(rho))) return sparq_fail(SPARQ_ERR_ARG, "sparq_karras_sigmas: rho %g <= 0", rho);
  const double a = pow(hi, 1.0 / rho), b = pow(lo, 1.0 / rho);
  sigmas[0] = hi;
  for (int64_t i = 1; i < steps; i++) sigmas[i] = pow(a + (double)i / (double)(steps - 1) * (b - a), rho);
  if (steps > 1) sigmas[steps - 1] = lo; /* exact endpoint despite pow rounding */
  sigmas[steps] = 0.0;
  return SPARQ_OK;
}
