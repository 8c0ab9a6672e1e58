/* DiT backward: the forward of dit_forward.c in reverse, layer by layer.
 *
 * Scratch use (all in the training dit_work): d_res carries d(residual
 * stream) down the blocks; d_a and d_b alternate as the gradients of a
 * branch output, of a modulated input and of a norm output; d_mod gathers a
 * block's six adaLN chunks; d_sc sums the gradient of SiLU(c) over every
 * adaLN_modulation.1 (they all read the same SiLU(c)). Buffers that a layer
 * accumulates into are zeroed first; a linear layer's input gradient is
 * written fresh by its GEMM (beta = 0), which saves the zeroing pass. */
#include <string.h>

#include "nn/dit_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"

static void zero(float *p, int64_t n) { memset(p, 0, (size_t)n * sizeof(float)); }

/* A linear layer's backward with dinp [N,C] OVERWRITTEN (dinp = dout w) and
 * the weight and bias gradients accumulated. */
static sparq_status linear_backward_fresh(float *dinp, sparq_param *w, sparq_param *b, const float *dout,
                                          const float *inp, int64_t N, int64_t C, int64_t OC) {
  sparq_status s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, C, OC, 1.0f, dout, OC, w->data, C, 0.0f, dinp, C);
  if (s) return s;
  return sparq_nn_linear_backward(NULL, w->grad, b ? b->grad : NULL, dout, inp, w->data, N, C, OC);
}

/* FinalLayer and unpatchify: d(out) -> d_res = d(last stream); d_sc += . */
static sparq_status final_backward(sparq_dit *m, dit_work *w, const float *dout, int64_t B) {
  const sparq_dit_config *c = &m->cfg;
  const int64_t T = m->T, N = B * T, D = c->hidden_size, K = m->K;
  sparq_status s;
  zero(w->d_lin, N * K);
  sparq_nn_unpatchify_backward(w->d_lin, dout, B, c->in_channels, c->input_size, c->input_size, c->patch_size);
  if ((s = linear_backward_fresh(w->d_b, m->f_lin_w, m->f_lin_b, w->d_lin, w->modf, N, D, K))) return s;
  float *d_fmod = w->d_mod; /* [B,2D]: shift, scale */
  zero(d_fmod, B * 2 * D);
  zero(w->d_a, N * D);
  sparq_nn_modulate_backward(w->d_a, d_fmod, d_fmod + D, w->d_b, w->lnf, w->fmod + D, 2 * D, B, T, D);
  zero(w->d_res, N * D);
  sparq_nn_layernorm_plain_backward(w->d_res, w->d_a, w->res[c->depth], w->lnf_mean, w->lnf_rstd, N, D);
  return sparq_nn_linear_backward(w->d_sc, m->f_ada_w->grad, m->f_ada_b->grad, d_fmod, w->sc, m->f_ada_w->data, B,
                                  D, 2 * D);
}

