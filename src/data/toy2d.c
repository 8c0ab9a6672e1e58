/* The 2-D class-conditional Gaussian mixture (gft.md section 8.1) and its
 * exact noisy-data quantities, the ground truth for samplers and guidance. */
#include <math.h>
#include <string.h>

#include "sparq/toy2d.h"

#define K SPARQ_TOY2D_CLASSES
/* Rows are independent and cost ~1 us each (a dozen exp/log), so batches
 * from this size on are split over threads; results stay bitwise the same. */
#define TOY_PAR_MIN 512

static void add_comp(sparq_toy2d *toy, int32_t cls, double weight, double radius, double angle, double std) {
  sparq_toy2d_component *c = &toy->comp[toy->ncomp++];
  c->cls = cls;
  c->weight = weight;
  c->mean[0] = radius * cos(angle);
  c->mean[1] = radius * sin(angle);
  c->std = std;
}

void sparq_toy2d_default(sparq_toy2d *toy) {
  if (!toy) return;
  memset(toy, 0, sizeof *toy);
  const double q = 1.5707963267948966; /* a quarter turn: class c's arc is centred at c q */
  /* Outer classes 0 and 2 span +-0.9 rad at radius 1; inner classes 1 and 3
   * span +-0.6 rad at radius 0.6. Arc ends of neighbours come within about
   * two stds of each other, so the classes overlap where guidance matters. */
  add_comp(toy, 0, 0.3, 1.0, 0 * q - 0.9, 0.20);
  add_comp(toy, 0, 0.4, 1.0, 0 * q, 0.20);
  add_comp(toy, 0, 0.3, 1.0, 0 * q + 0.9, 0.20);
  add_comp(toy, 1, 0.5, 0.6, 1 * q - 0.6, 0.15);
  add_comp(toy, 1, 0.5, 0.6, 1 * q + 0.6, 0.15);
  add_comp(toy, 2, 0.25, 1.0, 2 * q - 0.9, 0.25);
  add_comp(toy, 2, 0.5, 1.0, 2 * q, 0.25);
  add_comp(toy, 2, 0.25, 1.0, 2 * q + 0.9, 0.25);
  add_comp(toy, 3, 0.6, 0.6, 3 * q - 0.6, 0.30);
  add_comp(toy, 3, 0.4, 0.6, 3 * q + 0.6, 0.18);
  for (int c = 0; c < K; c++) toy->class_prior[c] = 1.0 / K;
}

static bool is_class(int32_t cls) { return cls >= 0 && cls < K; }

/* Mixture weight of component k given class cls (0 if it belongs to another
 * class); the marginal weighs by the class prior. */
static double comp_weight(const sparq_toy2d *toy, int k, int32_t cls) {
  const sparq_toy2d_component *c = &toy->comp[k];
  if (is_class(cls)) return c->cls == cls ? c->weight : 0.0;
  return toy->class_prior[c->cls] * c->weight;
}

void sparq_toy2d_sample(const sparq_toy2d *toy, const int32_t *cls, int64_t n, sparq_rng *rng, float *x) {
  if (!toy || !cls || !rng || !x) return;
  for (int64_t i = 0; i < n; i++) {
    int32_t c = cls[i];
    if (!is_class(c)) { /* draw the class from the prior */
      double u = sparq_rng_uniform(rng), acc = 0.0;
      c = K - 1;
      for (int j = 0; j < K; j++) {
        acc += toy->class_prior[j];
        if (u < acc) {
          c = j;
          break;
        }
      }
    }
    double u = sparq_rng_uniform(rng), acc = 0.0;
    int pick = -1;
    for (int k = 0; k < toy->ncomp; k++) {
      if (toy->comp[k].cls != c) continue;
      pick = k;
      acc += toy->comp[k].weight;
      if (u < acc) break;
    }
    if (pick < 0) { /* a class without components: leave a defined value */
      x[2 * i] = x[2 * i + 1] = 0.0f;
      continue;
    }
    const sparq_toy2d_component *p = &toy->comp[pick];
    const double z0 = sparq_rng_normal(rng), z1 = sparq_rng_normal(rng);
    x[2 * i] = (float)(p->mean[0] + p->std * z0);
    x[2 * i + 1] = (float)(p->mean[1] + p->std * z1);
  }
}

/* The mixture seen through x_t = alpha x0 + sigma eps: component k becomes
 * N(alpha mu_k, v_k I), v_k = alpha^2 s_k^2 + sigma^2. Everything that does
 * not depend on x_t is computed once per noise level, so a row costs one
 * exp per component of its class. */
