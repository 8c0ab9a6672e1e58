/* GPT forward and backward: nanoGPT's block order on the layers of nn.h.
 *
 * c_attn ([3C, C]) is applied as three GEMMs, one per row block of its
 * weight, writing q, k and v into dense [N, C] buffers: that is the NHD
 * layout the attention kernel reads, with no split copy, and three
 * N x C x C GEMMs run faster here than one N x 3C x C with a 3C-wide
 * output. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"

static const float *data_or_null(const sparq_param *p) { return p ? p->data : NULL; }
static float *grad_or_null(const sparq_param *p) { return p ? p->grad : NULL; }

static sparq_status check_tokens(const sparq_gpt *g, const char *who, const int32_t *t, int64_t n, const char *what,
                                 bool allow_neg) {
  for (int64_t i = 0; i < n; i++) {
    if (t[i] >= g->cfg.vocab_size || (t[i] < 0 && !allow_neg))
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s[%" PRId64 "] = %d is outside 0..%" PRId64, who, what, i, (int)t[i],
                        g->cfg.vocab_size - 1);
  }
  return SPARQ_OK;
}

sparq_status gpt_check_inputs(const sparq_gpt *g, const char *who, const int32_t *x, const int32_t *y,
                              const int32_t *labels, const float *gft_beta, int64_t B, int64_t T) {
  if (!g || !x) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  const sparq_gpt_config *c = &g->cfg;
  if (B < 1 || T < 1 || T > c->block_size)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B %" PRId64 " and T %" PRId64 " (block_size %" PRId64 ")", who, B, T,
                      c->block_size);
  const int64_t Tp = gpt_rows_per_seq(g, T);
  if (B > INT64_MAX / Tp || B * Tp > ((int64_t)1 << 30) / c->n_embd)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B %" PRId64 " x T %" PRId64 " is too large", who, B, T);
  if (labels && c->num_classes == 0) return sparq_fail(SPARQ_ERR_ARG, "%s: labels for an unconditional model", who);
  if (gft_beta && c->gft_beta_dim == 0) return sparq_fail(SPARQ_ERR_ARG, "%s: gft_beta for a model without it", who);
  for (int64_t b = 0; labels && b < B; b++)
    if (labels[b] < 0 || labels[b] > c->num_classes)
      return sparq_fail(SPARQ_ERR_ARG, "%s: labels[%" PRId64 "] = %d is outside 0..%" PRId64 " (%" PRId64 " = null)",
                        who, b, (int)labels[b], c->num_classes, c->num_classes);
  for (int64_t b = 0; gft_beta && b < B; b++)
    if (!isfinite(gft_beta[b]))
      return sparq_fail(SPARQ_ERR_ARG, "%s: gft_beta[%" PRId64 "] is not finite", who, b);
  sparq_status s = check_tokens(g, who, x, B * T, "x", false);
  if (!s && y) s = check_tokens(g, who, y, B * T, "y", true);
  return s;
}

sparq_status gpt_block_forward(sparq_gpt *g, const gpt_block_params *p, gpt_block_acts *a, const float *in,
                               float *out, int64_t B, int64_t Tp) {
  const int64_t N = B * Tp, C = g->cfg.n_embd, NH = g->cfg.n_head, hd = C / NH;
  sparq_status s;
  TIMED_VOID(other, sparq_nn_layernorm_forward(a->ln_1, a->ln_1_mean, a->ln_1_rstd, in, p->ln_1_w->data,
                                               data_or_null(p->ln_1_b), N, C));
  float *qkv[3] = {a->q, a->k, a->v};
  for (int j = 0; j < 3; j++) {
    const float *bias = p->c_attn_b ? p->c_attn_b->data + j * C : NULL;
    TIMED(gemm, sparq_nn_linear_forward(qkv[j], a->ln_1, p->c_attn_w->data + j * C * C, bias, N, C, C));
  }
  TIMED(attention, sparq_nn_attention_forward(a->att, a->lse, a->q, a->k, a->v, B, Tp, NH, hd));
  TIMED(gemm, sparq_nn_linear_forward(a->res_mid, a->att, p->attn_proj_w->data, data_or_null(p->attn_proj_b), N,
                                      C, C));
  TIMED_VOID(other, sparq_nn_residual_forward(a->res_mid, a->res_mid, in, (size_t)(N * C)));
  TIMED_VOID(other, sparq_nn_layernorm_forward(a->ln_2, a->ln_2_mean, a->ln_2_rstd, a->res_mid, p->ln_2_w->data,
                                               data_or_null(p->ln_2_b), N, C));
  if (p->router) {
    const sparq_moe_dims d = gpt_moe_dims(g);
    const sparq_moe_weights w = gpt_moe_weights(p);
    TIMED(gemm, sparq_moe_forward(a->moe, &d, &w, a->ln_2, out, N));
  } else {
    TIMED(gemm, sparq_nn_linear_forward(a->fc, a->ln_2, p->c_fc_w->data, data_or_null(p->c_fc_b), N, C, 4 * C));
    TIMED_VOID(other, sparq_nn_gelu_forward(a->fc_gelu, a->fc, (size_t)(N * 4 * C)));
    TIMED(gemm, sparq_nn_linear_forward(out, a->fc_gelu, p->mlp_proj_w->data, data_or_null(p->mlp_proj_b), N,
                                        4 * C, C));
  }
  TIMED_VOID(other, sparq_nn_residual_forward(out, out, a->res_mid, (size_t)(N * C)));
  return SPARQ_OK;
}

sparq_status gpt_head_forward(sparq_gpt *g, float *ln, float *mean, float *rstd, const float *in, float *logits,
                              int64_t N) {
  const int64_t C = g->cfg.n_embd, V = g->cfg.vocab_size;
  sparq_status s;
  TIMED_VOID(other, sparq_nn_layernorm_forward(ln, mean, rstd, in, g->ln_f_w->data, data_or_null(g->ln_f_b), N, C));
  TIMED(gemm, sparq_nn_linear_forward(logits, ln, g->wte->data, NULL, N, C, V));
  return SPARQ_OK;
}

sparq_status sparq_gpt_forward(sparq_gpt *g, const int32_t *x, const int32_t *y, int64_t B, int64_t T, float *loss) {
  return sparq_gpt_forward_cond(g, x, y, NULL, NULL, B, T, loss);
}

sparq_status sparq_gpt_forward_cond(sparq_gpt *g, const int32_t *x, const int32_t *y, const int32_t *labels,
                                    const float *gft_beta, int64_t B, int64_t T, float *loss) {
  static const char who[] = "sparq_gpt_forward";
  sparq_status s = gpt_check_inputs(g, who, x, y, labels, gft_beta, B, T);
  if (s) return s;
  const sparq_gpt_config *c = &g->cfg;
  const int64_t Tp = gpt_rows_per_seq(g, T), N = B * Tp, V = c->vocab_size;
  if ((s = gpt_reserve(g, N))) return s;
  memcpy(g->tokens, x, (size_t)(B * T) * sizeof *x);
  if (y && Tp == T) memcpy(g->targets, y, (size_t)N * sizeof *y);
  for (int64_t b = 0; y && Tp != T && b < B; b++) {
    /* the prefix row is context only (gpt.h) */
    g->targets[b * Tp] = -1;
    memcpy(g->targets + b * Tp + 1, y + b * T, (size_t)T * sizeof *y);
  }
  g->B = B;
  g->T = T;
  g->has_targets = g->has_forward = false;

  /* FP8 activations (gpt_fp8_forward.c) keep the residual stream in two ping-pong buffers */
  float *res0 = g->fp8_act ? g->fp8_res[0] : g->residual[0];
  if (c->num_classes == 0) {
    TIMED_VOID(other, sparq_nn_embedding_forward(res0, x, g->wte->data, g->wpe->data, B, T, c->n_embd));
  } else {
    TIMED(other, gpt_embed_forward(g, res0, x, labels, gft_beta, B, T, g->beta_freq, g->prefix, g->labels));
  }
  if (g->fp8_act) {
    if ((s = gpt_fp8_forward(g, B, Tp))) return s;
  } else {
    for (int64_t l = 0; l < c->n_layer; l++)
      if ((s = gpt_block_forward(g, &g->blocks[l], &g->acts[l], g->residual[l], g->residual[l + 1], B, Tp)))
        return s;
    if ((s = gpt_head_forward(g, g->ln_f, g->ln_f_mean, g->ln_f_rstd, g->residual[c->n_layer], g->logits, N)))
      return s;
  }
  if (y) {
    float l = 0;
    TIMED(other, sparq_nn_xent_forward(&l, g->probs, g->logits, g->targets, N, V));
    if (loss) *loss = l;
    g->has_targets = true;
  }
  g->has_forward = true;
  return SPARQ_OK;
}

