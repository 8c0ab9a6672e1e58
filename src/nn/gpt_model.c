/* GPT construction: config, parameters under nanoGPT's names, nanoGPT's
 * initialisation, activation buffers, checkpoint description. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

sparq_gpt_config sparq_gpt_config_default(void) {
  return (sparq_gpt_config){.n_layer = 6, .n_head = 6, .n_embd = 384, .block_size = 256, .vocab_size = 256,
                            .bias = true};
}

/* Generous limits: they only keep sizes far from overflow. */
#define GPT_MAX_DIM 65536
#define GPT_MAX_LAYERS 1024

sparq_status sparq_gpt_config_check(const sparq_gpt_config *c) {
  if (!c) return sparq_fail(SPARQ_ERR_ARG, "GPT config: NULL");
  if (c->n_layer < 1 || c->n_layer > GPT_MAX_LAYERS)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: n_layer %" PRId64 " is outside 1..%d", c->n_layer, GPT_MAX_LAYERS);
  if (c->n_head < 1 || c->n_head > GPT_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: n_head %" PRId64 " is outside 1..%d", c->n_head, GPT_MAX_DIM);
  if (c->n_embd < 1 || c->n_embd > GPT_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: n_embd %" PRId64 " is outside 1..%d", c->n_embd, GPT_MAX_DIM);
  if (c->n_embd % c->n_head != 0)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: n_embd %" PRId64 " is not a multiple of n_head %" PRId64,
                      c->n_embd, c->n_head);
  if (c->n_embd / c->n_head > 256)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: head size %" PRId64 " is above 256", c->n_embd / c->n_head);
  if (c->block_size < 1 || c->block_size > GPT_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: block_size %" PRId64 " is outside 1..%d", c->block_size,
                      GPT_MAX_DIM);
  if (c->vocab_size < 1 || c->vocab_size > (1 << 20))
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: vocab_size %" PRId64 " is outside 1..%d", c->vocab_size, 1 << 20);
  if (c->num_classes < 0 || c->num_classes > GPT_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: num_classes %" PRId64 " is outside 0..%d", c->num_classes,
                      GPT_MAX_DIM);
  if (c->gft_beta_dim < 0 || c->gft_beta_dim > 4096 || c->gft_beta_dim % 2)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: gft_beta_dim %" PRId64 " is not an even number in 0..4096",
                      c->gft_beta_dim);
  if (c->gft_beta_dim > 0 && c->num_classes == 0)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: a gft_beta input (gft_beta_dim %" PRId64 ") needs classes",
                      c->gft_beta_dim);
  if (c->moe_router == SPARQ_MOE_NONE) return SPARQ_OK;
  if (c->moe_router != SPARQ_MOE_RELU && c->moe_router != SPARQ_MOE_TOPK)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: moe_router %d is not none, relu or topk", (int)c->moe_router);
  if (c->moe_experts < 1 || c->moe_experts > SPARQ_MOE_MAX_EXPERTS)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: moe_experts %" PRId64 " is outside 1..%d", c->moe_experts,
                      SPARQ_MOE_MAX_EXPERTS);
  if (c->moe_topk < 1 || c->moe_topk > c->moe_experts)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: moe_topk %" PRId64 " is outside 1..moe_experts (%" PRId64 ")",
                      c->moe_topk, c->moe_experts);
  if (c->moe_layers == 0 || (c->n_layer < 64 && c->moe_layers >> c->n_layer))
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: moe_layers names no layer or one beyond n_layer %" PRId64,
                      c->n_layer);
  if (c->num_classes > 0)
    return sparq_fail(SPARQ_ERR_ARG, "GPT config: MoE blocks and class conditioning exclude each other");
  return SPARQ_OK;
}