/* One block: d_res = d(out) on entry, d(in) on return; d_sc += . */
static sparq_status block_backward(sparq_dit *m, const dit_block_params *p, const dit_block_acts *a, dit_work *w,
                                   const float *in, int64_t B) {
  const int64_t T = m->T, N = B * T, D = m->cfg.hidden_size, M = m->M, L = 6 * D;
  const int64_t H = m->cfg.num_heads;
  float *dm = w->d_mod;
  sparq_status s;
  zero(dm, B * L);

  /* MLP branch: out = res_mid + gate_mlp * fc2(gelu(fc1(modulate(norm2(res_mid))))) */
  zero(w->d_a, N * D);
  sparq_nn_gated_residual_backward(NULL, dm + 5 * D, w->d_a, w->d_res, a->mod + 5 * D, a->mlp_out, L, B, T, D);
  if ((s = linear_backward_fresh(w->d_fc, p->fc2_w, p->fc2_b, w->d_a, a->fc1_gelu, N, M, D))) return s;
  sparq_nn_gelu_tanh_backward(w->d_fc, a->fc1, w->d_fc, (size_t)(N * M));
  if ((s = linear_backward_fresh(w->d_b, p->fc1_w, p->fc1_b, w->d_fc, a->mod2, N, D, M))) return s;
  zero(w->d_a, N * D);
  sparq_nn_modulate_backward(w->d_a, dm + 3 * D, dm + 4 * D, w->d_b, a->ln2, a->mod + 4 * D, L, B, T, D);
  sparq_nn_layernorm_plain_backward(w->d_res, w->d_a, a->res_mid, a->ln2_mean, a->ln2_rstd, N, D);

  /* attention branch: res_mid = in + gate_msa * proj(attn(qkv(modulate(norm1(in))))) */
  zero(w->d_a, N * D);
  sparq_nn_gated_residual_backward(NULL, dm + 2 * D, w->d_a, w->d_res, a->mod + 2 * D, a->attn_out, L, B, T, D);
  if ((s = linear_backward_fresh(w->d_b, p->proj_w, p->proj_b, w->d_a, a->att, N, D, D))) return s;
  if ((s = sparq_nn_attention_full_backward(w->d_q, w->d_k, w->d_v, w->d_b, a->q, a->k, a->v, a->att, a->lse, B, T,
                                            H, m->hd)))
    return s;
  const float *dqkv[3] = {w->d_q, w->d_k, w->d_v};
  for (int j = 0; j < 3; j++) {
    const float *wj = p->qkv_w->data + j * D * D;
    /* d_a = sum_j dqkv_j W_j: the first GEMM overwrites, the others add */
    if ((s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, D, D, 1.0f, dqkv[j], D, wj, D, j ? 1.0f : 0.0f, w->d_a,
                         D)))
      return s;
    if ((s = sparq_nn_linear_backward(NULL, p->qkv_w->grad + j * D * D, p->qkv_b->grad + j * D, dqkv[j], a->mod1, wj,
                                      N, D, D)))
      return s;
  }
  zero(w->d_b, N * D);
  sparq_nn_modulate_backward(w->d_b, dm, dm + D, w->d_a, a->ln1, a->mod + D, L, B, T, D);
  sparq_nn_layernorm_plain_backward(w->d_res, w->d_b, in, a->ln1_mean, a->ln1_rstd, N, D);

  /* adaLN_modulation.1 on SiLU(c) */
  return sparq_nn_linear_backward(w->d_sc, p->ada_w->grad, p->ada_b->grad, dm, w->sc, p->ada_w->data, B, D, L);
}

/* d_sc -> the label table, t_embedder and cond_proj gradients. */
static sparq_status condition_backward(sparq_dit *m, dit_work *w, int64_t B) {
  const int64_t D = m->cfg.hidden_size, F = SPARQ_DIT_FREQ_DIM, E = m->cfg.extra_dim;
  sparq_status s;
  zero(w->d_c, B * D);
  sparq_nn_silu_backward(w->d_c, w->c, w->d_sc, (size_t)(B * D));
  /* y_embedder: rows in sample order (a label may repeat) */
  for (int64_t b = 0; b < B; b++) {
    float *g = m->y_table->grad + (int64_t)w->y[b] * D;
    for (int64_t i = 0; i < D; i++) g[i] += w->d_c[b * D + i];
  }
  if ((s = linear_backward_fresh(w->d_s1, m->t2_w, m->t2_b, w->d_c, w->s1, B, D, D))) return s;
  zero(w->d_h1, B * D);
  sparq_nn_silu_backward(w->d_h1, w->h1, w->d_s1, (size_t)(B * D));
  if (E == 0) return sparq_nn_linear_backward(NULL, m->t0_w->grad, m->t0_b->grad, w->d_h1, w->t_freq, m->t0_w->data,
                                              B, F, D);
  if ((s = linear_backward_fresh(w->d_tfreq, m->t0_w, m->t0_b, w->d_h1, w->t_freq, B, F, D))) return s;
  return sparq_nn_linear_backward(NULL, m->cond_w->grad, NULL, w->d_tfreq, w->e_freq, m->cond_w->data, B, E, F);
}

sparq_status sparq_dit_backward(sparq_dit *m, const float *dout) {
  if (!m || !dout) return sparq_fail(SPARQ_ERR_ARG, "sparq_dit_backward: NULL argument");
  if (!m->has_fwd) return sparq_fail(SPARQ_ERR_ARG, "sparq_dit_backward: no successful sparq_dit_forward before");
  dit_work *w = &m->train;
  const int64_t B = m->B, N = B * m->T, D = m->cfg.hidden_size;
  sparq_status s;
  zero(w->d_sc, B * D);
  if ((s = final_backward(m, w, dout, B))) return s;
  for (int64_t l = m->cfg.depth - 1; l >= 0; l--)
    if ((s = block_backward(m, &m->blocks[l], &w->acts[l], w, w->res[l], B))) return s;
  if ((s = condition_backward(m, w, B))) return s;
  /* x_embedder (the input image needs no gradient); pos_embed is frozen */
  return sparq_nn_linear_backward(NULL, m->x_w->grad, m->x_b->grad, w->d_res, w->patches, m->x_w->data, N, m->K, D);
}
