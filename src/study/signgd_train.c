/* One training run of the study: data, model, optimizer and the logged
 * trajectory of the section 3 quantities. */
#include <math.h>
#include <string.h>

#include "study/signgd_internal.h"

void sparq_signgd_config_default(sparq_signgd_config *c, sparq_signgd_optim optim) {
  *c = (sparq_signgd_config){
      .snr = 1.0, .d = 2000, .s = 40, .n = 32, .n_test = 2000, .sigma_p = 1.0, .m_k = 8, .m_v = 8,
      .sigma0 = 0.01, .steps = 600, .optim = optim, .lr = optim == SPARQ_SIGNGD_OPT_GD ? 0.5 : 1e-3,
      .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-15, .seed = 0, .random_position = false};
}

sparq_status sparq_signgd_config_check(const sparq_signgd_config *c) {
  const char *fn = "sparq_signgd";
  if (!c) return sparq_fail(SPARQ_ERR_ARG, "%s: config is NULL", fn);
  if (!(c->snr >= 0) || !isfinite(c->snr)) return sparq_fail(SPARQ_ERR_ARG, "%s: snr %g must be >= 0", fn, c->snr);
  if (c->d < 2 || c->d > INT32_MAX)
    return sparq_fail(SPARQ_ERR_ARG, "%s: d %lld must be in 2..2^31-1", fn, (long long)c->d);
  if (c->s < 1 || c->s > c->d - 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: s %lld must be in 1..d-1 (d = %lld)", fn, (long long)c->s,
                      (long long)c->d);
  if (c->n < 1 || c->n_test < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: n %lld and n_test %lld must be >= 1", fn, (long long)c->n,
                      (long long)c->n_test);
  if (!(c->sigma_p > 0) || !isfinite(c->sigma_p))
    return sparq_fail(SPARQ_ERR_ARG, "%s: sigma_p %g must be > 0", fn, c->sigma_p);
  if (c->m_k < 1 || c->m_v < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: m_k %lld and m_v %lld must be >= 1", fn, (long long)c->m_k,
                      (long long)c->m_v);
  if (!(c->sigma0 >= 0) || !isfinite(c->sigma0))
    return sparq_fail(SPARQ_ERR_ARG, "%s: sigma0 %g must be >= 0", fn, c->sigma0);
  if (c->steps < 0) return sparq_fail(SPARQ_ERR_ARG, "%s: steps %lld must be >= 0", fn, (long long)c->steps);
  if ((unsigned)c->optim > SPARQ_SIGNGD_OPT_GD)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown optimizer %d", fn, (int)c->optim);
  if (!(c->lr > 0) || !isfinite(c->lr)) return sparq_fail(SPARQ_ERR_ARG, "%s: lr %g must be > 0", fn, c->lr);
  if (c->optim == SPARQ_SIGNGD_OPT_ADAM &&
      (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps >= 0) || !isfinite(c->eps)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: Adam needs betas in [0, 1) and eps >= 0 (got %g, %g, %g)", fn, c->beta1,
                      c->beta2, c->eps);
  return SPARQ_OK;
}

void sparq_signgd_trace_free(sparq_signgd_trace *t) {
  if (!t) return;
  sparq_free(t->points);
  sparq_free(t->q_signal_neuron);
  sparq_free(t->k_signal_neuron);
  sparq_free(t->train_loss);
  memset(t, 0, sizeof *t);
}

const sparq_signgd_point *sparq_signgd_trace_at(const sparq_signgd_trace *t, int64_t step) {
  int64_t lo = 0, hi = t ? t->count : 0;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (t->points[mid].step < step) lo = mid + 1;
    else hi = mid;
  }
  return lo < (t ? t->count : 0) && t->points[lo].step == step ? &t->points[lo] : NULL;
}

/* The spec's schedule: every step up to 50, then every 10, and the last. */
static bool scheduled(int64_t t, int64_t steps) { return t <= 50 || t % 10 == 0 || t == steps; }

static int64_t scheduled_count(int64_t steps) {
  int64_t c = 0;
  for (int64_t t = 0; t <= steps && t <= 50; t++) c++;
  if (steps > 50) c += (steps - 50) / 10 + 1;
  return c;
}

/* Everything a run holds besides the trace. */
typedef struct run_state {
  sparq_signgd_data train, test;
  sparq_signgd_model model;
  sparq_signgd_optimizer opt;
  double *grad, *v, *qk;
  int8_t *signs;
  sg_flip_ref ref;
} run_state;

static void run_free(run_state *r) {
  sparq_signgd_data_free(&r->train);
  sparq_signgd_data_free(&r->test);
  sparq_signgd_model_free(&r->model);
  sparq_signgd_optimizer_free(&r->opt);
  sparq_free(r->grad);
  sparq_free(r->v);
  sparq_free(r->qk);
  sparq_free(r->signs);
  sparq_free(r->ref.q);
  sparq_free(r->ref.k);
  memset(r, 0, sizeof *r);
}