sparq_status sparq_gpt_config_from_metadata(const sparq_safetensors *st, sparq_gpt_config *out) {
  if (!st || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_config_from_metadata: NULL argument");
  sparq_gpt_config c = sparq_gpt_config_default();
  sparq_status s;
  if ((s = sparq_safetensors_metadata_int(st, "n_layer", true, &c.n_layer)) || (s = sparq_safetensors_metadata_int(st, "n_head", true, &c.n_head)) ||
      (s = sparq_safetensors_metadata_int(st, "n_embd", true, &c.n_embd)) || (s = sparq_safetensors_metadata_int(st, "block_size", true, &c.block_size)) ||
      (s = sparq_safetensors_metadata_int(st, "vocab_size", true, &c.vocab_size)) ||
      (s = sparq_safetensors_metadata_int(st, "num_classes", false, &c.num_classes)) ||
      (s = sparq_safetensors_metadata_int(st, "gft_beta_dim", false, &c.gft_beta_dim)))
    return s;
  const char *bias = sparq_safetensors_metadata(st, "bias");
  if (!bias) return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata has no 'bias'", st->path);
  if (strcmp(bias, "true") == 0 || strcmp(bias, "True") == 0) c.bias = true;
  else if (strcmp(bias, "false") == 0 || strcmp(bias, "False") == 0) c.bias = false;
  else return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'bias' = '%.40s' is not true or false", st->path, bias);
  const char *router = sparq_safetensors_metadata(st, "moe_router");
  if (router) {
    if (sparq_moe_router_parse(router, &c.moe_router))
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'moe_router' = '%.40s' is not relu or topk", st->path, router);
    const char *layers = sparq_safetensors_metadata(st, "moe_layers");
    if (!layers) return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata has 'moe_router' but no 'moe_layers'", st->path);
    if ((s = sparq_safetensors_metadata_int(st, "moe_experts", true, &c.moe_experts)) ||
        (s = sparq_safetensors_metadata_int(st, "moe_topk", true, &c.moe_topk)) ||
        (s = gpt_moe_layers_parse(st->path, layers, &c.moe_layers)))
      return s;
  }
  if ((s = sparq_gpt_config_check(&c))) return sparq_fail(s, "%s: %s", st->path, sparq_last_error());
  *out = c;
  return SPARQ_OK;
}

static sparq_status add_param(sparq_param_list *pl, const char *name, int64_t d0, int64_t d1) {
  int64_t shape[2] = {d0, d1};
  return sparq_params_add(pl, name, d1 > 0 ? 2 : 1, shape);
}

/* An MoE block's tensors, where the MLP's would be (gpt.h). */
static sparq_status register_moe(sparq_param_list *pl, int64_t l, const sparq_gpt_config *c) {
  const int64_t C = c->n_embd, E = c->moe_experts;
  const struct {
    const char *suffix;
    int ndim;
    int64_t shape[3];
    bool is_bias;
  } t[] = {{"router.weight", 2, {E, C, 0}, false},
           {"experts.c_fc.weight", 3, {E, 4 * C, C}, false},
           {"experts.c_fc.bias", 2, {E, 4 * C, 0}, true},
           {"experts.c_proj.weight", 3, {E, C, 4 * C}, false},
           {"experts.c_proj.bias", 2, {E, C, 0}, true}};
  char name[SPARQ_PARAM_NAME_MAX];
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    if (t[i].is_bias && !c->bias) continue;
    snprintf(name, sizeof name, "transformer.h.%" PRId64 ".mlp.%s", l, t[i].suffix);
    sparq_status s = sparq_params_add(pl, name, t[i].ndim, t[i].shape);
    if (s) return s;
  }
  return SPARQ_OK;
}

static sparq_status register_params(sparq_gpt *g) {
  const sparq_gpt_config *c = &g->cfg;
  sparq_param_list *pl = &g->params;
  int64_t C = c->n_embd;
  char name[SPARQ_PARAM_NAME_MAX];
  sparq_status s;
  if ((s = add_param(pl, "transformer.wte.weight", c->vocab_size, C)) ||
      (s = add_param(pl, "transformer.wpe.weight", c->block_size, C)))
    return s;
  static const struct {
    const char *suffix;
    int64_t rows_per_c; /* first dimension in units of C (0: a vector) */
    int64_t cols_per_c; /* second dimension in units of C (0: a vector) */
    int64_t vec_per_c;  /* vector length in units of C */
    bool is_bias;
  } layout[] = {
      {"ln_1.weight", 0, 0, 1, false},        {"ln_1.bias", 0, 0, 1, true},
      {"attn.c_attn.weight", 3, 1, 0, false}, {"attn.c_attn.bias", 0, 0, 3, true},
      {"attn.c_proj.weight", 1, 1, 0, false}, {"attn.c_proj.bias", 0, 0, 1, true},
      {"ln_2.weight", 0, 0, 1, false},        {"ln_2.bias", 0, 0, 1, true},
      {"mlp.c_fc.weight", 4, 1, 0, false},    {"mlp.c_fc.bias", 0, 0, 4, true},
      {"mlp.c_proj.weight", 1, 4, 0, false},  {"mlp.c_proj.bias", 0, 0, 1, true},
  };
  for (int64_t l = 0; l < c->n_layer; l++) {
    const bool moe = c->moe_router != SPARQ_MOE_NONE && (c->moe_layers >> l & 1);
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
      if (layout[i].is_bias && !c->bias) continue;
      if (moe && !strncmp(layout[i].suffix, "mlp.", 4)) continue;
      snprintf(name, sizeof name, "transformer.h.%" PRId64 ".%s", l, layout[i].suffix);
      if (layout[i].rows_per_c) s = add_param(pl, name, layout[i].rows_per_c * C, layout[i].cols_per_c * C);
      else s = add_param(pl, name, layout[i].vec_per_c * C, 0);
      if (s) return s;
    }
    if (moe && (s = register_moe(pl, l, c))) return s;
  }
  if ((s = add_param(pl, "transformer.ln_f.weight", C, 0))) return s;
  if (c->bias && (s = add_param(pl, "transformer.ln_f.bias", C, 0))) return s;
  /* after nanoGPT's tensors, so those keep their Philox streams (init_params) */
  if (c->num_classes > 0 && (s = add_param(pl, "cls_embedding.embedding_table.weight", c->num_classes + 1, C)))
    return s;
  if (c->gft_beta_dim > 0 && (s = add_param(pl, "t_embedder.cond_proj.weight", C, c->gft_beta_dim))) return s;
  return sparq_params_allocate(pl);
}

