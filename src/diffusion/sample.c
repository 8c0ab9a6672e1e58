/* The sampling driver: argument checks, the time grid, buffers, the guided
 * network call and the NFE counters. The update rules live one per file. */
#include <math.h>
#include <string.h>

#include "sparq/diffusion.h"
#include "diffusion/diff_internal.h"

static const char *const sampler_names[] = {"ddim", "euler", "heun", "dpmpp2m"};

bool sparq_sampler_from_name(const char *name, sparq_sampler_kind *out) {
  for (int i = 0; name && i < 4; i++)
    if (strcmp(name, sampler_names[i]) == 0) {
      if (out) *out = (sparq_sampler_kind)i;
      return true;
    }
  return false;
}

const char *sparq_sampler_name(sparq_sampler_kind kind) {
  return (unsigned)kind < 4 ? sampler_names[kind] : "unknown";
}

sparq_sample_config sparq_sample_config_default(void) {
  sparq_sample_config c;
  memset(&c, 0, sizeof c);
  c.sampler = SPARQ_SAMPLER_DDIM;
  c.steps = 50;
  c.eta = 0.0f;
  c.cfg_scale = 1.0f;
  c.extra_uncond = 1.0f;
  return c;
}

sparq_status diff_denoise(diff_run *r, const float *xs, double sigma, double t, float *x0) {
  const sparq_diffusion *d = r->d;
  const int64_t n = r->n, rows = r->guided ? 2 * n : n;
  const size_t len = r->len;
  /* The network's own input scale: VP x_t = alpha x~, EDM c_in x~. */
  const double scale = d->kind == SPARQ_DIFF_EDM ? sparq_edm_precond(d, sigma).c_in : 1.0 / sqrt(1.0 + sigma * sigma);
  float *nx = r->net_x;
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
  for (size_t i = 0; i < len; i++) nx[i] = (float)(scale * (double)xs[i]);
  if (r->guided) memcpy(nx + len, nx, len * sizeof(float));
  for (int64_t i = 0; i < rows; i++) r->net_t[i] = (float)t;

  sparq_status st = r->net->eval(r->net->self, r->net_x, r->net_t, r->net_y, r->net_extra, rows, r->net_out);
  r->calls++;
  r->rows += rows;
  r->evals++;
  if (st != SPARQ_OK) return st;

  const float *out = r->net_out;
  const float *ou = r->net_out + len;
  const double w = r->cfg->cfg_scale;
  const bool guided = r->guided;
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
  for (size_t i = 0; i < len; i++) {
    double o = out[i];
    if (guided) o = (double)ou[i] + w * (o - (double)ou[i]);
    x0[i] = (float)diff_head_to_x0(d, o, xs[i], sigma);
  }
  return SPARQ_OK;
}

void diff_report_step(diff_run *r, int64_t step, const float *xs, double sigma_next) {
  const sparq_sample_config *c = r->cfg;
  if (!c->on_step) return;
  const float *x = xs;
  if (r->d->kind == SPARQ_DIFF_VP && sigma_next > 0.0) {
    const double a = 1.0 / sqrt(1.0 + sigma_next * sigma_next);
    for (size_t i = 0; i < r->len; i++) r->work2[i] = (float)(a * (double)xs[i]);
    x = r->work2;
  }
  c->on_step(c->user, step, c->steps, x, r->x0, r->n);
}

/* sigmas [steps + 1] and times [steps] of the run's grid (diffusion.h). */
static sparq_status make_grid(const sparq_diffusion *d, const sparq_sample_config *c, double *sigmas,
                              double *times) {
  const int64_t steps = c->steps;
  if (c->sampler == SPARQ_SAMPLER_DDIM && d->kind == SPARQ_DIFF_VP) {
    const int64_t T = d->num_steps;
    for (int64_t i = 0; i < steps; i++) {
      const int64_t t = (steps - i) * T / steps - 1;
      times[i] = (double)t;
      sigmas[i] = exp(d->log_sigmas[t]);
    }
    sigmas[steps] = 0.0;
    return SPARQ_OK;
  }
  double lo, hi;
  sparq_diffusion_sigma_range(d, &lo, &hi);
  sparq_status st = sparq_karras_sigmas(lo, hi, d->rho, steps, sigmas);
  if (st != SPARQ_OK) return st;
  for (int64_t i = 0; i < steps; i++) times[i] = sparq_diffusion_time_input(d, sigmas[i]);
  /* VP endpoints exactly on the table: the network sees t = 999 and t = 0. */
  if (d->kind == SPARQ_DIFF_VP) {
    times[0] = (double)(d->num_steps - 1);
    if (steps > 1) times[steps - 1] = 0.0;
  }
  return SPARQ_OK;
}