typedef struct noisy_mix {
  double alpha, sigma;
  int ncomp;
  double lw[K + 1][SPARQ_TOY2D_MAX_COMPONENTS]; /* ln pi_k - ln(2 pi v_k); -inf outside the class; row K: marginal */
  double inv_v[SPARQ_TOY2D_MAX_COMPONENTS];
  double gain[SPARQ_TOY2D_MAX_COMPONENTS]; /* alpha s_k^2 / v_k, the component's Wiener gain */
  double am[SPARQ_TOY2D_MAX_COMPONENTS][2]; /* alpha mu_k */
} noisy_mix;

static void noisy_setup(noisy_mix *m, const sparq_toy2d *toy, double alpha, double sigma) {
  m->alpha = alpha;
  m->sigma = sigma;
  m->ncomp = toy->ncomp < SPARQ_TOY2D_MAX_COMPONENTS ? toy->ncomp : SPARQ_TOY2D_MAX_COMPONENTS;
  for (int k = 0; k < m->ncomp; k++) {
    const sparq_toy2d_component *c = &toy->comp[k];
    const double v = alpha * alpha * c->std * c->std + sigma * sigma;
    const double ln_norm = -log(2.0 * M_PI * v);
    m->inv_v[k] = 1.0 / v;
    m->gain[k] = alpha * c->std * c->std / v;
    m->am[k][0] = alpha * c->mean[0];
    m->am[k][1] = alpha * c->mean[1];
    for (int j = 0; j <= K; j++) {
      const double w = comp_weight(toy, k, j);
      m->lw[j][k] = w > 0.0 ? log(w) + ln_norm : -INFINITY;
    }
  }
}

/* Row K of lw is the marginal: any label outside 0..K-1 maps there. */
static int mix_row(int32_t cls) { return is_class(cls) ? cls : K; }

/* ln p_t(x | cls) and, if r is not NULL, the responsibilities r[k]. */
static double noisy_terms(const noisy_mix *m, const double x[2], int32_t cls, double *r) {
  const double *lw = m->lw[mix_row(cls)];
  double l[SPARQ_TOY2D_MAX_COMPONENTS], mx = -INFINITY;
  for (int k = 0; k < m->ncomp; k++) {
    if (lw[k] == -INFINITY) {
      l[k] = -INFINITY;
      continue;
    }
    const double dx = x[0] - m->am[k][0], dy = x[1] - m->am[k][1];
    l[k] = lw[k] - 0.5 * (dx * dx + dy * dy) * m->inv_v[k];
    if (l[k] > mx) mx = l[k];
  }
  if (mx == -INFINITY) return -INFINITY;
  double s = 0.0;
  for (int k = 0; k < m->ncomp; k++) {
    const double e = l[k] == -INFINITY ? 0.0 : exp(l[k] - mx);
    if (r) r[k] = e;
    s += e;
  }
  if (r)
    for (int k = 0; k < m->ncomp; k++) r[k] /= s;
  return mx + log(s);
}

double sparq_toy2d_log_density_t(const sparq_toy2d *toy, const double x[2], int32_t cls, double alpha,
                                 double sigma) {
  if (!toy || !x) return -INFINITY;
  noisy_mix m;
  noisy_setup(&m, toy, alpha, sigma);
  return noisy_terms(&m, x, cls, NULL);
}

double sparq_toy2d_log_density(const sparq_toy2d *toy, const float x[2], int32_t cls) {
  if (!x) return -INFINITY;
  const double xd[2] = {x[0], x[1]};
  return sparq_toy2d_log_density_t(toy, xd, cls, 1.0, 0.0);
}

void sparq_toy2d_class_posterior(const sparq_toy2d *toy, const float x[2], double post[K]) {
  if (!toy || !x || !post) return;
  double l[K], mx = -INFINITY, s = 0.0;
  for (int c = 0; c < K; c++) {
    l[c] = toy->class_prior[c] > 0.0 ? log(toy->class_prior[c]) + sparq_toy2d_log_density(toy, x, c) : -INFINITY;
    if (l[c] > mx) mx = l[c];
  }
  for (int c = 0; c < K; c++) {
    post[c] = mx > -INFINITY && l[c] > -INFINITY ? exp(l[c] - mx) : 0.0;
    s += post[c];
  }
  for (int c = 0; c < K; c++) post[c] = s > 0.0 ? post[c] / s : 1.0 / K;
}

/* Posterior mean of x0 (d) and, without cancellation, the scaled residual
 * g = (x_t - alpha D) / sigma^2 = sum_k r_k (x_t - alpha mu_k) / v_k. */
