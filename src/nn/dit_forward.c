/* DiT forward: the training pass (activations kept for dit_backward.c) and
 * the inference pass (one block's buffers, any attention variant) share
 * every line below; they differ only in the dit_work they write into and
 * in the attention kernel. With flash_f32 both run the same kernels on the
 * same shapes, so their outputs are bit-identical.
 *
 * qkv ([3D, D]) runs as three GEMMs, one per row block of its weight,
 * writing q, k and v into dense [N, D] buffers: that is timm's reshape
 * (B, T, 3, heads, hd) and the NHD layout the attention kernel reads, with
 * no split copy (the GPT block does the same). */
#include <inttypes.h>
#include <string.h>

#include "nn/dit_internal.h"
#include "nn/nn_internal.h"
#include "sparq/base.h"

/* x_embedder (patchify + the conv as a linear layer) + pos_embed -> res [N,D]. */
static sparq_status embed_patches(sparq_dit *m, dit_work *w, const float *x, int64_t B, float *res) {
  const sparq_dit_config *c = &m->cfg;
  const int64_t N = B * m->T, D = c->hidden_size, T = m->T;
  sparq_nn_patchify_forward(w->patches, x, B, c->in_channels, c->input_size, c->input_size, c->patch_size);
  sparq_status s = sparq_nn_linear_forward(res, w->patches, m->x_w->data, m->x_b->data, N, m->K, D);
  if (s) return s;
  const float *pos = m->pos->data;
#pragma omp parallel if (N * D >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      float *r = res + n * D;
      const float *pe = pos + (n % T) * D;
      for (int64_t i = 0; i < D; i++) r[i] += pe[i];
    }
  }
  return SPARQ_OK;
}

/* c = t_embedder(t [, extra]) + y_embedder(y) and sc = SiLU(c), [B,D]. */
static sparq_status embed_condition(sparq_dit *m, dit_work *w, const float *t, const int32_t *y, const float *extra,
                                    int64_t B) {
  const sparq_dit_config *c = &m->cfg;
  const int64_t D = c->hidden_size, F = SPARQ_DIT_FREQ_DIM, E = c->extra_dim;
  sparq_status s;
  sparq_nn_timestep_embedding(w->t_freq, t, B, F, SPARQ_DIT_MAX_PERIOD);
  if (E > 0) {
    /* GFT: t_freq + cond_proj(timestep_embedding(beta * 1000)); the product in float like PyTorch's */
    for (int64_t b = 0; b < B; b++) w->e_in[b] = c->extra_scale * extra[b];
    sparq_nn_timestep_embedding(w->e_freq, w->e_in, B, E, SPARQ_DIT_MAX_PERIOD);
    if ((s = sparq_nn_linear_forward(w->e_proj, w->e_freq, m->cond_w->data, NULL, B, E, F))) return s;
    sparq_nn_residual_forward(w->t_freq, w->t_freq, w->e_proj, (size_t)(B * F));
  }
  if ((s = sparq_nn_linear_forward(w->h1, w->t_freq, m->t0_w->data, m->t0_b->data, B, F, D))) return s;
  sparq_nn_silu_forward(w->s1, w->h1, (size_t)(B * D));
  if ((s = sparq_nn_linear_forward(w->c, w->s1, m->t2_w->data, m->t2_b->data, B, D, D))) return s;
  for (int64_t b = 0; b < B; b++) {
    const float *e = m->y_table->data + (int64_t)y[b] * D;
    for (int64_t i = 0; i < D; i++) w->c[b * D + i] += e[i];
  }
  sparq_nn_silu_forward(w->sc, w->c, (size_t)(B * D));
  return SPARQ_OK;
}

/* Full attention of the block with the chosen kernel; the LSE (needed by
 * the backward) comes from flash_f32 only. */
