/* The two-layer softmax-attention model of the spec, section 2: forward and
 * the hand-written gradient of the logistic loss over all four matrices.
 *
 * Per sample (patches x_0, x_1; l indexes queries, p keys):
 *   q_l = W_Q x_l, k_p = W_K x_p, u_p = <v, x_p>
 *   S[l][p] = softmax_p(<q_l, k_p>),  f = sum_l sum_p S[l][p] u_p
 * Backward with df = dL/df = (1/n) y l'(y f):
 *   dL/dv     += df * sum_p c_p x_p,              c_p = sum_l S[l][p]
 *   dL/dA[l][p] = df * S[l][p] (u_p - sum_p' S[l][p'] u_p')
 *   dL/dW_Q   += sum_l (sum_p dA[l][p] k_p) x_l^T
 *   dL/dW_K   += sum_p (sum_l dA[l][p] q_l) x_p^T
 *   dL/dW_{V,j} row r = (j / m_v) dL/dv  (v is a difference of row means) */
#include <math.h>
#include <string.h>

#include "study/signgd_internal.h"

double sg_logistic(double z) { return z >= 0 ? log1p(exp(-z)) : -z + log1p(exp(z)); }

double sg_logistic_grad(double z) {
  if (z >= 0) {
    double e = exp(-z);
    return -e / (1 + e);
  }
  return -1 / (1 + exp(z));
}

void sparq_signgd_model_free(sparq_signgd_model *m) {
  if (!m) return;
  sparq_free(m->params);
  memset(m, 0, sizeof *m);
}

sparq_status sparq_signgd_model_init(sparq_signgd_model *m, int64_t d, int64_t m_k, int64_t m_v, double sigma0,
                                     sparq_rng *rng) {
  if (!m) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_model_init: model is NULL");
  memset(m, 0, sizeof *m);
  if (!rng) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_model_init: rng is NULL");
  if (d < 2 || m_k < 1 || m_v < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_model_init: d %lld, m_k %lld, m_v %lld (need d >= 2, m >= 1)",
                      (long long)d, (long long)m_k, (long long)m_v);
  if (!(sigma0 >= 0) || !isfinite(sigma0))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_model_init: sigma0 %g must be finite and >= 0", sigma0);
  size_t rows, count;
  if (!sparq_size_add((size_t)m_k, (size_t)m_v, &rows) || !sparq_size_mul(rows, 2 * (size_t)d, &count) ||
      count > SIZE_MAX / sizeof(double))
    return sparq_fail(SPARQ_ERR_NOMEM, "sparq_signgd_model_init: %lld x %lld parameters overflow",
                      (long long)(m_k + m_v), (long long)d);
  m->params = sparq_alloc(count * sizeof(double), "signgd model parameters");
  if (!m->params) return SPARQ_ERR_NOMEM;
  m->d = d, m->m_k = m_k, m->m_v = m_v, m->count = count;
  m->wq = m->params;
  m->wk = m->wq + m_k * d;
  m->wv_pos = m->wk + m_k * d;
  m->wv_neg = m->wv_pos + m_v * d;
  for (size_t i = 0; i < count; i++) m->params[i] = sigma0 * (double)sparq_rng_normal(rng);
  return SPARQ_OK;
}

void sparq_signgd_value_direction(const sparq_signgd_model *m, double *v) {
  const int64_t d = m->d;
  memset(v, 0, (size_t)d * sizeof *v);
  for (int64_t r = 0; r < m->m_v; r++) {
    const double *pos = m->wv_pos + r * d, *neg = m->wv_neg + r * d;
    for (int64_t k = 0; k < d; k++) v[k] += pos[k] - neg[k];
  }
  const double scale = 1.0 / (double)m->m_v;
  for (int64_t k = 0; k < d; k++) v[k] *= scale;
}

double sg_sample_forward(const sparq_signgd_model *m, const double *v, const sg_patch x[2], double *q,
                             double *k, double u[2], double S[2][2]) {
  const int64_t d = m->d, mk = m->m_k;
  for (int p = 0; p < 2; p++) {
    for (int64_t a = 0; a < mk; a++) {
      q[p * mk + a] = sg_dot(m->wq + a * d, x[p]);
      k[p * mk + a] = sg_dot(m->wk + a * d, x[p]);
    }
    u[p] = sg_dot(v, x[p]);
  }
  double f = 0;
  for (int l = 0; l < 2; l++) {
    double logit[2];
    for (int p = 0; p < 2; p++) {
      double acc = 0;
      for (int64_t a = 0; a < mk; a++) acc += q[l * mk + a] * k[p * mk + a];
      logit[p] = acc;
    }
    /* subtracting the larger logit keeps exp finite once the logits grow like t^2 */
    double top = logit[0] > logit[1] ? logit[0] : logit[1];
    double e0 = exp(logit[0] - top), e1 = exp(logit[1] - top), z = e0 + e1;
    S[l][0] = e0 / z;
    S[l][1] = e1 / z;
    f += S[l][0] * u[0] + S[l][1] * u[1];
  }
  return f;
}