sparq_status gpt_linear_backward_fresh(sparq_gpt *g, float *dinp, float *dw, float *db, const float *dout,
                                       const float *inp, const float *w, int64_t N, int64_t Cin, int64_t OC) {
  sparq_status s;
  TIMED(gemm, sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, Cin, OC, 1.0f, dout, OC, w, Cin, 0.0f, dinp, Cin));
  TIMED(gemm, sparq_nn_linear_backward(NULL, dw, db, dout, inp, w, N, Cin, OC));
  return SPARQ_OK;
}

/* Everything below the logits, from dlogits [N,V]. */
static sparq_status backward_from(sparq_gpt *g, const float *dlogits) {
  if (g->fp8_act) return gpt_fp8_backward(g, dlogits);
  const sparq_gpt_config *c = &g->cfg;
  const int64_t B = g->B, Tp = gpt_rows_per_seq(g, g->T), N = B * Tp, C = c->n_embd, NH = c->n_head, hd = C / NH,
                V = c->vocab_size;
  sparq_status s;
  if ((s = gpt_linear_backward_fresh(g, g->d_ln, g->wte->grad, NULL, dlogits, g->ln_f, g->wte->data, N, C, V)))
    return s;
  TIMED_VOID(other, memset(g->d_res, 0, (size_t)(N * C) * sizeof(float)));
  TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, g->ln_f_w->grad, grad_or_null(g->ln_f_b), g->d_ln,
                                                g->residual[c->n_layer], g->ln_f_w->data, g->ln_f_mean,
                                                g->ln_f_rstd, N, C));
  for (int64_t l = c->n_layer - 1; l >= 0; l--) {
    const gpt_block_params *p = &g->blocks[l];
    const gpt_block_acts *a = &g->acts[l];
    /* d_res holds d(residual[l + 1]); the MLP branch. */
    if (p->router) {
      const sparq_moe_dims d = gpt_moe_dims(g);
      const sparq_moe_weights w = gpt_moe_weights(p);
      const sparq_moe_grads gr = gpt_moe_grads(p);
      /* gpt.h: lambda times the MoE blocks' mean regulariser, aux summed over blocks */
      const float reg_scale = g->moe_dloss * g->moe_lambda / (float)g->moe_count;
      TIMED(gemm, sparq_moe_backward(a->moe, &d, &w, &gr, a->ln_2, g->d_res, g->d_ln, g->moe_l1, reg_scale,
                                     g->moe_dloss * g->moe_aux));
    } else {
      if ((s = gpt_linear_backward_fresh(g, g->d_fc, p->mlp_proj_w->grad, grad_or_null(p->mlp_proj_b), g->d_res,
                                     a->fc_gelu, p->mlp_proj_w->data, N, 4 * C, C)))
        return s;
      TIMED_VOID(other, sparq_nn_gelu_backward(g->d_fc, a->fc, g->d_fc, (size_t)(N * 4 * C)));
      if ((s = gpt_linear_backward_fresh(g, g->d_ln, p->c_fc_w->grad, grad_or_null(p->c_fc_b), g->d_fc, a->ln_2,
                                     p->c_fc_w->data, N, C, 4 * C)))
        return s;
    }
    TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, p->ln_2_w->grad, grad_or_null(p->ln_2_b), g->d_ln,
                                                  a->res_mid, p->ln_2_w->data, a->ln_2_mean, a->ln_2_rstd, N, C));
    /* d_res now holds d(res_mid); the attention branch. */
    if ((s = gpt_linear_backward_fresh(g, g->d_att, p->attn_proj_w->grad, grad_or_null(p->attn_proj_b), g->d_res,
                                   a->att, p->attn_proj_w->data, N, C, C)))
      return s;
    TIMED(attention, sparq_nn_attention_backward(g->d_q, g->d_k, g->d_v, g->d_att, a->q, a->k, a->v, a->att, a->lse,
                                                 B, Tp, NH, hd));
    const float *dqkv[3] = {g->d_q, g->d_k, g->d_v};
    for (int j = 0; j < 3; j++) {
      const float *w = p->c_attn_w->data + j * C * C;
      TIMED(gemm, sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, C, C, 1.0f, dqkv[j], C, w, C, j ? 1.0f : 0.0f,
                              g->d_ln, C));
      float *db = p->c_attn_b ? p->c_attn_b->grad + j * C : NULL;
      TIMED(gemm, sparq_nn_linear_backward(NULL, p->c_attn_w->grad + j * C * C, db, dqkv[j], a->ln_1, w, N, C, C));
    }
    TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, p->ln_1_w->grad, grad_or_null(p->ln_1_b), g->d_ln,
                                                  g->residual[l], p->ln_1_w->data, a->ln_1_mean, a->ln_1_rstd, N, C));
  }
  if (c->num_classes == 0) {
    TIMED_VOID(other, sparq_nn_embedding_backward(g->wte->grad, g->wpe->grad, g->d_res, g->tokens, B, g->T, C));
  } else {
    TIMED(other, gpt_embed_backward(g, g->d_res));
  }
  return SPARQ_OK;
}

sparq_status sparq_gpt_backward(sparq_gpt *g, float dloss) {
  if (!g) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_backward: NULL model");
  if (!g->has_targets)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_backward: the last forward had no targets (or failed)");
  const int64_t N = g->B * gpt_rows_per_seq(g, g->T), V = g->cfg.vocab_size;
  TIMED_VOID(other, memset(g->d_logits, 0, (size_t)(N * V) * sizeof(float)));
  TIMED_VOID(other, sparq_nn_xent_backward(g->d_logits, g->probs, g->targets, N, V, dloss));
  g->moe_dloss = dloss;
  sparq_status s = backward_from(g, g->d_logits);
  g->moe_dloss = 1.0f;
  return s;
}

sparq_status sparq_gpt_backward_logits(sparq_gpt *g, const float *dlogits) {
  if (!g || !dlogits) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_backward_logits: NULL argument");
  if (!g->has_forward) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_backward_logits: no forward to differentiate");
  return backward_from(g, dlogits);
}
