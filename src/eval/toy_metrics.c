/* The 2-D toy's exact metrics (spec gft.md section 8.1): (i) the epsilon
 * error of a network against the exact guided eps, and (ii)-(vii) the
 * metrics of one class's samples at one sweep point. */
#include <math.h>
#include <string.h>

#include "sparq/toy_metrics.h"

#define K SPARQ_TOY2D_CLASSES
/* Rows below this stay on the calling thread (a parallel region costs
 * microseconds; a row of the energy sums costs about n nanoseconds). */
#define PAIR_PAR_MIN 256

sparq_toy_eps_config sparq_toy_eps_config_default(void) {
  sparq_toy_eps_config c = {.w = 1.0f, .gft = false, .n = 10000, .seed = 0};
  return c;
}

/* ------------------------------------------------------ head -> eps */

/* The network's noisy variable and noise level for time input t: the point
 * the exact eps is evaluated at (VP x_t with alpha, sigma_vp; EDM x = net_x
 * / c_in with alpha 1, sigma) and the head's eps there. */
typedef struct eps_point {
  double alpha, sigma;
  double xt[2];
} eps_point;

static eps_point network_point(const sparq_diffusion *d, const float *net_x, float t) {
  eps_point p;
  sparq_diffusion_alpha_sigma(d, (double)t, &p.alpha, &p.sigma);
  double scale = 1.0; /* net_x = scale x */
  if (d->kind == SPARQ_DIFF_EDM) scale = sparq_edm_precond(d, p.sigma).c_in;
  p.xt[0] = (double)net_x[0] / scale;
  p.xt[1] = (double)net_x[1] / scale;
  return p;
}

/* eps from a raw head output h at p (every head is affine in eps there):
 *   VP eps: h;  x0: (x_t - alpha h) / sigma;  v = alpha eps - sigma x0:
 *   eps = sigma x_t + alpha v (alpha^2 + sigma^2 = 1);
 *   EDM: D = c_skip x + c_out h, eps = (x - D) / sigma. */
static double head_to_eps(const sparq_diffusion *d, const eps_point *p, int j, double h) {
  if (d->kind == SPARQ_DIFF_EDM) {
    const sparq_edm_scalings s = sparq_edm_precond(d, p->sigma);
    return (p->xt[j] - (s.c_skip * p->xt[j] + s.c_out * h)) / p->sigma;
  }
  switch (d->pred) {
  case SPARQ_PRED_X0: return (p->xt[j] - p->alpha * h) / p->sigma;
  case SPARQ_PRED_V: return p->sigma * p->xt[j] + p->alpha * h;
  default: return h;
  }
}

/* ------------------------------------------------- (i) epsilon error */

typedef struct eps_bufs {
  int32_t *y, *in_y;
  float *x0, *net_x, *net_t, *target, *weight, *in_x, *in_t, *extra, *out;
} eps_bufs;

static void eps_bufs_free(eps_bufs *b) {
  void *all[] = {b->y, b->in_y, b->x0, b->net_x, b->net_t, b->target, b->weight, b->in_x, b->in_t, b->extra, b->out};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sparq_free(all[i]);
}

static sparq_status eps_bufs_alloc(eps_bufs *b, int64_t n, int64_t rows) {
  memset(b, 0, sizeof *b);
  const size_t r = (size_t)n, R = (size_t)rows;
  b->y = sparq_alloc(r * sizeof(int32_t), "eps error");
  b->x0 = sparq_alloc(2 * r * sizeof(float), "eps error");
  b->net_x = sparq_alloc(2 * r * sizeof(float), "eps error");
  b->net_t = sparq_alloc(r * sizeof(float), "eps error");
  b->target = sparq_alloc(2 * r * sizeof(float), "eps error");
  b->weight = sparq_alloc(r * sizeof(float), "eps error");
  b->extra = sparq_alloc(r * sizeof(float), "eps error");
  b->in_y = sparq_alloc(R * sizeof(int32_t), "eps error");
  b->in_x = sparq_alloc(2 * R * sizeof(float), "eps error");
  b->in_t = sparq_alloc(R * sizeof(float), "eps error");
  b->out = sparq_alloc(2 * R * sizeof(float), "eps error");
  if (!b->y || !b->x0 || !b->net_x || !b->net_t || !b->target || !b->weight || !b->extra || !b->in_y || !b->in_x ||
      !b->in_t || !b->out) {
    eps_bufs_free(b);
    return SPARQ_ERR_NOMEM;
  }
  return SPARQ_OK;
}

