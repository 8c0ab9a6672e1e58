/* The toy MLP's forward, backward and saving-nothing inference, and its
 * sampler adapter. Shapes (n rows, H hidden, D depth):
 *   in0    [n, in_dim]   x | timestep_embedding(t) | class_embed[y]
 *   bemb   [n, beta_dim] timestep_embedding(1000 gft_beta)          (gft)
 *   pre_0  [n, H]        in0 W_0^T + b_0 (+ bemb beta_proj^T)
 *   act_l  [n, H]        silu(pre_l)
 *   pre_l  [n, H]        act_{l-1} W_l^T + b_l                       l = 1..D-1
 *   out    [n, dim]      act_{D-1} W_D^T + b_D
 * Training and inference run the same function (model_run) with different
 * buffers, so they agree bit for bit. */
#include <string.h>

#include "diffusion/toy_mlp_internal.h"
#include "sparq/kernels.h"

/* Floats rounded up so every buffer carved from a block starts 64-byte aligned. */
static size_t padded(size_t floats) { return (floats + 15) / 16 * 16; }

static int64_t beta_dim(const sparq_toy_mlp *m) { return m->cfg.gft ? m->cfg.beta_dim : 0; }

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Training activations and backward scratch for n rows. */
static sparq_status reserve_train(sparq_toy_mlp *m, int64_t n) {
  if (n <= m->cap) return SPARQ_OK;
  const sparq_toy_mlp_config *c = &m->cfg;
  const size_t rows = (size_t)n, H = (size_t)c->hidden;
  size_t total = padded(rows * (size_t)m->in_dim) + padded(rows * (size_t)beta_dim(m)) +
                 2 * (size_t)c->depth * padded(rows * H) + padded(rows); /* + labels (int32 = float size) */
  float *block = sparq_alloc(total * sizeof(float), "toy MLP activations");
  float *scratch = sparq_alloc((2 * padded(rows * H) + padded(rows * (size_t)c->class_dim)) * sizeof(float),
                               "toy MLP backward scratch");
  if (!block || !scratch) {
    sparq_free(block);
    sparq_free(scratch);
    return SPARQ_ERR_NOMEM;
  }
  sparq_free(m->act_block);
  sparq_free(m->dscratch);
  m->act_block = block;
  m->dscratch = scratch;
  float *p = block;
  m->acts.in0 = p, p += padded(rows * (size_t)m->in_dim);
  m->acts.bemb = p, p += padded(rows * (size_t)beta_dim(m));
  for (int64_t l = 0; l < c->depth; l++) {
    m->acts.pre[l] = p, p += padded(rows * H);
    m->acts.act[l] = p, p += padded(rows * H);
  }
  m->acts.y = (int32_t *)p;
  m->cap = n;
  m->rows = 0; /* the old activations are gone */
  return SPARQ_OK;
}

/* Inference scratch: two ping-pong buffers and the beta embedding. */
static sparq_status reserve_infer(sparq_toy_mlp *m, int64_t n) {
  if (n <= m->icap) return SPARQ_OK;
  const size_t rows = (size_t)n, wide = padded(rows * (size_t)max64(m->in_dim, m->cfg.hidden));
  float *block = sparq_alloc((2 * wide + padded(rows * (size_t)beta_dim(m))) * sizeof(float), "toy MLP scratch");
  if (!block) return SPARQ_ERR_NOMEM;
  sparq_free(m->infer_block);
  m->infer_block = block;
  m->icap = n;
  return SPARQ_OK;
}