static sparq_status block_attention(const sparq_dit *m, dit_block_acts *a, int64_t B, sparq_attn_variant variant) {
  const int64_t T = m->T, H = m->cfg.num_heads, hd = m->hd;
  if (variant == SPARQ_ATTN_FLASH_F32)
    return sparq_nn_attention_full_forward(a->att, a->lse, a->q, a->k, a->v, B, T, H, hd);
  sparq_attn_shape shape = {.batch = B, .q_heads = H, .kv_heads = H, .q_len = T, .kv_len = T, .head_dim = hd};
  sparq_attn_options opts = sparq_attn_options_default();
  opts.variant = variant;
  opts.layout = SPARQ_ATTN_NHD;
  opts.causal = false;
  return sparq_attention(a->q, a->k, a->v, a->att, &shape, &opts);
}

/* One DiTBlock: in [N,D] -> out [N,D] (out must differ from in). */
static sparq_status block_forward(sparq_dit *m, const dit_block_params *p, dit_block_acts *a, const dit_work *w,
                                  const float *in, float *out, int64_t B, sparq_attn_variant variant) {
  const int64_t T = m->T, N = B * T, D = m->cfg.hidden_size, M = m->M, L = 6 * D;
  sparq_status s;
  /* shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = chunk(6) */
  if ((s = sparq_nn_linear_forward(a->mod, w->sc, p->ada_w->data, p->ada_b->data, B, D, L))) return s;
  sparq_nn_layernorm_plain_forward(a->ln1, a->ln1_mean, a->ln1_rstd, in, SPARQ_DIT_LN_EPS, N, D);
  sparq_nn_modulate_forward(a->mod1, a->ln1, a->mod, a->mod + D, L, B, T, D);
  float *qkv[3] = {a->q, a->k, a->v};
  for (int j = 0; j < 3; j++)
    if ((s = sparq_nn_linear_forward(qkv[j], a->mod1, p->qkv_w->data + j * D * D, p->qkv_b->data + j * D, N, D, D)))
      return s;
  if ((s = block_attention(m, a, B, variant))) return s;
  if ((s = sparq_nn_linear_forward(a->attn_out, a->att, p->proj_w->data, p->proj_b->data, N, D, D))) return s;
  sparq_nn_gated_residual_forward(a->res_mid, in, a->mod + 2 * D, a->attn_out, L, B, T, D);
  sparq_nn_layernorm_plain_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res_mid, SPARQ_DIT_LN_EPS, N, D);
  sparq_nn_modulate_forward(a->mod2, a->ln2, a->mod + 3 * D, a->mod + 4 * D, L, B, T, D);
  if ((s = sparq_nn_linear_forward(a->fc1, a->mod2, p->fc1_w->data, p->fc1_b->data, N, D, M))) return s;
  sparq_nn_gelu_tanh_forward(a->fc1_gelu, a->fc1, (size_t)(N * M));
  if ((s = sparq_nn_linear_forward(a->mlp_out, a->fc1_gelu, p->fc2_w->data, p->fc2_b->data, N, M, D))) return s;
  sparq_nn_gated_residual_forward(out, a->res_mid, a->mod + 5 * D, a->mlp_out, L, B, T, D);
  return SPARQ_OK;
}

/* FinalLayer and unpatchify: in [N,D] -> out [B,C,H,W]. */
static sparq_status final_forward(sparq_dit *m, dit_work *w, const float *in, int64_t B, float *out) {
  const sparq_dit_config *c = &m->cfg;
  const int64_t T = m->T, N = B * T, D = c->hidden_size;
  sparq_status s;
  if ((s = sparq_nn_linear_forward(w->fmod, w->sc, m->f_ada_w->data, m->f_ada_b->data, B, D, 2 * D))) return s;
  sparq_nn_layernorm_plain_forward(w->lnf, w->lnf_mean, w->lnf_rstd, in, SPARQ_DIT_LN_EPS, N, D);
  sparq_nn_modulate_forward(w->modf, w->lnf, w->fmod, w->fmod + D, 2 * D, B, T, D); /* shift, scale = chunk(2) */
  if ((s = sparq_nn_linear_forward(w->lin, w->modf, m->f_lin_w->data, m->f_lin_b->data, N, D, m->K))) return s;
  sparq_nn_unpatchify_forward(out, w->lin, B, c->in_channels, c->input_size, c->input_size, c->patch_size);
  return SPARQ_OK;
}