sparq_status sparq_toy_eps_error_eval(const sparq_toy2d *toy, const sparq_diffusion *d, const sparq_denoiser *net,
                                      int32_t cls, const sparq_toy_eps_config *cfg, sparq_toy_eps_error *out) {
  static const char who[] = "sparq_toy_eps_error_eval";
  if (!toy || !d || !net || !net->eval || !cfg || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (net->dim != 2) return sparq_fail(SPARQ_ERR_ARG, "%s: the network has dim %lld, the toy 2", who, (long long)net->dim);
  if (cls < -1 || cls >= K) return sparq_fail(SPARQ_ERR_ARG, "%s: class %d is outside -1..%d", who, (int)cls, K - 1);
  if (cfg->n < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: n %lld < 1", who, (long long)cfg->n);
  if (!isfinite(cfg->w) || (cfg->gft && !(cfg->w > 0.0f)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: guidance scale %g is not finite%s", who, (double)cfg->w,
                      cfg->gft ? " and > 0 (GFT feeds 1 / w)" : "");
  const int64_t n = cfg->n;
  const bool two = !cfg->gft && cfg->w != 1.0f; /* CFG needs the null-class rows too */
  const int64_t rows = two ? 2 * n : n;
  eps_bufs b;
  sparq_status s = eps_bufs_alloc(&b, n, rows);
  if (s) return s;

  /* exact q_t samples: labels, x0 ~ p(x | c), then t and noise */
  sparq_rng rng = sparq_rng_make(cfg->seed, 0);
  for (int64_t i = 0; i < n; i++) b.y[i] = cls >= 0 ? cls : (int32_t)sparq_rng_below(&rng, K);
  sparq_toy2d_sample(toy, b.y, n, &rng, b.x0);
  s = sparq_diffusion_training_batch(d, b.x0, n, 2, &rng, b.net_x, b.net_t, b.target, b.weight);
  if (s) {
    eps_bufs_free(&b);
    return s;
  }
  for (int64_t r = 0; r < rows; r++) {
    const int64_t i = r % n;
    memcpy(b.in_x + 2 * r, b.net_x + 2 * i, 2 * sizeof(float));
    b.in_t[r] = b.net_t[i];
    b.in_y[r] = r < n ? b.y[i] : net->null_class;
  }
  for (int64_t i = 0; i < n; i++) b.extra[i] = 1.0f / cfg->w;
  s = net->eval(net->self, b.in_x, b.in_t, b.in_y, cfg->gft ? b.extra : NULL, rows, b.out);
  if (s) {
    eps_bufs_free(&b);
    return s;
  }

  const double w = cfg->w;
  double err = 0.0, ref = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const eps_point p = network_point(d, b.net_x + 2 * i, b.net_t[i]);
    const float xt[2] = {(float)p.xt[0], (float)p.xt[1]};
    const int32_t null_label = K;
    float ec[2], eu[2];
    sparq_toy2d_exact_eps(toy, xt, &b.y[i], 1, p.alpha, p.sigma, ec);
    sparq_toy2d_exact_eps(toy, xt, &null_label, 1, p.alpha, p.sigma, eu);
    for (int j = 0; j < 2; j++) {
      const double want = (double)eu[j] + w * ((double)ec[j] - (double)eu[j]);
      double h = b.out[2 * i + j];
      if (two) h = (double)b.out[2 * (n + i) + j] + w * (h - (double)b.out[2 * (n + i) + j]);
      const double e = head_to_eps(d, &p, j, h) - want;
      err += e * e;
      ref += want * want;
    }
  }
  eps_bufs_free(&b);
  out->err = err / (double)n;
  out->ref_sq = ref / (double)n;
  out->n = n;
  return SPARQ_OK;
}

/* ------------------------------------------------- (v) energy distance */

/* sum_j ||a - b_j|| in double, four interleaved partial sums combined in a
 * fixed order. */
static double row_dist_sum(double ax, double ay, const float *b, int64_t nb) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t j = 0;
  for (; j + 4 <= nb; j += 4)
    for (int k = 0; k < 4; k++) {
      const double dx = ax - (double)b[2 * (j + k)], dy = ay - (double)b[2 * (j + k) + 1];
      acc[k] += sqrt(dx * dx + dy * dy);
    }
  for (int k = 0; j < nb; j++, k++) {
    const double dx = ax - (double)b[2 * j], dy = ay - (double)b[2 * j + 1];
    acc[k] += sqrt(dx * dx + dy * dy);
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* mean over all ordered pairs (i, j) of ||a_i - b_j||. Rows run in parallel
 * into their own slots and are added in row order, so the value does not
 * depend on the thread count. */
static sparq_status pair_mean(const float *a, int64_t na, const float *b, int64_t nb, double *mean) {
  double *rows = sparq_alloc((size_t)na * sizeof(double), "energy distance rows");
  if (!rows) return SPARQ_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (na >= PAIR_PAR_MIN)
  for (int64_t i = 0; i < na; i++) rows[i] = row_dist_sum((double)a[2 * i], (double)a[2 * i + 1], b, nb);
  double sum = 0.0;
  for (int64_t i = 0; i < na; i++) sum += rows[i];
  sparq_free(rows);
  *mean = sum / ((double)na * (double)nb);
  return SPARQ_OK;
}

static sparq_status energy_distance(const float *a, int64_t na, const float *b, int64_t nb, double *out) {
  double ab = 0.0, aa = 0.0, bb = 0.0;
  sparq_status s = pair_mean(a, na, b, nb, &ab);
  if (!s) s = pair_mean(a, na, a, na, &aa);
  if (!s) s = pair_mean(b, nb, b, nb, &bb);
  if (!s) *out = 2.0 * ab - aa - bb;
  return s;
}

double sparq_toy_energy_distance(const float *a, int64_t na, const float *b, int64_t nb) {
  double e = NAN;
  if (a && b && na >= 1 && nb >= 1) (void)energy_distance(a, na, b, nb, &e);
  return e;
}

/* ------------------------------------------------ (vi) mode coverage */

/* Responsibility mass of every component of class c over the samples
 * (log-sum-exp in double, so far-away samples do not underflow). */
static void mode_coverage(const sparq_toy2d *toy, int32_t c, const float *x, int64_t n, int *covered, int *modes) {
  double mass[SPARQ_TOY2D_MAX_COMPONENTS] = {0}, logp[SPARQ_TOY2D_MAX_COMPONENTS];
  for (int64_t i = 0; i < n; i++) {
    double top = -INFINITY;
    for (int k = 0; k < toy->ncomp; k++) {
      const sparq_toy2d_component *p = &toy->comp[k];
      logp[k] = -INFINITY;
      if (p->cls != c || !(p->weight > 0.0)) continue;
      const double dx = (double)x[2 * i] - p->mean[0], dy = (double)x[2 * i + 1] - p->mean[1];
      const double v = p->std * p->std;
      logp[k] = log(p->weight) - log(2.0 * M_PI * v) - (dx * dx + dy * dy) / (2.0 * v);
      if (logp[k] > top) top = logp[k];
    }
    if (!(top > -INFINITY)) continue;
    double z = 0.0;
    for (int k = 0; k < toy->ncomp; k++)
      if (logp[k] > -INFINITY) z += exp(logp[k] - top);
    for (int k = 0; k < toy->ncomp; k++)
      if (logp[k] > -INFINITY) mass[k] += exp(logp[k] - top) / z;
  }
  *covered = *modes = 0;
  for (int k = 0; k < toy->ncomp; k++) {
    if (toy->comp[k].cls != c) continue;
    ++*modes;
    if (mass[k] / (double)n >= 0.01 * toy->comp[k].weight) ++*covered;
  }
}

/* ---------------------------------------------- (ii)-(vii) together */

sparq_status sparq_toy_sample_metrics_eval(const sparq_toy2d *toy, int32_t cls, const float *x, int64_t n,
                                           const float *ref, int64_t m, const sparq_sample_stats *stats,
                                           sparq_toy_sample_metrics *out) {
  static const char who[] = "sparq_toy_sample_metrics_eval";
  if (!toy || !x || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (cls < 0 || cls >= K) return sparq_fail(SPARQ_ERR_ARG, "%s: class %d is outside 0..%d", who, (int)cls, K - 1);
  if (n < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: n %lld < 1", who, (long long)n);
  if (ref && m < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: %lld reference samples", who, (long long)m);
  memset(out, 0, sizeof *out);
  out->n = n;

  double logp = 0.0;
  int64_t hits = 0;
  for (int64_t i = 0; i < n; i++) {
    logp += sparq_toy2d_log_density(toy, x + 2 * i, cls);
    double post[K];
    sparq_toy2d_class_posterior(toy, x + 2 * i, post);
    int best = 0;
    for (int c = 1; c < K; c++)
      if (post[c] > post[best]) best = c;
    hits += best == cls;
  }
  out->log_density = logp / (double)n;
  out->bayes_acc = (double)hits / (double)n;

  out->endpoint_dist = out->energy_dist = NAN;
  if (ref && m == n) {
    double dist = 0.0;
    for (int64_t i = 0; i < n; i++)
      dist += hypot((double)x[2 * i] - (double)ref[2 * i], (double)x[2 * i + 1] - (double)ref[2 * i + 1]);
    out->endpoint_dist = dist / (double)n;
  }
  if (ref) {
    sparq_status s = energy_distance(x, n, ref, m, &out->energy_dist);
    if (s) return s;
  }

  mode_coverage(toy, cls, x, n, &out->modes_covered, &out->modes);
  out->mode_coverage = out->modes ? (double)out->modes_covered / (double)out->modes : 0.0;

  if (stats) {
    out->nfe = stats->nfe;
    out->seconds = stats->seconds;
    out->seconds_per_sample = stats->seconds / (double)n;
  }
  return SPARQ_OK;
}