static sparq_status check_args(const sparq_diffusion *d, const sparq_denoiser *net, const sparq_sample_config *c,
                               const int32_t *y, int64_t n, const float *x) {
  if (!d || !net || !c || !y || !x || !net->eval)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: NULL diffusion, network, config, labels or x");
  if (d->kind == SPARQ_DIFF_VP && !d->log_sigmas)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: the VP diffusion is not initialised");
  if (d->kind != SPARQ_DIFF_VP && d->kind != SPARQ_DIFF_EDM)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: unknown diffusion kind %d", (int)d->kind);
  if (n < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: n %lld < 1", (long long)n);
  if (net->dim < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: network dim %lld < 1", (long long)net->dim);
  if ((unsigned)c->sampler > SPARQ_SAMPLER_DPMPP2M)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: unknown sampler %d", (int)c->sampler);
  if (c->steps < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: steps %lld < 1", (long long)c->steps);
  if (c->sampler == SPARQ_SAMPLER_DDIM && d->kind == SPARQ_DIFF_VP && c->steps > d->num_steps)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: DDIM on VP needs steps <= %lld, got %lld",
                      (long long)d->num_steps, (long long)c->steps);
  if (c->steps > (INT64_C(1) << 24))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: steps %lld is absurdly large", (long long)c->steps);
  if (!isfinite(c->cfg_scale))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: cfg_scale %g is not finite", (double)c->cfg_scale);
  if (!(c->eta >= 0.0f) || !isfinite(c->eta))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: eta %g must be finite and >= 0", (double)c->eta);
  size_t len;
  if (!sparq_size_mul((size_t)n, (size_t)net->dim, &len) || !sparq_size_mul(len, 2 * sizeof(float), &len))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_diffusion_sample: n * dim overflows");
  return SPARQ_OK;
}

static void run_free(diff_run *r, double *sigmas, double *times) {
  sparq_free(r->net_x);
  sparq_free(r->net_out);
  sparq_free(r->net_t);
  sparq_free(r->net_y);
  sparq_free(r->net_extra);
  sparq_free(r->x0);
  sparq_free(r->work1);
  sparq_free(r->work2);
  sparq_free(r->work3);
  sparq_free(sigmas);
  sparq_free(times);
}

sparq_status sparq_diffusion_sample(const sparq_diffusion *d, const sparq_denoiser *net,
                                    const sparq_sample_config *cfg, const int32_t *y, int64_t n, float *x,
                                    sparq_sample_stats *stats) {
  const double t_start = sparq_now();
  sparq_status st = check_args(d, net, cfg, y, n, x);
  if (st != SPARQ_OK) return st;

  diff_run r;
  memset(&r, 0, sizeof r);
  r.d = d;
  r.net = net;
  r.cfg = cfg;
  r.y = y;
  r.n = n;
  r.dim = net->dim;
  r.len = (size_t)n * (size_t)net->dim;
  r.guided = cfg->cfg_scale != 1.0f;
  const int64_t rows = r.guided ? 2 * n : n;
  const size_t fl = r.len * sizeof(float), rl = (size_t)rows;
  const int64_t steps = cfg->steps;

  double *sigmas = sparq_alloc((size_t)(steps + 1) * sizeof(double), "sampler sigmas");
  double *times = sparq_alloc((size_t)steps * sizeof(double), "sampler times");
  r.net_x = sparq_alloc(rl * (size_t)r.dim * sizeof(float), "sampler network input");
  r.net_out = sparq_alloc(rl * (size_t)r.dim * sizeof(float), "sampler network output");
  r.net_t = sparq_alloc(rl * sizeof(float), "sampler network times");
  r.net_y = sparq_alloc(rl * sizeof(int32_t), "sampler network labels");
  r.x0 = sparq_alloc(fl, "sampler x0 estimate");
  r.work1 = sparq_alloc(fl, "sampler work");
  r.work2 = sparq_alloc(fl, "sampler work");
  r.work3 = sparq_alloc(fl, "sampler work");
  if (cfg->extra) r.net_extra = sparq_alloc(rl * sizeof(float), "sampler network extra input");
  if (!sigmas || !times || !r.net_x || !r.net_out || !r.net_t || !r.net_y || !r.x0 || !r.work1 || !r.work2 ||
      !r.work3 || (cfg->extra && !r.net_extra)) {
    run_free(&r, sigmas, times);
    return SPARQ_ERR_NOMEM;
  }
  /* Labels and extras never change during the run: fill them once. */
  for (int64_t i = 0; i < n; i++) {
    r.net_y[i] = y[i];
    if (r.guided) r.net_y[n + i] = net->null_class;
    if (cfg->extra) {
      r.net_extra[i] = cfg->extra[i];
      if (r.guided) r.net_extra[n + i] = cfg->extra_uncond;
    }
  }

  st = make_grid(d, cfg, sigmas, times);
  if (st == SPARQ_OK) {
    /* Start: VP x_T = noise at t = 999, i.e. x~ = noise sqrt(1 + sigma^2);
     * EDM x = sigma_max noise. */
    const double s0 = sigmas[0];
    const double scale = d->kind == SPARQ_DIFF_EDM ? s0 : sqrt(1.0 + s0 * s0);
    const size_t len = r.len;
#pragma omp parallel for schedule(static) if (len >= DIFF_PAR_MIN)
    for (size_t i = 0; i < len; i++) x[i] = (float)(scale * (double)x[i]);
    switch (cfg->sampler) {
    case SPARQ_SAMPLER_DDIM: st = diff_sample_ddim(&r, x, sigmas, times, steps); break;
    case SPARQ_SAMPLER_EULER: st = diff_sample_euler(&r, x, sigmas, times, steps); break;
    case SPARQ_SAMPLER_HEUN: st = diff_sample_heun(&r, x, sigmas, times, steps); break;
    default: st = diff_sample_dpmpp2m(&r, x, sigmas, times, steps); break;
    }
  }
  if (stats) {
    stats->nfe = r.evals * (r.guided ? 2 : 1);
    stats->calls = r.calls;
    stats->rows = r.rows;
    stats->seconds = sparq_now() - t_start;
  }
  run_free(&r, sigmas, times);
  return st;
}
