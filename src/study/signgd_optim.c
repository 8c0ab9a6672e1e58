/* The three full-batch optimizers of the study: SignGD, Adam and GD. */
#include <math.h>
#include <string.h>

#include "study/signgd_internal.h"

static const char *const optim_names[] = {"signgd", "adam", "gd"};

const char *sparq_signgd_optim_name(sparq_signgd_optim optim) {
  return (unsigned)optim < 3 ? optim_names[optim] : "unknown";
}

bool sparq_signgd_optim_from_name(const char *name, sparq_signgd_optim *out) {
  for (int i = 0; name && i < 3; i++)
    if (!strcmp(name, optim_names[i])) {
      *out = (sparq_signgd_optim)i;
      return true;
    }
  return false;
}

void sparq_signgd_optimizer_free(sparq_signgd_optimizer *o) {
  if (!o) return;
  sparq_free(o->m_hat);
  sparq_free(o->v_hat);
  memset(o, 0, sizeof *o);
}

sparq_status sparq_signgd_optimizer_init(sparq_signgd_optimizer *o, sparq_signgd_optim kind, double lr, double beta1,
                                         double beta2, double eps, size_t count) {
  if (!o) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_init: optimizer is NULL");
  memset(o, 0, sizeof *o);
  if ((unsigned)kind > SPARQ_SIGNGD_OPT_GD)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_init: unknown optimizer %d", (int)kind);
  if (!(lr > 0) || !isfinite(lr))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_init: lr %g must be finite and > 0", lr);
  if (count == 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_init: no parameters");
  if (kind == SPARQ_SIGNGD_OPT_ADAM) {
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
      return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_init: Adam betas %g, %g must be in [0, 1)", beta1,
                        beta2);
    if (!(eps >= 0) || !isfinite(eps))
      return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_init: Adam eps %g must be finite and >= 0", eps);
    o->m_hat = sparq_calloc(count, sizeof(double), "Adam first moment");
    o->v_hat = sparq_calloc(count, sizeof(double), "Adam second moment");
    if (!o->m_hat || !o->v_hat) {
      sparq_signgd_optimizer_free(o);
      return SPARQ_ERR_NOMEM;
    }
  }
  o->kind = kind, o->lr = lr, o->beta1 = beta1, o->beta2 = beta2, o->eps = eps;
  o->count = count;
  o->beta1_pow = o->beta2_pow = 1;
  return SPARQ_OK;
}

static void step_sign(double *w, const double *g, size_t count, double lr) {
  for (size_t i = 0; i < count; i++) {
    if (g[i] > 0) w[i] -= lr;
    else if (g[i] < 0) w[i] += lr;
  }
}

static void step_gd(double *w, const double *g, size_t count, double lr) {
  for (size_t i = 0; i < count; i++) w[i] -= lr * g[i];
}

static void step_adam(sparq_signgd_optimizer *o, double *w, const double *g) {
  o->beta1_pow *= o->beta1;
  o->beta2_pow *= o->beta2;
  /* Both rates are exactly 1 at t = 1 (the same double divided by itself). */
  const double r1 = (1 - o->beta1) / (1 - o->beta1_pow), r2 = (1 - o->beta2) / (1 - o->beta2_pow);
  double *m = o->m_hat, *v = o->v_hat;
  for (size_t i = 0; i < o->count; i++) {
    m[i] += (g[i] - m[i]) * r1;
    v[i] += (g[i] * g[i] - v[i]) * r2;
    const double denom = sqrt(v[i]) + o->eps;
    if (denom > 0) w[i] -= o->lr * (m[i] / denom);
  }
}

sparq_status sparq_signgd_optimizer_step(sparq_signgd_optimizer *o, double *params, const double *grad) {
  if (!o || !params || !grad || o->count == 0)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_step: optimizer, params or grad is NULL or empty");
  switch (o->kind) {
    case SPARQ_SIGNGD_OPT_SIGN: step_sign(params, grad, o->count, o->lr); break;
    case SPARQ_SIGNGD_OPT_GD: step_gd(params, grad, o->count, o->lr); break;
    case SPARQ_SIGNGD_OPT_ADAM: step_adam(o, params, grad); break;
    default: return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_optimizer_step: unknown optimizer %d", (int)o->kind);
  }
  o->t++;
  return SPARQ_OK;
}
