/* The evaluation of the 2-D toy study (spec gft.md 8.1): every arm and the
 * exact-CFG reference sample all K classes from one shared noise, and each
 * sweep point is scored over the classes with the exact metrics. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "sparq/gft_toy.h"

#define K SPARQ_TOY2D_CLASSES
#define NOISE_STREAM 0x6e6f697365u /* "noise" */
/* the samplers and metrics index rows with int64_t; this keeps K n pairs of
 * floats far inside size_t and the energy sums' O(n^2) reasonable */
#define MAX_PER_CLASS (1 << 22)

sparq_gft_toy_eval_config sparq_gft_toy_eval_config_default(void) {
  sparq_gft_toy_eval_config c = {.n_per_class = 10000, .steps = 50, .ref_steps = 500, .eps_n = 0, .seed = 0};
  return c;
}

int64_t sparq_gft_toy_eval_rows(const sparq_gft_toy_eval_config *cfg) { return K * cfg->n_per_class; }

void sparq_gft_toy_noise(const sparq_gft_toy_eval_config *cfg, float *x) {
  sparq_rng rng = sparq_rng_make(cfg->seed, NOISE_STREAM);
  sparq_rng_fill_normal(&rng, x, (size_t)(2 * sparq_gft_toy_eval_rows(cfg)), 0.0f, 1.0f);
}

void sparq_gft_toy_labels(const sparq_gft_toy_eval_config *cfg, int32_t *y) {
  const int64_t rows = sparq_gft_toy_eval_rows(cfg);
  for (int64_t i = 0; i < rows; i++) y[i] = (int32_t)(i / cfg->n_per_class);
}

