/* GPT forward and backward: nanoGPT's block order on the layers of nn.h.
 *
 * c_attn ([3C, C]) is applied as three GEMMs, one per row block of its
 * weight, writing q, k and v into dense [N, C] buffers: that is the NHD
 * layout the attention kernel reads, with no split copy, and three
 * N x C x C GEMMs run faster here than one N x 3C x C with a 3C-wide
 * output. */
#include <inttypes.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"

#define TIMED(bucket, call)                  \
  do {                                       \
    double t0_ = sparq_now();                \
    s = (call);                              \
    g->timing.bucket += sparq_now() - t0_;   \
    if (s) return s;                         \
  } while (0)
#define TIMED_VOID(bucket, call)             \
  do {                                       \
    double t0_ = sparq_now();                \
    call;                                    \
    g->timing.bucket += sparq_now() - t0_;   \
  } while (0)

static const float *data_or_null(const sparq_param *p) { return p ? p->data : NULL; }
static float *grad_or_null(const sparq_param *p) { return p ? p->grad : NULL; }

static sparq_status check_tokens(const sparq_gpt *g, const int32_t *t, int64_t n, const char *what, bool allow_neg) {
  for (int64_t i = 0; i < n; i++) {
    if (t[i] >= g->cfg.vocab_size || (t[i] < 0 && !allow_neg))
      return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_forward: %s[%" PRId64 "] = %d is outside 0..%" PRId64, what, i,
                        (int)t[i], g->cfg.vocab_size - 1);
  }
  return SPARQ_OK;
}

sparq_status sparq_gpt_forward(sparq_gpt *g, const int32_t *x, const int32_t *y, int64_t B, int64_t T, float *loss) {
  if (!g || !x) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_forward: NULL argument");
  const sparq_gpt_config *c = &g->cfg;
  if (B < 1 || T < 1 || T > c->block_size)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_forward: B %" PRId64 " and T %" PRId64 " (block_size %" PRId64 ")", B,
                      T, c->block_size);
  if (B > INT64_MAX / T || B * T > ((int64_t)1 << 30) / c->n_embd)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_forward: B %" PRId64 " x T %" PRId64 " is too large", B, T);
  const int64_t N = B * T, C = c->n_embd, NH = c->n_head, hd = C / NH, V = c->vocab_size;
  sparq_status s = check_tokens(g, x, N, "x", false);
  if (s) return s;
  if (y && (s = check_tokens(g, y, N, "y", true))) return s;
  if ((s = gpt_reserve(g, N))) return s;
  memcpy(g->tokens, x, (size_t)N * sizeof *x);
  if (y) memcpy(g->targets, y, (size_t)N * sizeof *y);
  g->B = B;
  g->T = T;
  g->has_targets = false;

  TIMED_VOID(other, sparq_nn_embedding_forward(g->residual[0], x, g->wte->data, g->wpe->data, B, T, C));
  for (int64_t l = 0; l < c->n_layer; l++) {
    const gpt_block_params *p = &g->blocks[l];
    gpt_block_acts *a = &g->acts[l];
    const float *in = g->residual[l];
    TIMED_VOID(other, sparq_nn_layernorm_forward(a->ln_1, a->ln_1_mean, a->ln_1_rstd, in, p->ln_1_w->data,
                                                 data_or_null(p->ln_1_b), N, C));
    float *qkv[3] = {a->q, a->k, a->v};
    for (int j = 0; j < 3; j++) {
      const float *bias = p->c_attn_b ? p->c_attn_b->data + j * C : NULL;
      TIMED(gemm, sparq_nn_linear_forward(qkv[j], a->ln_1, p->c_attn_w->data + j * C * C, bias, N, C, C));
    }
    TIMED(attention, sparq_nn_attention_forward(a->att, a->lse, a->q, a->k, a->v, B, T, NH, hd));
    TIMED(gemm, sparq_nn_linear_forward(a->res_mid, a->att, p->attn_proj_w->data, data_or_null(p->attn_proj_b), N,
                                        C, C));
    TIMED_VOID(other, sparq_nn_residual_forward(a->res_mid, a->res_mid, in, (size_t)(N * C)));
    TIMED_VOID(other, sparq_nn_layernorm_forward(a->ln_2, a->ln_2_mean, a->ln_2_rstd, a->res_mid, p->ln_2_w->data,
                                                 data_or_null(p->ln_2_b), N, C));
    TIMED(gemm, sparq_nn_linear_forward(a->fc, a->ln_2, p->c_fc_w->data, data_or_null(p->c_fc_b), N, C, 4 * C));
    TIMED_VOID(other, sparq_nn_gelu_forward(a->fc_gelu, a->fc, (size_t)(N * 4 * C)));
    float *out = g->residual[l + 1];
    TIMED(gemm, sparq_nn_linear_forward(out, a->fc_gelu, p->mlp_proj_w->data, data_or_null(p->mlp_proj_b), N,
                                        4 * C, C));
    TIMED_VOID(other, sparq_nn_residual_forward(out, out, a->res_mid, (size_t)(N * C)));
  }
  TIMED_VOID(other, sparq_nn_layernorm_forward(g->ln_f, g->ln_f_mean, g->ln_f_rstd, g->residual[c->n_layer],
                                               g->ln_f_w->data, data_or_null(g->ln_f_b), N, C));
  TIMED(gemm, sparq_nn_linear_forward(g->logits, g->ln_f, g->wte->data, NULL, N, C, V));
  if (y) {
    float l = 0;
    TIMED(other, sparq_nn_xent_forward(&l, g->probs, g->logits, y, N, V));
    if (loss) *loss = l;
    g->has_targets = true;
  }
  return SPARQ_OK;
}