static void posterior_row(const noisy_mix *m, const sparq_toy2d *toy, const double x[2], int32_t cls, double d[2],
                          double g[2]) {
  double r[SPARQ_TOY2D_MAX_COMPONENTS];
  d[0] = d[1] = g[0] = g[1] = 0.0;
  if (noisy_terms(m, x, cls, r) == -INFINITY) return;
  for (int k = 0; k < m->ncomp; k++) {
    if (r[k] == 0.0) continue;
    for (int j = 0; j < 2; j++) {
      const double res = x[j] - m->am[k][j];
      d[j] += r[k] * (toy->comp[k].mean[j] + m->gain[k] * res);
      g[j] += r[k] * res * m->inv_v[k];
    }
  }
}

void sparq_toy2d_posterior_mean(const sparq_toy2d *toy, const float *xt, const int32_t *cls, int64_t n,
                                double alpha, double sigma, double *d) {
  if (!toy || !xt || !cls || !d) return;
  noisy_mix m;
  noisy_setup(&m, toy, alpha, sigma);
#pragma omp parallel for schedule(static) if (n >= TOY_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const double x[2] = {xt[2 * i], xt[2 * i + 1]};
    double g[2];
    posterior_row(&m, toy, x, cls[i], d + 2 * i, g);
  }
}

void sparq_toy2d_exact_eps(const sparq_toy2d *toy, const float *xt, const int32_t *cls, int64_t n, double alpha,
                           double sigma, float *eps) {
  if (!toy || !xt || !cls || !eps) return;
  noisy_mix m;
  noisy_setup(&m, toy, alpha, sigma);
#pragma omp parallel for schedule(static) if (n >= TOY_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const double x[2] = {xt[2 * i], xt[2 * i + 1]};
    double d[2], g[2];
    posterior_row(&m, toy, x, cls[i], d, g);
    eps[2 * i] = (float)(sigma * g[0]);
    eps[2 * i + 1] = (float)(sigma * g[1]);
  }
}

/* One row of the exact network; m caches the noise level of the previous
 * row (samplers give every row of a call the same time). */
static void exact_row(const sparq_toy2d_exact *b, noisy_mix *m, float *cached_t, const float *x, float t,
                      int32_t y, float *out) {
  const sparq_diffusion *dif = b->diff;
  if (t != *cached_t) {
    double a, s;
    sparq_diffusion_alpha_sigma(dif, (double)t, &a, &s);
    noisy_setup(m, b->toy, a, s);
    *cached_t = t;
  }
  const double alpha = m->alpha, sigma = m->sigma;
  double xs[2] = {x[0], x[1]};
  sparq_edm_scalings c = {0, 0, 0, 0};
  if (dif->kind == SPARQ_DIFF_EDM) { /* the network sees c_in x~ */
    c = sparq_edm_precond(dif, sigma);
    xs[0] /= c.c_in;
    xs[1] /= c.c_in;
  }
  double d[2], g[2];
  posterior_row(m, b->toy, xs, y, d, g);
  for (int j = 0; j < 2; j++) {
    const double e = sigma * g[j];
    double o;
    if (dif->kind == SPARQ_DIFF_EDM)
      o = (d[j] - c.c_skip * xs[j]) / c.c_out;
    else if (dif->pred == SPARQ_PRED_X0)
      o = d[j];
    else if (dif->pred == SPARQ_PRED_V)
      o = alpha * e - sigma * d[j];
    else
      o = e;
    out[j] = (float)o;
  }
}

/* sparq_denoiser.eval of the exact network. */
static sparq_status exact_eval(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                               int64_t n, float *out) {
  (void)extra;
  const sparq_toy2d_exact *b = self;
  if (!b || !b->toy || !b->diff || !x || !t || !y || !out || n < 0)
    return sparq_fail(SPARQ_ERR_ARG, "toy2d exact denoiser: NULL binding or buffer, or n < 0");
#pragma omp parallel if (n >= TOY_PAR_MIN)
  {
    noisy_mix m;
    float cached_t = NAN; /* never equal: the first row sets the cache up */
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) exact_row(b, &m, &cached_t, x + 2 * i, t[i], y[i], out + 2 * i);
  }
  return SPARQ_OK;
}

void sparq_toy2d_exact_denoiser(sparq_toy2d_exact *bind, const sparq_toy2d *toy, const sparq_diffusion *d,
                                sparq_denoiser *out) {
  if (!bind || !out) return;
  bind->toy = toy;
  bind->diff = d;
  out->self = bind;
  out->eval = exact_eval;
  out->dim = 2;
  out->null_class = K;
}