static sparq_status check_inputs(const sparq_toy_mlp *m, const char *who, const float *x, const float *t,
                                 const int32_t *y, const float *gft_beta, int64_t n, const float *out) {
  if (!m || !x || !t || !y || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (n < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: n %lld < 1", who, (long long)n);
  if (gft_beta && !m->cfg.gft)
    return sparq_fail(SPARQ_ERR_ARG, "%s: gft_beta given to a model without the gft input", who);
  for (int64_t i = 0; i < n; i++)
    if (y[i] < 0 || y[i] > m->cfg.num_classes)
      return sparq_fail(SPARQ_ERR_ARG, "%s: label %d of row %lld is outside 0..%lld (the null class)", who, (int)y[i],
                        (long long)i, (long long)m->cfg.num_classes);
  return SPARQ_OK;
}

/* The network on n rows into the given buffers. pre[l] may equal act[l]
 * (SiLU runs in place then); pre[l] must not alias act[l - 1]. */
static sparq_status model_run(const sparq_toy_mlp *m, const float *x, const float *t, const int32_t *y,
                              const float *gft_beta, int64_t n, float *in0, float *bemb, float *const *pre,
                              float *const *act, float *out) {
  const sparq_toy_mlp_config *c = &m->cfg;
  const int64_t D0 = m->in_dim, H = c->hidden, dim = c->dim, B = beta_dim(m);
  for (int64_t i = 0; i < n; i++) {
    float *row = in0 + i * D0;
    memcpy(row, x + i * dim, (size_t)dim * sizeof(float));
    sparq_nn_timestep_embedding(row + dim, t + i, 1, c->time_dim, TOY_MLP_MAX_PERIOD);
    memcpy(row + dim + c->time_dim, m->class_embed->data + (int64_t)y[i] * c->class_dim,
           (size_t)c->class_dim * sizeof(float));
  }
  sparq_status s = sparq_nn_linear_forward(pre[0], in0, m->w[0]->data, m->b[0]->data, n, D0, H);
  if (!s && B > 0) {
    for (int64_t i = 0; i < n; i++) {
      const float scaled = TOY_MLP_BETA_SCALE * (gft_beta ? gft_beta[i] : 1.0f);
      sparq_nn_timestep_embedding(bemb + i * B, &scaled, 1, B, TOY_MLP_MAX_PERIOD);
    }
    /* pre_0 += bemb beta_proj^T: added after net.0 so that a zero beta_proj
     * leaves pre_0 bit-identical to the model without the input */
    s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, n, H, B, 1.0f, bemb, B, m->beta_proj->data, B, 1.0f, pre[0], H);
  }
  for (int64_t l = 0; !s && l < c->depth; l++) {
    if (l > 0) s = sparq_nn_linear_forward(pre[l], act[l - 1], m->w[l]->data, m->b[l]->data, n, H, H);
    if (!s) sparq_nn_silu_forward(act[l], pre[l], (size_t)(n * H));
  }
  if (!s) s = sparq_nn_linear_forward(out, act[c->depth - 1], m->w[c->depth]->data, m->b[c->depth]->data, n, H, dim);
  return s;
}

sparq_status sparq_toy_mlp_forward(sparq_toy_mlp *m, const float *x, const float *t, const int32_t *y,
                                   const float *gft_beta, int64_t n, float *out) {
  sparq_status s = check_inputs(m, "sparq_toy_mlp_forward", x, t, y, gft_beta, n, out);
  if (!s) s = reserve_train(m, n);
  if (s) return s;
  m->rows = 0;
  s = model_run(m, x, t, y, gft_beta, n, m->acts.in0, m->acts.bemb, m->acts.pre, m->acts.act, out);
  if (s) return s;
  memcpy(m->acts.y, y, (size_t)n * sizeof *y);
  m->rows = n;
  return SPARQ_OK;
}

sparq_status sparq_toy_mlp_infer(sparq_toy_mlp *m, const float *x, const float *t, const int32_t *y,
                                 const float *gft_beta, int64_t n, float *out) {
  sparq_status s = check_inputs(m, "sparq_toy_mlp_infer", x, t, y, gft_beta, n, out);
  if (!s) s = reserve_infer(m, n);
  if (s) return s;
  const size_t wide = padded((size_t)n * (size_t)max64(m->in_dim, m->cfg.hidden));
  float *a = m->infer_block, *b = a + wide, *bemb = b + wide;
  /* layer l writes the buffer layer l - 1 did not (in0 sits in a) */
  float *buf[TOY_MLP_MAX_DEPTH];
  for (int64_t l = 0; l < m->cfg.depth; l++) buf[l] = l % 2 == 0 ? b : a;
  return model_run(m, x, t, y, gft_beta, n, a, bemb, buf, buf, out);
}

sparq_status sparq_toy_mlp_backward(sparq_toy_mlp *m, const float *dout) {
  if (!m || !dout) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_backward: NULL argument");
  if (m->rows < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_backward: no forward to go back through");
  const sparq_toy_mlp_config *c = &m->cfg;
  const int64_t n = m->rows, D0 = m->in_dim, H = c->hidden, D = c->depth, B = beta_dim(m);
  const size_t nh = (size_t)(n * H);
  float *dact = m->dscratch, *dpre = dact + padded((size_t)m->cap * (size_t)H);
  float *dcls = dpre + padded((size_t)m->cap * (size_t)H);
  memset(dact, 0, nh * sizeof(float));
  sparq_status s = sparq_nn_linear_backward(dact, m->w[D]->grad, m->b[D]->grad, dout, m->acts.act[D - 1],
                                            m->w[D]->data, n, H, c->dim);
  for (int64_t l = D - 1; !s && l >= 0; l--) {
    memset(dpre, 0, nh * sizeof(float));
    sparq_nn_silu_backward(dpre, m->acts.pre[l], dact, nh);
    if (l > 0) {
      memset(dact, 0, nh * sizeof(float));
      s = sparq_nn_linear_backward(dact, m->w[l]->grad, m->b[l]->grad, dpre, m->acts.act[l - 1], m->w[l]->data, n,
                                   H, H);
    }
  }
  if (s) return s;
  /* the input layer: only the class columns of in0 carry a gradient worth
   * having (x and the embeddings are inputs, not parameters) */
  s = sparq_nn_linear_backward(NULL, m->w[0]->grad, m->b[0]->grad, dpre, m->acts.in0, m->w[0]->data, n, D0, H);
  if (!s && B > 0)
    s = sparq_nn_linear_backward(NULL, m->beta_proj->grad, NULL, dpre, m->acts.bemb, m->beta_proj->data, n, B, H);
  const int64_t off = c->dim + c->time_dim;
  if (!s)
    s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, n, c->class_dim, H, 1.0f, dpre, H, m->w[0]->data + off, D0, 0.0f,
                    dcls, c->class_dim);
  if (s) return s;
  /* rows in order: the scatter into shared class rows stays deterministic */
  for (int64_t i = 0; i < n; i++) {
    float *g = m->class_embed->grad + (int64_t)m->acts.y[i] * c->class_dim;
    const float *d = dcls + i * c->class_dim;
    for (int64_t j = 0; j < c->class_dim; j++) g[j] += d[j];
  }
  return SPARQ_OK;
}

/* ------------------------------------------------------ sampler adapter */

static sparq_status denoiser_eval(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                                  int64_t n, float *out) {
  sparq_toy_mlp *m = self;
  return sparq_toy_mlp_infer(m, x, t, y, m->cfg.gft ? extra : NULL, n, out);
}

void sparq_toy_mlp_denoiser(sparq_toy_mlp *m, sparq_denoiser *out) {
  memset(out, 0, sizeof *out);
  out->self = m;
  out->eval = denoiser_eval;
  out->dim = m->cfg.dim;
  out->null_class = (int32_t)m->cfg.num_classes;
}
