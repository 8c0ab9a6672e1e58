/* The GPT's mixture-of-experts blocks (gpt.h): the layer's views of a
 * block's parameters, the per-block states, the stats and objective
 * accessors, and the metadata's layer list. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

static const float *data_or_null(const sparq_param *p) { return p ? p->data : NULL; }
static float *grad_or_null(const sparq_param *p) { return p ? p->grad : NULL; }

sparq_moe_dims gpt_moe_dims(const sparq_gpt *g) {
  return (sparq_moe_dims){.router = g->cfg.moe_router, .C = g->cfg.n_embd, .H = 4 * g->cfg.n_embd,
                          .E = g->cfg.moe_experts, .k = g->cfg.moe_topk};
}

sparq_moe_weights gpt_moe_weights(const gpt_block_params *p) {
  return (sparq_moe_weights){p->router->data, p->ex_fc_w->data, data_or_null(p->ex_fc_b), p->ex_proj_w->data,
                             data_or_null(p->ex_proj_b)};
}

sparq_moe_grads gpt_moe_grads(const gpt_block_params *p) {
  return (sparq_moe_grads){p->router->grad, p->ex_fc_w->grad, grad_or_null(p->ex_fc_b), p->ex_proj_w->grad,
                           grad_or_null(p->ex_proj_b)};
}

sparq_status gpt_moe_create(sparq_gpt *g) {
  if (g->cfg.moe_router == SPARQ_MOE_NONE) return SPARQ_OK;
  const int64_t L = g->cfg.n_layer;
  g->moe_train = sparq_calloc((size_t)L, sizeof *g->moe_train, "MoE states");
  if (!g->moe_train) return SPARQ_ERR_NOMEM;
  sparq_status s = sparq_moe_state_create(&g->moe_infer);
  for (int64_t l = 0; l < L && !s; l++) {
    if (!(g->cfg.moe_layers >> l & 1)) continue;
    s = sparq_moe_state_create(&g->moe_train[l]);
    g->moe_count++;
  }
  return s;
}

void gpt_moe_free(sparq_gpt *g) {
  for (int64_t l = 0; g->moe_train && l < g->cfg.n_layer; l++) sparq_moe_state_free(g->moe_train[l]);
  sparq_free(g->moe_train);
  sparq_moe_state_free(g->moe_infer);
  g->moe_train = NULL;
  g->moe_infer = NULL;
}

int64_t sparq_gpt_moe_count(const sparq_gpt *g) { return g ? g->moe_count : 0; }

sparq_status sparq_gpt_moe_stats(const sparq_gpt *g, int64_t j, int64_t *layer, sparq_moe_stats *out) {
  if (!g || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_moe_stats: NULL argument");
  for (int64_t l = 0, seen = 0; l < g->cfg.n_layer && g->moe_train; l++) {
    if (!g->moe_train[l] || seen++ != j) continue;
    sparq_moe_state_stats(g->moe_train[l], out);
    if (out->rows == 0) break;
    if (layer) *layer = l;
    return SPARQ_OK;
  }
  return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_moe_stats: no forward of MoE block %" PRId64 " (the model has %" PRId64
                    ")", j, g->moe_count);
}

void sparq_gpt_set_moe_objective(sparq_gpt *g, float lambda, sparq_moe_l1 l1, float aux_coef) {
  if (!g) return;
  g->moe_lambda = lambda;
  g->moe_l1 = l1;
  g->moe_aux = aux_coef;
}

sparq_status gpt_moe_layers_parse(const char *path, const char *text, uint64_t *mask) {
  uint64_t m = 0;
  const char *p = text;
  while (*p) {
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v > 63 || (*end && *end != ','))
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'moe_layers' = '%.60s' is not a list of layers 0..63", path,
                        text);
    m |= (uint64_t)1 << v;
    p = *end ? end + 1 : end;
  }
  *mask = m;
  return SPARQ_OK;
}

void gpt_moe_layers_format(uint64_t mask, char *out, size_t size) {
  size_t n = 0;
  out[0] = 0;
  for (int l = 0; l < 64 && n < size; l++)
    if (mask >> l & 1) n += (size_t)snprintf(out + n, size - n, "%s%d", n ? "," : "", l);
}
