/* The GPT backward with FP8 activations (gpt.h): backward_from's order,
 * reading each saved tensor back into the one-layer FP32 work buffers
 * (X = the q k v att / fc block, Y = the ln buffer) just before its use,
 * and rounding the dout of every linear layer through E5M2. The residual
 * gradient d_res stays FP32; the branches that start from it get a rounded
 * copy in Y. d_fc is d_att..d_v here (gpt_reserve). */
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"

static float *grad_or_null(const sparq_param *p) { return p ? p->grad : NULL; }

/* Y = E5M2(d_res): the dout of a c_proj, whose own gradient keeps flowing.
 * Y is free from here until the next saved input is read into it. */
static float rounded_copy_of_d_res(sparq_gpt *g, size_t N, size_t C) {
  float *G = g->fp8_work.ln_1;
  memcpy(G, g->d_res, N * C * sizeof(float));
  return gpt_fp8_round_grads(g, &G, 1, N, C);
}

sparq_status gpt_fp8_backward(sparq_gpt *g, const float *dlogits) {
  const sparq_gpt_config *c = &g->cfg;
  const int64_t B = g->B, Tp = gpt_rows_per_seq(g, g->T), N = B * Tp, C = c->n_embd, NH = c->n_head, hd = C / NH,
                V = c->vocab_size;
  const size_t n = (size_t)N, nc = (size_t)(N * C);
  gpt_block_acts *w = &g->fp8_work;
  float *Y = w->ln_1;
  float *scale = g->fp8_grad_scale;
  sparq_status s;
  g->fp8_grads_valid = false;

  /* lm_head: its dout is the logits' gradient, rounded in our own copy */
  if (dlogits != g->d_logits) TIMED_VOID(other, memcpy(g->d_logits, dlogits, (size_t)(N * V) * sizeof(float)));
  TIMED_VOID(other, scale[c->n_layer * GPT_GRAD_PER_BLOCK] = gpt_fp8_round_grads(g, &g->d_logits, 1, n, (size_t)V));
  TIMED_VOID(other, gpt_fp8_load(g, Y, &g->fp8_head_in, n));
  if ((s = gpt_linear_backward_fresh(g, g->d_ln, g->wte->grad, NULL, g->d_logits, Y, g->wte->data, N, C, V)))
    return s;
  TIMED_VOID(other, memset(g->d_res, 0, nc * sizeof(float)));
  TIMED_VOID(other, gpt_fp8_load(g, Y, &g->fp8_lnf_in, n));
  TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, g->ln_f_w->grad, grad_or_null(g->ln_f_b), g->d_ln, Y,
                                                g->ln_f_w->data, g->ln_f_mean, g->ln_f_rstd, N, C));
  for (int64_t l = c->n_layer - 1; l >= 0; l--) {
    const gpt_block_params *p = &g->blocks[l];
    const gpt_fp8_block *sv = &g->fp8[l];
    float *sl = scale + l * GPT_GRAD_PER_BLOCK;
    /* d_res holds d(residual[l + 1]); the MLP branch. */
    TIMED_VOID(other, sl[GPT_GRAD_MLP_PROJ] = rounded_copy_of_d_res(g, n, (size_t)C));
    TIMED_VOID(other, gpt_fp8_load(g, w->fc_gelu, &sv->proj_in, n));
    if ((s = gpt_linear_backward_fresh(g, g->d_fc, p->mlp_proj_w->grad, grad_or_null(p->mlp_proj_b), Y,
                                       w->fc_gelu, p->mlp_proj_w->data, N, 4 * C, C)))
      return s;
    TIMED_VOID(other, gpt_fp8_load(g, w->fc, &sv->gelu_in, n));
    TIMED_VOID(other, sparq_nn_gelu_backward(g->d_fc, w->fc, g->d_fc, 4 * nc));
    TIMED_VOID(other, sl[GPT_GRAD_C_FC] = gpt_fp8_round_grads(g, &g->d_fc, 1, n, (size_t)(4 * C)));
    TIMED_VOID(other, gpt_fp8_load(g, Y, &sv->fc_in, n));
    if ((s = gpt_linear_backward_fresh(g, g->d_ln, p->c_fc_w->grad, grad_or_null(p->c_fc_b), g->d_fc, Y,
                                       p->c_fc_w->data, N, C, 4 * C)))
      return s;
    TIMED_VOID(other, gpt_fp8_load(g, Y, &sv->ln_2_in, n));
    TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, p->ln_2_w->grad, grad_or_null(p->ln_2_b), g->d_ln, Y,
                                                  p->ln_2_w->data, sv->ln_2_mean, sv->ln_2_rstd, N, C));
    /* d_res now holds d(res_mid); the attention branch. */
    TIMED_VOID(other, sl[GPT_GRAD_ATTN_PROJ] = rounded_copy_of_d_res(g, n, (size_t)C));
    TIMED_VOID(other, gpt_fp8_load_hp(g, w->q, sv->q, nc));
    TIMED_VOID(other, gpt_fp8_load_hp(g, w->k, sv->k, nc));
    TIMED_VOID(other, gpt_fp8_load_hp(g, w->v, sv->v, nc));
    TIMED_VOID(other, gpt_fp8_load_hp(g, w->att, sv->att, nc));
    if ((s = gpt_linear_backward_fresh(g, g->d_att, p->attn_proj_w->grad, grad_or_null(p->attn_proj_b), Y,
                                       w->att, p->attn_proj_w->data, N, C, C)))
      return s;
    TIMED(attention, sparq_nn_attention_backward(g->d_q, g->d_k, g->d_v, g->d_att, w->q, w->k, w->v, w->att, sv->lse,
                                                 B, Tp, NH, hd));
    float *dqkv[3] = {g->d_q, g->d_k, g->d_v};
    TIMED_VOID(other, sl[GPT_GRAD_C_ATTN] = gpt_fp8_round_grads(g, dqkv, 3, n, (size_t)C));
    TIMED_VOID(other, gpt_fp8_load(g, Y, &sv->attn_in, n));
    for (int j = 0; j < 3; j++) {
      const float *wj = p->c_attn_w->data + j * C * C;
      TIMED(gemm, sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, C, C, 1.0f, dqkv[j], C, wj, C, j ? 1.0f : 0.0f,
                              g->d_ln, C));
      float *db = p->c_attn_b ? p->c_attn_b->grad + j * C : NULL;
      TIMED(gemm, sparq_nn_linear_backward(NULL, p->c_attn_w->grad + j * C * C, db, dqkv[j], Y, wj, N, C, C));
    }
    TIMED_VOID(other, gpt_fp8_load(g, Y, &sv->ln_1_in, n));
    TIMED_VOID(other, sparq_nn_layernorm_backward(g->d_res, p->ln_1_w->grad, grad_or_null(p->ln_1_b), g->d_ln, Y,
                                                  p->ln_1_w->data, sv->ln_1_mean, sv->ln_1_rstd, N, C));
  }
  if (c->num_classes == 0) {
    TIMED_VOID(other, sparq_nn_embedding_backward(g->wte->grad, g->wpe->grad, g->d_res, g->tokens, B, g->T, C));
  } else {
    TIMED(other, gpt_embed_backward(g, g->d_res));
  }
  g->fp8_grads_valid = !g->fp8_grad_fp32;
  return SPARQ_OK;
}