static sparq_status run_setup(const sparq_signgd_config *c, double mu_norm, run_state *r) {
  sparq_rng train_rng = sparq_rng_make(c->seed, 0), test_rng = sparq_rng_make(c->seed, 1),
            init_rng = sparq_rng_make(c->seed, 2);
  sparq_status st;
  if ((st = sparq_signgd_data_sample(&r->train, c->n, c->d, c->s, mu_norm, c->sigma_p, c->random_position,
                                     &train_rng)) != SPARQ_OK ||
      (st = sparq_signgd_data_sample(&r->test, c->n_test, c->d, c->s, mu_norm, c->sigma_p, c->random_position,
                                     &test_rng)) != SPARQ_OK ||
      (st = sparq_signgd_model_init(&r->model, c->d, c->m_k, c->m_v, c->sigma0, &init_rng)) != SPARQ_OK ||
      (st = sparq_signgd_optimizer_init(&r->opt, c->optim, c->lr, c->beta1, c->beta2, c->eps, r->model.count)) !=
          SPARQ_OK)
    return st;
  const size_t mkn = (size_t)(c->m_k * c->n);
  r->grad = sparq_alloc(r->model.count * sizeof(double), "signgd gradient");
  r->v = sparq_alloc((size_t)c->d * sizeof(double), "signgd value direction");
  r->qk = sparq_alloc((size_t)(4 * c->m_k) * sizeof(double), "signgd scratch");
  r->signs = sparq_alloc(2 * mkn, "signgd noise signs");
  r->ref.q = sparq_alloc(mkn, "signgd flip reference");
  r->ref.k = sparq_alloc(mkn, "signgd flip reference");
  if (!r->grad || !r->v || !r->qk || !r->signs || !r->ref.q || !r->ref.k) return SPARQ_ERR_NOMEM;
  return SPARQ_OK;
}

static sparq_status trace_alloc(sparq_signgd_trace *t, const sparq_signgd_config *c) {
  const int64_t cap = scheduled_count(c->steps) + 1; /* + the t_conv point */
  t->points = sparq_calloc((size_t)cap, sizeof *t->points, "signgd trace points");
  t->q_signal_neuron = sparq_calloc((size_t)(cap * c->m_k), sizeof(double), "signgd trace query signal");
  t->k_signal_neuron = sparq_calloc((size_t)(cap * c->m_k), sizeof(double), "signgd trace key signal");
  t->train_loss = sparq_calloc((size_t)c->steps + 1, sizeof(double), "signgd trace training loss");
  if (!t->points || !t->q_signal_neuron || !t->k_signal_neuron || !t->train_loss) return SPARQ_ERR_NOMEM;
  return SPARQ_OK;
}

static sparq_status log_point(run_state *r, sparq_signgd_trace *t, int64_t step, double train_loss) {
  const int64_t mk = r->model.m_k;
  sparq_signgd_point *p = &t->points[t->count];
  p->step = step;
  p->train_loss = train_loss;
  sparq_status st = sparq_signgd_loss(&r->model, &r->test, &p->test_loss, &p->test_error, NULL);
  if (st != SPARQ_OK) return st;
  sparq_signgd_value_direction(&r->model, r->v);
  sg_measure(&r->model, &r->train, r->v, &r->ref, p, t->q_signal_neuron + t->count * mk,
             t->k_signal_neuron + t->count * mk, r->signs, r->qk);
  if (t->t_align < 0 && p->alignment >= SPARQ_SIGNGD_ALIGNED) t->t_align = step;
  t->count++;
  return SPARQ_OK;
}

sparq_status sparq_signgd_train(const sparq_signgd_config *config, sparq_signgd_trace *out,
                                sparq_signgd_step_fn on_step, void *ctx) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_train: out is NULL");
  memset(out, 0, sizeof *out);
  sparq_status st = sparq_signgd_config_check(config);
  if (st != SPARQ_OK) return st;
  const sparq_signgd_config c = *config;
  run_state r = {0};
  out->config = c;
  out->mu_norm = c.snr * c.sigma_p * sqrt((double)c.s);
  out->t_conv = out->t_align = -1;
  if ((st = run_setup(&c, out->mu_norm, &r)) != SPARQ_OK || (st = trace_alloc(out, &c)) != SPARQ_OK) goto fail;
  double l1 = 0;
  for (int64_t j = 0; j < c.n * c.s; j++) l1 += fabs(r.train.noise_val[j]);
  out->noise_l1 = l1 / (double)c.n;

  for (int64_t step = 0; step <= c.steps; step++) {
    double loss;
    if ((st = sparq_signgd_loss(&r.model, &r.train, &loss, NULL, r.grad)) != SPARQ_OK) goto fail;
    out->train_loss[step] = loss;
    const bool converged_now = out->t_conv < 0 && loss < SPARQ_SIGNGD_CONV_LOSS;
    if (converged_now) out->t_conv = step;
    if ((scheduled(step, c.steps) || converged_now) && (st = log_point(&r, out, step, loss)) != SPARQ_OK) goto fail;
    if (on_step) on_step(ctx, step, loss);
    if (step < c.steps && (st = sparq_signgd_optimizer_step(&r.opt, r.model.params, r.grad)) != SPARQ_OK) goto fail;
  }
  run_free(&r);
  return SPARQ_OK;
fail:
  run_free(&r);
  sparq_signgd_trace_free(out);
  return st;
}
