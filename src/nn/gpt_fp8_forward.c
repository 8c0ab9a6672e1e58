/* The GPT forward with FP8 activations (gpt.h): the kernels, arguments and
 * order of gpt_block_forward / gpt_head_forward, so every value (and the
 * loss) has the same bits, with FP32 work buffers that hold one layer and
 * an FP8 (or BF16) copy of what backward needs taken as each value is
 * produced. */
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

static const float *data_or_null(const sparq_param *p) { return p ? p->data : NULL; }

/* The forward's FP32 buffers. Backward's scratch is idle during the
 * forward, so it holds them: the residual streams are d_res and d_ln
 * (fp8_res), q k v att (then c_fc's output, 4 N C) are d_att..d_v, the
 * LayerNorm output is the work buffer Y and res_mid the first of X. */
static gpt_block_acts forward_view(const sparq_gpt *g) {
  gpt_block_acts w = {0};
  w.ln_1 = w.ln_2 = g->fp8_work.ln_1;
  w.q = g->d_att, w.k = g->d_q, w.v = g->d_k, w.att = g->d_v;
  w.fc = w.fc_gelu = g->d_att;
  w.res_mid = g->fp8_work.q;
  return w;
}

static sparq_status block_forward(sparq_gpt *g, gpt_block_acts *w, int64_t l, const float *in, float *out, int64_t B,
                                  int64_t Tp) {
  const int64_t N = B * Tp, C = g->cfg.n_embd, NH = g->cfg.n_head, hd = C / NH;
  const gpt_block_params *p = &g->blocks[l];
  gpt_fp8_block *sv = &g->fp8[l];
  const size_t n = (size_t)N, nc = (size_t)(N * C);
  sparq_status s;
  TIMED_VOID(other, gpt_fp8_save(g, &sv->ln_1_in, in, n, SPARQ_GPT_ACT_LN1_IN));
  TIMED_VOID(other, sparq_nn_layernorm_forward(w->ln_1, sv->ln_1_mean, sv->ln_1_rstd, in, p->ln_1_w->data,
                                               data_or_null(p->ln_1_b), N, C));
  TIMED_VOID(other, gpt_fp8_save(g, &sv->attn_in, w->ln_1, n, SPARQ_GPT_ACT_ATTN_IN));
  float *qkv[3] = {w->q, w->k, w->v};
  for (int j = 0; j < 3; j++) {
    const float *bias = p->c_attn_b ? p->c_attn_b->data + j * C : NULL;
    TIMED(gemm, sparq_nn_linear_forward(qkv[j], w->ln_1, p->c_attn_w->data + j * C * C, bias, N, C, C));
  }
  TIMED(attention, sparq_nn_attention_forward(w->att, sv->lse, w->q, w->k, w->v, B, Tp, NH, hd));
  TIMED(gemm, sparq_nn_linear_forward(w->res_mid, w->att, p->attn_proj_w->data, data_or_null(p->attn_proj_b), N,
                                      C, C));
  TIMED_VOID(other, sparq_nn_residual_forward(w->res_mid, w->res_mid, in, nc));
  TIMED_VOID(other, gpt_fp8_save_hp(g, sv->q, w->q, nc));
  TIMED_VOID(other, gpt_fp8_save_hp(g, sv->k, w->k, nc));
  TIMED_VOID(other, gpt_fp8_save_hp(g, sv->v, w->v, nc));
  TIMED_VOID(other, gpt_fp8_save_hp(g, sv->att, w->att, nc));
  TIMED_VOID(other, gpt_fp8_save(g, &sv->ln_2_in, w->res_mid, n, SPARQ_GPT_ACT_LN2_IN));
  TIMED_VOID(other, sparq_nn_layernorm_forward(w->ln_2, sv->ln_2_mean, sv->ln_2_rstd, w->res_mid, p->ln_2_w->data,
                                               data_or_null(p->ln_2_b), N, C));
  TIMED_VOID(other, gpt_fp8_save(g, &sv->fc_in, w->ln_2, n, SPARQ_GPT_ACT_FC_IN));
  /* w->fc is the q k v att buffer, free now that they are saved */
  TIMED(gemm, sparq_nn_linear_forward(w->fc, w->ln_2, p->c_fc_w->data, data_or_null(p->c_fc_b), N, C, 4 * C));
  TIMED_VOID(other, gpt_fp8_save(g, &sv->gelu_in, w->fc, n, SPARQ_GPT_ACT_GELU_IN));
  TIMED_VOID(other, sparq_nn_gelu_forward(w->fc_gelu, w->fc, 4 * nc)); /* in place (nn.h allows it) */
  TIMED_VOID(other, gpt_fp8_save(g, &sv->proj_in, w->fc_gelu, n, SPARQ_GPT_ACT_PROJ_IN));
  TIMED(gemm, sparq_nn_linear_forward(out, w->fc_gelu, p->mlp_proj_w->data, data_or_null(p->mlp_proj_b), N, 4 * C,
                                      C));
  TIMED_VOID(other, sparq_nn_residual_forward(out, out, w->res_mid, nc));
  return SPARQ_OK;
}

sparq_status gpt_fp8_forward(sparq_gpt *g, int64_t B, int64_t Tp) {
  const sparq_gpt_config *c = &g->cfg;
  const int64_t N = B * Tp, C = c->n_embd, V = c->vocab_size;
  sparq_status s;
  g->fp8_grads_valid = false;
  g->fp8_stats_valid = false;
  memset(g->fp8_stats, 0, sizeof g->fp8_stats);
  memset(g->fp8_nonfinite, 0, sizeof g->fp8_nonfinite);
  gpt_block_acts w = forward_view(g);
  float *in = g->fp8_res[0], *out = g->fp8_res[1];
  for (int64_t l = 0; l < c->n_layer; l++) {
    if ((s = block_forward(g, &w, l, in, out, B, Tp))) return s;
    float *t = in;
    in = out, out = t;
  }
  TIMED_VOID(other, gpt_fp8_save(g, &g->fp8_lnf_in, in, (size_t)N, SPARQ_GPT_ACT_LNF_IN));
  TIMED_VOID(other, sparq_nn_layernorm_forward(w.ln_1, g->ln_f_mean, g->ln_f_rstd, in, g->ln_f_w->data,
                                               data_or_null(g->ln_f_b), N, C));
  TIMED_VOID(other, gpt_fp8_save(g, &g->fp8_head_in, w.ln_1, (size_t)N, SPARQ_GPT_ACT_HEAD_IN));
  TIMED(gemm, sparq_nn_linear_forward(g->logits, w.ln_1, g->wte->data, NULL, N, C, V));
  g->fp8_stats_valid = g->fp8_stats_on;
  return SPARQ_OK;
}