sparq_status dit_run_forward(sparq_dit *m, dit_work *w, bool training, const float *x, const float *t,
                             const int32_t *y, const float *extra, int64_t B, sparq_attn_variant variant, float *out) {
  sparq_status s;
  if ((s = embed_patches(m, w, x, B, w->res[0]))) return s;
  if ((s = embed_condition(m, w, t, y, extra, B))) return s;
  const int64_t depth = m->cfg.depth;
  for (int64_t l = 0; l < depth; l++) {
    /* training: stream l -> l + 1, one acts per block; inference: ping-pong */
    dit_block_acts *a = &w->acts[training ? l : 0];
    const float *in = w->res[training ? l : l % 2];
    float *o = w->res[training ? l + 1 : (l + 1) % 2];
    if ((s = block_forward(m, &m->blocks[l], a, w, in, o, B, variant))) return s;
  }
  return final_forward(m, w, w->res[training ? depth : depth % 2], B, out);
}

/* ------------------------------------------------------------ the API */

/* Rows beyond this keep every [rows, width] buffer below 2^31 floats. */
#define DIT_MAX_FLOATS ((int64_t)1 << 31)

static sparq_status check_args(const sparq_dit *m, const char *who, const float *x, const float *t, const int32_t *y,
                               const float *extra, int64_t B, const float *out) {
  if (!m || !x || !t || !y || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  const sparq_dit_config *c = &m->cfg;
  if (c->extra_dim > 0 && !extra)
    return sparq_fail(SPARQ_ERR_ARG, "%s: extra is NULL but the model has extra_dim %" PRId64, who, c->extra_dim);
  int64_t widest = c->hidden_size > m->M ? c->hidden_size : m->M;
  if (m->K > widest) widest = m->K;
  if (B < 1 || B > DIT_MAX_FLOATS / (m->T * widest))
    return sparq_fail(SPARQ_ERR_ARG, "%s: batch %" PRId64 " is outside 1..%" PRId64, who, B,
                      DIT_MAX_FLOATS / (m->T * widest));
  const bool has_null = c->class_dropout_prob > 0.0f;
  for (int64_t b = 0; b < B; b++)
    if (y[b] < 0 || y[b] > c->num_classes || (y[b] == c->num_classes && !has_null))
      return sparq_fail(SPARQ_ERR_ARG, "%s: y[%" PRId64 "] = %d is outside 0..%" PRId64 "%s", who, b, (int)y[b],
                        has_null ? c->num_classes : c->num_classes - 1,
                        has_null ? " (the last is the null class)"
                                 : " (the model has no null class: class_dropout_prob is 0)");
  return SPARQ_OK;
}

sparq_status sparq_dit_forward(sparq_dit *m, const float *x, const float *t, const int32_t *y, const float *extra,
                               int64_t B, float *out) {
  sparq_status s = check_args(m, "sparq_dit_forward", x, t, y, extra, B, out);
  if (s) return s;
  m->has_fwd = false;
  if ((s = dit_reserve(m, &m->train, B, true))) return s;
  memcpy(m->train.y, y, (size_t)B * sizeof *y);
  if ((s = dit_run_forward(m, &m->train, true, x, t, y, extra, B, SPARQ_ATTN_FLASH_F32, out))) return s;
  m->B = B;
  m->has_fwd = true;
  return SPARQ_OK;
}

sparq_status sparq_dit_infer(sparq_dit *m, const float *x, const float *t, const int32_t *y, const float *extra,
                             int64_t B, sparq_attn_variant attn, float *out) {
  sparq_status s = check_args(m, "sparq_dit_infer", x, t, y, extra, B, out);
  if (s) return s;
  if ((int)attn < 0 || attn >= SPARQ_ATTN_VARIANT_COUNT)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_dit_infer: unknown attention variant %d", (int)attn);
  if ((s = dit_reserve(m, &m->infer, B, false))) return s;
  return dit_run_forward(m, &m->infer, false, x, t, y, extra, B, attn, out);
}