static sparq_param *find_layer_param(sparq_gpt *g, int64_t l, const char *suffix) {
  char name[SPARQ_PARAM_NAME_MAX];
  snprintf(name, sizeof name, "transformer.h.%" PRId64 ".%s", l, suffix);
  return sparq_params_find(&g->params, name);
}

static void bind_params(sparq_gpt *g) {
  g->wte = sparq_params_find(&g->params, "transformer.wte.weight");
  g->wpe = sparq_params_find(&g->params, "transformer.wpe.weight");
  g->ln_f_w = sparq_params_find(&g->params, "transformer.ln_f.weight");
  g->ln_f_b = sparq_params_find(&g->params, "transformer.ln_f.bias");
  g->cls = sparq_params_find(&g->params, "cls_embedding.embedding_table.weight");
  g->beta_proj = sparq_params_find(&g->params, "t_embedder.cond_proj.weight");
  for (int64_t l = 0; l < g->cfg.n_layer; l++) {
    gpt_block_params *b = &g->blocks[l];
    b->ln_1_w = find_layer_param(g, l, "ln_1.weight");
    b->ln_1_b = find_layer_param(g, l, "ln_1.bias");
    b->c_attn_w = find_layer_param(g, l, "attn.c_attn.weight");
    b->c_attn_b = find_layer_param(g, l, "attn.c_attn.bias");
    b->attn_proj_w = find_layer_param(g, l, "attn.c_proj.weight");
    b->attn_proj_b = find_layer_param(g, l, "attn.c_proj.bias");
    b->ln_2_w = find_layer_param(g, l, "ln_2.weight");
    b->ln_2_b = find_layer_param(g, l, "ln_2.bias");
    b->c_fc_w = find_layer_param(g, l, "mlp.c_fc.weight");
    b->c_fc_b = find_layer_param(g, l, "mlp.c_fc.bias");
    b->mlp_proj_w = find_layer_param(g, l, "mlp.c_proj.weight");
    b->mlp_proj_b = find_layer_param(g, l, "mlp.c_proj.bias");
    b->router = find_layer_param(g, l, "mlp.router.weight");
    b->ex_fc_w = find_layer_param(g, l, "mlp.experts.c_fc.weight");
    b->ex_fc_b = find_layer_param(g, l, "mlp.experts.c_fc.bias");
    b->ex_proj_w = find_layer_param(g, l, "mlp.experts.c_proj.weight");
    b->ex_proj_b = find_layer_param(g, l, "mlp.experts.c_proj.bias");
    /* nanoGPT decays 2-D tensors only because those are its weights; the stacked biases are biases */
    if (b->ex_fc_b) b->ex_fc_b->decay = false;
    if (b->ex_proj_b) b->ex_proj_b->decay = false;
  }
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* nanoGPT's _init_weights plus its c_proj rescaling. Each parameter draws
 * from its own Philox stream (its index), so the values do not depend on
 * the thread count or on the other parameters' sizes. */
static void init_params(sparq_gpt *g, uint64_t seed) {
  double proj_std = 0.02 / sqrt(2.0 * (double)g->cfg.n_layer);
  for (size_t i = 0; i < g->params.count; i++) {
    sparq_param *p = &g->params.items[i];
    if (p->ndim >= 2 && !ends_with(p->name, ".bias")) { /* MoE blocks have 3-D weights, 2-D biases */
      sparq_rng rng = sparq_rng_make(seed, (uint64_t)i);
      float std = ends_with(p->name, "c_proj.weight") ? (float)proj_std : 0.02f;
      sparq_rng_fill_normal(&rng, p->data, p->numel, 0.0f, std);
    } else if (ends_with(p->name, ".weight")) { /* LayerNorm gain */
      for (size_t j = 0; j < p->numel; j++) p->data[j] = 1.0f;
    } else {
      memset(p->data, 0, p->numel * sizeof(float));
    }
  }
}

static void describe(sparq_gpt *g) {
  const sparq_gpt_config *c = &g->cfg;
  static const char *keys[] = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size"};
  int64_t vals[] = {c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size};
  for (int i = 0; i < 5; i++) {
    snprintf(g->meta_values[i], sizeof g->meta_values[i], "%" PRId64, vals[i]);
    g->meta[i] = (sparq_metadata_entry){keys[i], g->meta_values[i]};
  }
  g->meta[5] = (sparq_metadata_entry){"bias", c->bias ? "true" : "false"};
  g->meta[6] = (sparq_metadata_entry){"dropout", "0.0"};
  g->meta[7] = (sparq_metadata_entry){"model", "gpt"};
  g->meta_count = 8;
  if (c->num_classes > 0) {
    snprintf(g->meta_values[5], sizeof g->meta_values[5], "%" PRId64, c->num_classes);
    snprintf(g->meta_values[6], sizeof g->meta_values[6], "%" PRId64, c->gft_beta_dim);
    g->meta[g->meta_count++] = (sparq_metadata_entry){"num_classes", g->meta_values[5]};
    g->meta[g->meta_count++] = (sparq_metadata_entry){"gft_beta_dim", g->meta_values[6]};
  }
  if (c->moe_router != SPARQ_MOE_NONE) {
    snprintf(g->meta_values[8], sizeof g->meta_values[8], "%" PRId64, c->moe_experts);
    snprintf(g->meta_values[9], sizeof g->meta_values[9], "%" PRId64, c->moe_topk);
    gpt_moe_layers_format(c->moe_layers, g->moe_layers_text, sizeof g->moe_layers_text);
    g->meta[g->meta_count++] = (sparq_metadata_entry){"moe_router", sparq_moe_router_name(c->moe_router)};
    g->meta[g->meta_count++] = (sparq_metadata_entry){"moe_experts", g->meta_values[8]};
    g->meta[g->meta_count++] = (sparq_metadata_entry){"moe_topk", g->meta_values[9]};
    g->meta[g->meta_count++] = (sparq_metadata_entry){"moe_layers", g->moe_layers_text};
  }
  g->alias = (sparq_ckpt_alias){"lm_head.weight", "transformer.wte.weight"};
}

sparq_status sparq_gpt_create(const sparq_gpt_config *cfg, uint64_t seed, sparq_gpt **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_create: NULL output");
  *out = NULL;
  sparq_status s = sparq_gpt_config_check(cfg);
  if (s) return s;
  sparq_gpt *g = sparq_calloc(1, sizeof *g, "GPT model");
  if (!g) return SPARQ_ERR_NOMEM;
  g->cfg = *cfg;
  g->blocks = sparq_calloc((size_t)cfg->n_layer, sizeof *g->blocks, "GPT blocks");
  if (!g->blocks) {
    sparq_gpt_free(g);
    return SPARQ_ERR_NOMEM;
  }
  if ((s = register_params(g))) {
    sparq_gpt_free(g);
    return s;
  }
  bind_params(g);
  init_params(g, seed);
  describe(g);
  g->moe_dloss = 1.0f;
  if ((s = gpt_moe_create(g))) {
    sparq_gpt_free(g);
    return s;
  }
  *out = g;
  return SPARQ_OK;
}

/* The activation buffers gpt_reserve allocates together. */
static void free_buffers(float *arena, float **residual, gpt_block_acts *acts, int32_t *tokens, int32_t *targets) {
  sparq_free(arena);
  sparq_free(residual);
  sparq_free(acts);
  sparq_free(tokens);
  sparq_free(targets);
}

void sparq_gpt_free(sparq_gpt *g) {
  if (!g) return;
  sparq_params_free(&g->params);
  sparq_free(g->blocks);
  gpt_release_buffers(g);
  gpt_free_infer(g);
  gpt_moe_free(g);
  sparq_free(g);
}

const sparq_gpt_config *sparq_gpt_get_config(const sparq_gpt *g) { return g ? &g->cfg : NULL; }
sparq_param_list *sparq_gpt_params(sparq_gpt *g) { return g ? &g->params : NULL; }

void sparq_gpt_checkpoint_info(sparq_gpt *g, const sparq_ckpt_alias **aliases, size_t *alias_count,
                               const sparq_metadata_entry **meta, size_t *meta_count) {
  if (aliases) *aliases = &g->alias;
  if (alias_count) *alias_count = 1;
  if (meta) *meta = g->meta;
  if (meta_count) *meta_count = g->meta_count;
}

int64_t sparq_gpt_rows(const sparq_gpt *g, int64_t T) { return gpt_rows_per_seq(g, T); }

void sparq_gpt_zero_beta_proj(sparq_gpt *g) {
  if (g && g->beta_proj) memset(g->beta_proj->data, 0, g->beta_proj->numel * sizeof(float));
}

const float *sparq_gpt_logits(const sparq_gpt *g) { return g ? g->logits : NULL; }

void sparq_gpt_timing_get(const sparq_gpt *g, sparq_gpt_timing *out) { *out = g->timing; }
void sparq_gpt_timing_reset(sparq_gpt *g) { memset(&g->timing, 0, sizeof g->timing); }


size_t gpt_block_acts_floats(size_t N, size_t C, size_t NH) {
  return 5 * gpt_round16(N * C) /* ln_1 q k v att */ + gpt_round16(N * NH) /* lse */ +
         2 * gpt_round16(N * C) /* res_mid ln_2 */ + 2 * gpt_round16(4 * N * C) /* fc fc_gelu */ +
         4 * gpt_round16(N) /* the two LayerNorms' mean and rstd */;
}

void gpt_block_acts_carve(gpt_block_acts *a, float **cursor, size_t N, size_t C, size_t NH) {
  float *p = *cursor;
  a->ln_1 = gpt_take(&p, N * C);
  a->ln_1_mean = gpt_take(&p, N);
  a->ln_1_rstd = gpt_take(&p, N);
  a->q = gpt_take(&p, N * C);
  a->k = gpt_take(&p, N * C);
  a->v = gpt_take(&p, N * C);
  a->att = gpt_take(&p, N * C);
  a->lse = gpt_take(&p, N * NH);
  a->res_mid = gpt_take(&p, N * C);
  a->ln_2 = gpt_take(&p, N * C);
  a->ln_2_mean = gpt_take(&p, N);
  a->ln_2_rstd = gpt_take(&p, N);
  a->fc = gpt_take(&p, 4 * N * C);
  a->fc_gelu = gpt_take(&p, 4 * N * C);
  *cursor = p;
}

/* Carves every activation and scratch buffer out of one allocation. Each
 * buffer starts 64-byte aligned. FP8 activations replace the residual
 * streams, the blocks' activations and ln_f's output by their own layout
 * (gpt_fp8_carve); the rest is shared. */
sparq_status gpt_reserve(sparq_gpt *g, int64_t rows) {
  if (rows <= g->cap_rows) return SPARQ_OK;
  const sparq_gpt_config *c = &g->cfg;
  size_t N = (size_t)rows, C = (size_t)c->n_embd, V = (size_t)c->vocab_size, L = (size_t)c->n_layer;
  size_t NH = (size_t)c->n_head;
  const bool fp8 = g->fp8_act;
  const size_t per_block = gpt_block_acts_floats(N, C, NH);
  size_t total =
      fp8 ? gpt_fp8_arena_floats(g, N) : (L + 1) * gpt_round16(N * C) + L * per_block + gpt_round16(N * C);
  /* FP8 mode: d_fc is d_att..d_v (the two are never live together there) */
  total += 2 * gpt_round16(N) /* ln_f */ + 2 * gpt_round16(N * V) /* logits probs */ +
           6 * gpt_round16(N * C) /* d_res d_ln d_att d_q d_k d_v */ + (fp8 ? 0 : gpt_round16(4 * N * C)) +
           gpt_round16(N * V);
  /* the conditional prefix's buffers (B <= N sequences); none otherwise */
  const bool cond = c->num_classes > 0;
  const size_t F = (size_t)c->gft_beta_dim;
  total += cond ? gpt_round16(N * F) + gpt_round16(N * C) : 0;
  int32_t *labels = cond ? sparq_alloc(N * sizeof(int32_t), "GPT labels") : NULL;
  float *arena = sparq_alloc(total * sizeof(float), "GPT activations");
  float **residual = sparq_calloc(L + 1, sizeof *residual, "GPT activations");
  gpt_block_acts *acts = sparq_calloc(L, sizeof *acts, "GPT activations");
  int32_t *tokens = sparq_alloc(N * sizeof(int32_t), "GPT tokens");
  int32_t *targets = sparq_alloc(N * sizeof(int32_t), "GPT targets");
  gpt_fp8_block *fp8_blocks = fp8 ? sparq_calloc(L, sizeof *fp8_blocks, "GPT FP8 activations") : NULL;
  float *grad_scale = fp8 ? sparq_calloc(L * GPT_GRAD_PER_BLOCK + 1, sizeof(float), "GPT FP8 activations") : NULL;
  if (!arena || !residual || !acts || !tokens || !targets || (cond && !labels) ||
      (fp8 && (!fp8_blocks || !grad_scale))) {
    free_buffers(arena, residual, acts, tokens, targets);
    sparq_free(labels);
    sparq_free(fp8_blocks);
    sparq_free(grad_scale);
    return SPARQ_ERR_NOMEM;
  }
  float *p = arena;
  if (fp8) {
    gpt_fp8_carve(g, fp8_blocks, &p, N);
    g->ln_f = NULL; /* ln_f's output lives in the work buffers */
  } else {
    for (size_t l = 0; l <= L; l++) residual[l] = gpt_take(&p, N * C);
    for (size_t l = 0; l < L; l++) gpt_block_acts_carve(&acts[l], &p, N, C, NH);
    g->ln_f = gpt_take(&p, N * C);
  }
  g->ln_f_mean = gpt_take(&p, N);
  g->ln_f_rstd = gpt_take(&p, N);
  g->logits = gpt_take(&p, N * V);
  g->probs = gpt_take(&p, N * V);
  g->d_res = gpt_take(&p, N * C);
  g->d_ln = gpt_take(&p, N * C);
  g->d_att = gpt_take(&p, N * C);
  g->d_q = gpt_take(&p, N * C);
  g->d_k = gpt_take(&p, N * C);
  g->d_v = gpt_take(&p, N * C);
  g->d_fc = fp8 ? g->d_att : gpt_take(&p, 4 * N * C);
  g->d_logits = gpt_take(&p, N * V);
  g->beta_freq = cond ? gpt_take(&p, N * F) : NULL;
  g->prefix = cond ? gpt_take(&p, N * C) : NULL;
  if (fp8) {
    /* the forward's FP32 residual streams live in backward's scratch */
    g->fp8_res[0] = g->d_res;
    g->fp8_res[1] = g->d_ln;
  }
  free_buffers(g->arena, g->residual, g->acts, g->tokens, g->targets);
  sparq_free(g->labels);
  sparq_free(g->fp8);
  sparq_free(g->fp8_grad_scale);
  g->labels = labels;
  g->arena = arena;
  g->residual = residual;
  g->acts = acts;
  g->fp8 = fp8_blocks;
  g->fp8_grad_scale = grad_scale;
  for (size_t l = 0; g->moe_train && l < L; l++) acts[l].moe = g->moe_train[l];
  g->tokens = tokens;
  g->targets = targets;
  g->cap_rows = rows;
  g->has_targets = false;
  g->has_forward = false;
  return SPARQ_OK;
}

void gpt_release_buffers(sparq_gpt *g) {
  free_buffers(g->arena, g->residual, g->acts, g->tokens, g->targets);
  sparq_free(g->labels);
  sparq_free(g->fp8);
  sparq_free(g->fp8_grad_scale);
  g->arena = NULL, g->residual = NULL, g->acts = NULL, g->tokens = NULL, g->targets = NULL, g->labels = NULL;
  g->fp8 = NULL, g->fp8_grad_scale = NULL;
  g->ln_f = g->ln_f_mean = g->ln_f_rstd = g->logits = g->probs = NULL;
  g->d_res = g->d_ln = g->d_att = g->d_q = g->d_k = g->d_v = g->d_fc = g->d_logits = NULL;
  g->beta_freq = g->prefix = NULL;
  g->fp8_res[0] = g->fp8_res[1] = NULL;
  g->fp8_gmax = NULL;
  memset(&g->fp8_work, 0, sizeof g->fp8_work);
  g->cap_rows = 0;
  g->B = g->T = 0;
  g->has_targets = g->has_forward = false;
  g->fp8_stats_valid = false;
}
