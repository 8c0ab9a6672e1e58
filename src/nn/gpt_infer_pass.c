/* The GPT forward as inference (sparq_gpt_infer): the training forward's
 * layer functions on a scratch that holds one block's activations and two
 * residual streams (ping-pong), so nothing is kept for backward and the
 * training forward's activations are left alone. Memory: about
 * rows (11 C + 4 NH) floats instead of n_layer times that. */
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

void gpt_free_infer(sparq_gpt *g) {
  sparq_free(g->infer_arena);
  g->infer_arena = NULL;
  g->infer_rows = 0;
}

sparq_status gpt_reserve_infer(sparq_gpt *g, int64_t rows) {
  if (rows <= g->infer_rows) return SPARQ_OK;
  const sparq_gpt_config *c = &g->cfg;
  const size_t N = (size_t)rows, C = (size_t)c->n_embd, NH = (size_t)c->n_head;
  const size_t F = (size_t)c->gft_beta_dim, K = c->num_classes > 0;
  const size_t total = 2 * gpt_round16(N * C) /* residual streams */ + gpt_block_acts_floats(N, C, NH) +
                       gpt_round16(N * C) + 2 * gpt_round16(N) /* ln_f */ +
                       K * (gpt_round16(N * F) + gpt_round16(N * C)) /* prefix scratch */;
  float *arena = sparq_alloc(total * sizeof(float), "GPT inference scratch");
  if (!arena) return SPARQ_ERR_NOMEM;
  float *p = arena;
  g->inf_res[0] = gpt_take(&p, N * C);
  g->inf_res[1] = gpt_take(&p, N * C);
  gpt_block_acts_carve(&g->inf_acts, &p, N, C, NH);
  g->inf_acts.moe = g->moe_infer;
  g->inf_ln_f = gpt_take(&p, N * C);
  g->inf_ln_f_mean = gpt_take(&p, N);
  g->inf_ln_f_rstd = gpt_take(&p, N);
  g->inf_freq = K ? gpt_take(&p, N * F) : NULL;
  g->inf_prefix = K ? gpt_take(&p, N * C) : NULL;
  sparq_free(g->infer_arena);
  g->infer_arena = arena;
  g->infer_rows = rows;
  return SPARQ_OK;
}

sparq_status sparq_gpt_infer(sparq_gpt *g, const int32_t *x, const int32_t *labels, const float *gft_beta,
                             int64_t B, int64_t T, float *logits) {
  static const char who[] = "sparq_gpt_infer";
  sparq_status s = gpt_check_inputs(g, who, x, NULL, labels, gft_beta, B, T);
  if (s) return s;
  if (!logits) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL logits", who);
  const sparq_gpt_config *c = &g->cfg;
  const int64_t Tp = gpt_rows_per_seq(g, T), N = B * Tp;
  if ((s = gpt_reserve_infer(g, N))) return s;
  float *in = g->inf_res[0], *out = g->inf_res[1];
  if (c->num_classes == 0) sparq_nn_embedding_forward(in, x, g->wte->data, g->wpe->data, B, T, c->n_embd);
  else if ((s = gpt_embed_forward(g, in, x, labels, gft_beta, B, T, g->inf_freq, g->inf_prefix, NULL))) return s;
  for (int64_t l = 0; l < c->n_layer; l++) {
    if ((s = gpt_block_forward(g, &g->blocks[l], &g->inf_acts, in, out, B, Tp))) return s;
    float *t = in;
    in = out;
    out = t;
  }
  return gpt_head_forward(g, g->inf_ln_f, g->inf_ln_f_mean, g->inf_ln_f_rstd, in, logits, N);
}
