/* The class prefix of conditional GPTs (gpt.h): LlamaGen's class token,
 * plus GFT's gft_beta term, and its backward.
 *
 * Row layout per sequence b of T bytes: row b(T+1) is the prefix, rows
 * b(T+1)+1 .. b(T+1)+T the bytes, so each sequence stays contiguous for the
 * causal attention. */
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

/* GFT embeds 1000 beta, on the scale of DiT's timesteps (spec gft.md section 4). */
#define GFT_BETA_SCALE 1000.0f
#define GFT_BETA_MAX_PERIOD 10000.0f

sparq_status gpt_embed_forward(const sparq_gpt *g, float *out, const int32_t *x, const int32_t *labels,
                               const float *gft_beta, int64_t B, int64_t T, float *freq, float *prefix,
                               int32_t *labels_out) {
  const sparq_gpt_config *c = &g->cfg;
  const int64_t C = c->n_embd, F = c->gft_beta_dim, Tp = T + 1;
  const int32_t null_class = (int32_t)c->num_classes;
  if (F > 0) {
    for (int64_t b = 0; b < B; b++) {
      const int32_t y = labels ? labels[b] : null_class;
      /* the null class always sees beta 1 (GFT feeds 1 to dropped labels) */
      const float beta = (y == null_class || !gft_beta) ? 1.0f : gft_beta[b];
      const float arg = GFT_BETA_SCALE * beta;
      sparq_nn_timestep_embedding(freq + b * F, &arg, 1, F, GFT_BETA_MAX_PERIOD);
    }
    sparq_status s = sparq_nn_linear_forward(prefix, freq, g->beta_proj->data, NULL, B, F, C);
    if (s) return s;
  }
  for (int64_t b = 0; b < B; b++) {
    const int32_t y = labels ? labels[b] : null_class;
    if (labels_out) labels_out[b] = y;
    float *row = out + b * Tp * C;
    const float *cls = g->cls->data + (int64_t)y * C;
    if (F > 0)
      for (int64_t i = 0; i < C; i++) row[i] = cls[i] + prefix[b * C + i];
    else
      memcpy(row, cls, (size_t)C * sizeof *row);
    sparq_nn_embedding_forward(row + C, x + b * T, g->wte->data, g->wpe->data, 1, T, C);
  }
  return SPARQ_OK;
}

sparq_status gpt_embed_backward(sparq_gpt *g, const float *d_res) {
  const sparq_gpt_config *c = &g->cfg;
  const int64_t B = g->B, T = g->T, Tp = T + 1, C = c->n_embd, F = c->gft_beta_dim;
  for (int64_t b = 0; b < B; b++) {
    const float *d = d_res + b * Tp * C;
    float *dcls = g->cls->grad + (int64_t)g->labels[b] * C;
    /* in sequence order, so two rows of one class add up the same way for any thread count */
    for (int64_t i = 0; i < C; i++) dcls[i] += d[i];
    if (F > 0) memcpy(g->prefix + b * C, d, (size_t)C * sizeof *d);
    sparq_nn_embedding_backward(g->wte->grad, g->wpe->grad, d + C, g->tokens + b * T, 1, T, C);
  }
  if (F > 0) return sparq_nn_linear_backward(NULL, g->beta_proj->grad, NULL, g->prefix, g->beta_freq,
                                             g->beta_proj->data, B, F, C);
  return SPARQ_OK;
}