/* dinp = dout * w (overwritten) and the weight/bias gradients accumulated. */
static sparq_status linear_backward_fresh(sparq_gpt *g, float *dinp, float *dw, float *db, const float *dout,
                                          const float *inp, const float *w, int64_t N, int64_t Cin, int64_t OC) {
  sparq_status s;
  TIMED(gemm, sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, Cin, OC, 1.0f, dout, OC, w, Cin, 0.0f, dinp, Cin));
  TIMED(gemm, sparq_nn_linear_backward(NULL, dw, db, dout, inp, w, N, Cin, OC));
  return SPARQ_OK;
}

sparq_status sparq_gpt_backward(sparq_gpt *g, float dloss) {
  if (!g) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_backward: NULL model");
  if (!g->has_targets)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_backward: the last forward had no targets (or failed)");
  const sparq_gpt_config *c = &g->cfg;
  const int64_t B = g->B, T = g->T, N = B * T, C = c->n_embd, NH = c->n_head, hd = C / NH, V = c->vocab_size;
  sparq_status s;

  TIMED_VOID(other, memset(g->d_logits, 0, (size_t)(N * V) * sizeof(float)));
  TIMED_VOID(other, sparq_nn_xent_backward(g->d_logits, g->probs, g->targets, N, V, dloss));
  if ((s = linear_backward_fresh(g, g->d_ln, g->wte->grad, NULL, g->d_logits, g->ln_f, g->wte->data, N, C, V)))
    return s;
  TIMED_VOID(other, memset(g->d_res, 0, (size_t)(N * C) * sizeof(float)));
  TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, g->ln_f_w->grad, grad_or_null(g->ln_f_b), g->d_ln,
                                                g->residual[c->n_layer], g->ln_f_w->data, g->ln_f_mean,
                                                g->ln_f_rstd, N, C));
  for (int64_t l = c->n_layer - 1; l >= 0; l--) {
    const gpt_block_params *p = &g->blocks[l];
    const gpt_block_acts *a = &g->acts[l];
    /* d_res holds d(residual[l + 1]); the MLP branch. */
    if ((s = linear_backward_fresh(g, g->d_fc, p->mlp_proj_w->grad, grad_or_null(p->mlp_proj_b), g->d_res,
                                   a->fc_gelu, p->mlp_proj_w->data, N, 4 * C, C)))
      return s;
    TIMED_VOID(other, sparq_nn_gelu_backward(g->d_fc, a->fc, g->d_fc, (size_t)(N * 4 * C)));
    if ((s = linear_backward_fresh(g, g->d_ln, p->c_fc_w->grad, grad_or_null(p->c_fc_b), g->d_fc, a->ln_2,
                                   p->c_fc_w->data, N, C, 4 * C)))
      return s;
    TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, p->ln_2_w->grad, grad_or_null(p->ln_2_b), g->d_ln,
                                                  a->res_mid, p->ln_2_w->data, a->ln_2_mean, a->ln_2_rstd, N, C));
    /* d_res now holds d(res_mid); the attention branch. */
    if ((s = linear_backward_fresh(g, g->d_att, p->attn_proj_w->grad, grad_or_null(p->attn_proj_b), g->d_res,
                                   a->att, p->attn_proj_w->data, N, C, C)))
      return s;
    TIMED(attention, sparq_nn_attention_backward(g->d_q, g->d_k, g->d_v, g->d_att, a->q, a->k, a->v, a->att, a->lse,
                                                 B, T, NH, hd));
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
  TIMED_VOID(other, sparq_nn_embedding_backward(g->wte->grad, g->wpe->grad, g->d_res, g->tokens, B, T, C));
  return SPARQ_OK;
}