sparq_status sparq_gft_toy_class_metrics(const sparq_toy2d *toy, const float *x, const float *ref,
                                         int64_t n_per_class, const sparq_sample_stats *stats,
                                         sparq_toy_sample_metrics *out) {
  if (!toy || !x || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_gft_toy_class_metrics: NULL argument");
  if (n_per_class < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gft_toy_class_metrics: %" PRId64 " samples per class", n_per_class);
  sparq_toy_sample_metrics sum = {0};
  for (int32_t c = 0; c < K; c++) {
    sparq_toy_sample_metrics m;
    const int64_t at = 2 * (int64_t)c * n_per_class;
    sparq_status s = sparq_toy_sample_metrics_eval(toy, c, x + at, n_per_class, ref ? ref + at : NULL, n_per_class,
                                                   NULL, &m);
    if (s) return s;
    sum.endpoint_dist += m.endpoint_dist;
    sum.log_density += m.log_density;
    sum.bayes_acc += m.bayes_acc;
    sum.energy_dist += m.energy_dist;
    sum.modes_covered += m.modes_covered;
    sum.modes += m.modes;
  }
  /* the classes have equal counts, so the mean of the class means is the
   * mean over all samples for the per-sample figures */
  sum.n = K * n_per_class;
  sum.endpoint_dist /= K;
  sum.log_density /= K;
  sum.bayes_acc /= K;
  sum.energy_dist /= K;
  sum.mode_coverage = sum.modes ? (double)sum.modes_covered / (double)sum.modes : 0.0;
  if (stats) {
    sum.nfe = stats->nfe;
    sum.seconds = stats->seconds;
    sum.seconds_per_sample = stats->seconds / (double)sum.n;
  }
  *out = sum;
  return SPARQ_OK;
}

static sparq_status check_eval(const sparq_gft_toy_eval_config *cfg, float beta, const char *who) {
  if (cfg->n_per_class < 1 || cfg->n_per_class > MAX_PER_CLASS)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %" PRId64 " samples per class is outside 1..%d", who, cfg->n_per_class,
                      MAX_PER_CLASS);
  if (cfg->steps < 1 || cfg->ref_steps < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: sampler steps must be >= 1 (got %" PRId64 " and %" PRId64 ")", who,
                      cfg->steps, cfg->ref_steps);
  if (cfg->eps_n < 0) return sparq_fail(SPARQ_ERR_ARG, "%s: eps_n %" PRId64 " < 0", who, cfg->eps_n);
  /* beta > 1 would be CFG with w < 1, outside GFT's training range */
  if (!(beta > 0.0f && beta <= 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: beta %g is outside (0, 1]", who, (double)beta);
  return SPARQ_OK;
}

/* Samples every class block from the shared noise into x, then scores the
 * eps error and the samples. extra NULL: plain CFG at cfg_scale w. */
static sparq_status eval_point(const sparq_toy2d *toy, const sparq_diffusion *diff, const sparq_denoiser *net,
                               bool gft, const sparq_gft_toy_eval_config *cfg, int64_t steps, float beta,
                               const float *ref, float *x, sparq_gft_toy_row *row) {
  const int64_t rows = sparq_gft_toy_eval_rows(cfg);
  int32_t *y = sparq_alloc((size_t)rows * sizeof *y, "gft toy labels");
  float *extra = gft ? sparq_alloc((size_t)rows * sizeof *extra, "gft toy temperatures") : NULL;
  if (!y || (gft && !extra)) {
    sparq_free(y);
    sparq_free(extra);
    return SPARQ_ERR_NOMEM;
  }
  sparq_gft_toy_labels(cfg, y);
  for (int64_t i = 0; gft && i < rows; i++) extra[i] = beta;
  sparq_gft_toy_noise(cfg, x);
  memset(row, 0, sizeof *row);
  row->beta = beta;
  row->w = 1.0f / beta;
  sparq_sample_config sc = sparq_sample_config_default();
  sc.sampler = SPARQ_SAMPLER_DDIM;
  sc.steps = steps;
  /* GFT guides through its temperature input at one NFE per step */
  sc.cfg_scale = gft ? 1.0f : row->w;
  sc.extra = extra;
  sparq_sample_stats st;
  sparq_status s = sparq_diffusion_sample(diff, net, &sc, y, rows, x, &st);
  if (!s) s = sparq_gft_toy_class_metrics(toy, x, ref, cfg->n_per_class, &st, &row->m);
  if (!s) {
    sparq_toy_eps_config ec = sparq_toy_eps_config_default();
    ec.w = row->w;
    ec.gft = gft;
    ec.n = cfg->eps_n > 0 ? cfg->eps_n : rows;
    ec.seed = cfg->seed;
    s = sparq_toy_eps_error_eval(toy, diff, net, -1, &ec, &row->eps);
  }
  sparq_free(y);
  sparq_free(extra);
  return s;
}

sparq_status sparq_gft_toy_reference(const sparq_toy2d *toy, const sparq_diffusion *diff,
                                     const sparq_gft_toy_eval_config *cfg, float beta, float *ref,
                                     sparq_gft_toy_row *row) {
  static const char who[] = "sparq_gft_toy_reference";
  if (!toy || !diff || !cfg || !ref) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  sparq_status s = check_eval(cfg, beta, who);
  if (s) return s;
  sparq_toy2d_exact bind;
  sparq_denoiser exact;
  sparq_toy2d_exact_denoiser(&bind, toy, diff, &exact);
  sparq_gft_toy_row r;
  s = eval_point(toy, diff, &exact, false, cfg, cfg->ref_steps, beta, NULL, ref, &r);
  if (!s && row) *row = r;
  return s;
}

sparq_status sparq_gft_toy_eval_arm(const sparq_toy2d *toy, const sparq_diffusion *diff, const sparq_denoiser *net,
                                    bool gft, const sparq_gft_toy_eval_config *cfg, float beta, const float *ref,
                                    sparq_gft_toy_row *row, float *samples) {
  static const char who[] = "sparq_gft_toy_eval_arm";
  if (!toy || !diff || !net || !cfg || !row) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  sparq_status s = check_eval(cfg, beta, who);
  if (s) return s;
  const size_t bytes = (size_t)(2 * sparq_gft_toy_eval_rows(cfg)) * sizeof(float);
  float *x = samples ? samples : sparq_alloc(bytes, "gft toy samples");
  if (!x) return SPARQ_ERR_NOMEM;
  s = eval_point(toy, diff, net, gft, cfg, cfg->steps, beta, ref, x, row);
  if (x != samples) sparq_free(x);
  return s;
}