static sparq_status check_pair(const char *fn, const sparq_signgd_model *m, const sparq_signgd_data *data) {
  if (!m || !m->params || !data || !data->y)
    return sparq_fail(SPARQ_ERR_ARG, "%s: model or data is NULL or empty", fn);
  if (m->d != data->d)
    return sparq_fail(SPARQ_ERR_ARG, "%s: model d %lld does not match data d %lld", fn, (long long)m->d,
                      (long long)data->d);
  return SPARQ_OK;
}

sparq_status sparq_signgd_forward(const sparq_signgd_model *m, const sparq_signgd_data *data, int64_t i, double *f,
                                  double scores[4]) {
  sparq_status st = check_pair("sparq_signgd_forward", m, data);
  if (st != SPARQ_OK) return st;
  if (i < 0 || i >= data->n || !f)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_forward: sample %lld is outside 0..%lld or f is NULL",
                      (long long)i, (long long)data->n - 1);
  double *v = sparq_alloc((size_t)(m->d + 4 * m->m_k) * sizeof(double), "signgd forward scratch");
  if (!v) return SPARQ_ERR_NOMEM;
  double *q = v + m->d, *k = q + 2 * m->m_k, u[2], S[2][2];
  sparq_signgd_value_direction(m, v);
  const sg_patch x[2] = {sg_patch_get(data, i, 0), sg_patch_get(data, i, 1)};
  *f = sg_sample_forward(m, v, x, q, k, u, S);
  if (scores)
    for (int l = 0; l < 2; l++)
      for (int p = 0; p < 2; p++) scores[2 * l + p] = S[l][p];
  sparq_free(v);
  return SPARQ_OK;
}

sparq_status sparq_signgd_loss(const sparq_signgd_model *m, const sparq_signgd_data *data, double *loss,
                               double *error, double *grad) {
  sparq_status st = check_pair("sparq_signgd_loss", m, data);
  if (st != SPARQ_OK) return st;
  const int64_t d = m->d, mk = m->m_k, mv = m->m_v, n = data->n;
  /* v, the value-gradient direction G = dL/dv, then q, k, dq, dk */
  double *v = sparq_alloc((size_t)(2 * d + 8 * mk) * sizeof(double), "signgd loss scratch");
  if (!v) return SPARQ_ERR_NOMEM;
  double *G = v + d, *q = G + d, *k = q + 2 * mk, *dq = k + 2 * mk, *dk = dq + 2 * mk;
  sparq_signgd_value_direction(m, v);
  if (grad) {
    memset(grad, 0, m->count * sizeof *grad);
    memset(G, 0, (size_t)d * sizeof *G);
  }
  double *gq = grad, *gk = grad ? grad + mk * d : NULL;
  double total = 0;
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; i++) {
    const sg_patch x[2] = {sg_patch_get(data, i, 0), sg_patch_get(data, i, 1)};
    double u[2], S[2][2];
    const double y = data->y[i];
    const double f = sg_sample_forward(m, v, x, q, k, u, S);
    total += sg_logistic(y * f);
    wrong += y * f <= 0;
    if (!grad) continue;
    const double df = y * sg_logistic_grad(y * f) / (double)n;
    for (int p = 0; p < 2; p++) sg_axpy(G, df * (S[0][p] + S[1][p]), x[p]);
    double dA[2][2];
    for (int l = 0; l < 2; l++) {
      const double ubar = S[l][0] * u[0] + S[l][1] * u[1];
      for (int p = 0; p < 2; p++) dA[l][p] = df * S[l][p] * (u[p] - ubar);
    }
    for (int64_t a = 0; a < mk; a++)
      for (int t = 0; t < 2; t++) {
        dq[t * mk + a] = dA[t][0] * k[a] + dA[t][1] * k[mk + a];
        dk[t * mk + a] = dA[0][t] * q[a] + dA[1][t] * q[mk + a];
      }
    for (int t = 0; t < 2; t++)
      for (int64_t a = 0; a < mk; a++) {
        sg_axpy(gq + a * d, dq[t * mk + a], x[t]);
        sg_axpy(gk + a * d, dk[t * mk + a], x[t]);
      }
  }
  if (grad) {
    const double scale = 1.0 / (double)mv;
    double *gpos = grad + 2 * mk * d, *gneg = gpos + mv * d;
    for (int64_t c = 0; c < d; c++) {
      gpos[c] = scale * G[c];
      gneg[c] = -gpos[c];
    }
    for (int64_t r = 1; r < mv; r++) {
      memcpy(gpos + r * d, gpos, (size_t)d * sizeof *gpos);
      memcpy(gneg + r * d, gneg, (size_t)d * sizeof *gneg);
    }
  }
  if (loss) *loss = total / (double)n;
  if (error) *error = (double)wrong / (double)n;
  sparq_free(v);
  return SPARQ_OK;
}
