/* DiT construction: config and its checkpoint metadata, the parameters
 * under DiT's state_dict names (in its order), create/free and the small
 * accessors. Initialisation lives in dit_init.c, buffers in dit_buffers.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dit_internal.h"
#include "sparq/base.h"

sparq_dit_config sparq_dit_config_default(void) {
  return (sparq_dit_config){.input_size = 28,
                            .patch_size = 4,
                            .in_channels = 1,
                            .hidden_size = 128,
                            .depth = 4,
                            .num_heads = 4,
                            .mlp_ratio = 4.0f,
                            .num_classes = 10,
                            .class_dropout_prob = 0.1f,
                            .extra_dim = 0,
                            .extra_scale = 1000.0f};
}

/* Generous limits: they only keep sizes far from overflow. */
#define DIT_MAX_DIM 65536
#define DIT_MAX_LAYERS 1024
#define DIT_MAX_WIDE (1 << 20) /* MLP width, values per patch, classes */

static sparq_status check_range(const char *field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: %s %" PRId64 " is outside %" PRId64 "..%" PRId64, field, v, lo, hi);
  return SPARQ_OK;
}

/* int(hidden_size * mlp_ratio) as Python forms it (a double product, truncated). */
static int64_t mlp_width(const sparq_dit_config *c) {
  const double w = (double)c->hidden_size * (double)c->mlp_ratio;
  return w >= 1.0 && w <= (double)DIT_MAX_WIDE ? (int64_t)w : 0;
}

sparq_status sparq_dit_config_check(const sparq_dit_config *c) {
  if (!c) return sparq_fail(SPARQ_ERR_ARG, "DiT config: NULL");
  sparq_status s;
  if ((s = check_range("input_size", c->input_size, 1, DIT_MAX_DIM)) ||
      (s = check_range("patch_size", c->patch_size, 1, c->input_size)) ||
      (s = check_range("in_channels", c->in_channels, 1, DIT_MAX_DIM)) ||
      (s = check_range("hidden_size", c->hidden_size, 4, DIT_MAX_DIM)) ||
      (s = check_range("depth", c->depth, 1, DIT_MAX_LAYERS)) ||
      (s = check_range("num_heads", c->num_heads, 1, c->hidden_size)) ||
      (s = check_range("num_classes", c->num_classes, 0, DIT_MAX_WIDE)) ||
      (s = check_range("extra_dim", c->extra_dim, 0, DIT_MAX_DIM)))
    return s;
  if (c->input_size % c->patch_size != 0)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: input_size %" PRId64 " is not a multiple of patch_size %" PRId64,
                      c->input_size, c->patch_size);
  const int64_t grid = c->input_size / c->patch_size;
  if (grid * grid > DIT_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: %" PRId64 " tokens is above %d", grid * grid, DIT_MAX_DIM);
  if (c->in_channels * c->patch_size * c->patch_size > DIT_MAX_WIDE)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: in_channels x patch_size^2 is above %d", DIT_MAX_WIDE);
  if (c->hidden_size % c->num_heads != 0)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: hidden_size %" PRId64 " is not a multiple of num_heads %" PRId64,
                      c->hidden_size, c->num_heads);
  if (c->hidden_size / c->num_heads > 256)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: head dim %" PRId64 " is above 256", c->hidden_size / c->num_heads);
  /* get_2d_sincos_pos_embed splits D in half, and each half in sin and cos */
  if (c->hidden_size % 4 != 0)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: hidden_size %" PRId64 " is not a multiple of 4 (2-D sin-cos)",
                      c->hidden_size);
  if (!isfinite(c->mlp_ratio) || mlp_width(c) < 1)
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: mlp_ratio %g gives an MLP width outside 1..%d", (double)c->mlp_ratio,
                      DIT_MAX_WIDE);
  if (!(c->class_dropout_prob >= 0.0f && c->class_dropout_prob <= 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: class_dropout_prob %g is outside [0, 1]",
                      (double)c->class_dropout_prob);
  if (!isfinite(c->extra_scale))
    return sparq_fail(SPARQ_ERR_ARG, "DiT config: extra_scale %g is not finite", (double)c->extra_scale);
  return SPARQ_OK;
}

/* ------------------------------------------------------------- metadata */

sparq_status sparq_dit_config_from_metadata(const sparq_safetensors *st, sparq_dit_config *out) {
  if (!st || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_dit_config_from_metadata: NULL argument");
  const char *model = sparq_safetensors_metadata(st, "model");
  if (model && strcmp(model, "DiT") != 0)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'model' is '%.40s', not DiT", st->path, model);
  const char *sigma = sparq_safetensors_metadata(st, "learn_sigma");
  if (sigma && strcmp(sigma, "false") != 0 && strcmp(sigma, "False") != 0)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: learn_sigma '%.40s' is not supported (false only)", st->path, sigma);
  sparq_dit_config c = sparq_dit_config_default();
  c.extra_dim = 0; /* absent from checkpoints made without the extra input */
  sparq_status s;
  if ((s = sparq_safetensors_metadata_int(st, "input_size", true, &c.input_size)) || (s = sparq_safetensors_metadata_int(st, "patch_size", true, &c.patch_size)) ||
      (s = sparq_safetensors_metadata_int(st, "in_channels", true, &c.in_channels)) ||
      (s = sparq_safetensors_metadata_int(st, "hidden_size", true, &c.hidden_size)) || (s = sparq_safetensors_metadata_int(st, "depth", true, &c.depth)) ||
      (s = sparq_safetensors_metadata_int(st, "num_heads", true, &c.num_heads)) || (s = sparq_safetensors_metadata_float(st, "mlp_ratio", true, &c.mlp_ratio)) ||
      (s = sparq_safetensors_metadata_int(st, "num_classes", true, &c.num_classes)) ||
      (s = sparq_safetensors_metadata_float(st, "class_dropout_prob", true, &c.class_dropout_prob)) ||
      (s = sparq_safetensors_metadata_int(st, "extra_dim", false, &c.extra_dim)) ||
      (s = sparq_safetensors_metadata_float(st, "extra_scale", false, &c.extra_scale)))
    return s;
  if ((s = sparq_dit_config_check(&c))) return sparq_fail(SPARQ_ERR_FORMAT, "%s: %s", st->path, sparq_last_error());
  *out = c;
  return SPARQ_OK;
}

/* The shortest decimal that reads back as the same float ("0.1", not
 * "0.100000001"), so the metadata reads like the Python constructor call. */
static void format_float(char *buf, size_t size, float v) {
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, size, "%.*g", prec, (double)v);
    if (strtof(buf, NULL) == v) return;
  }
}

static void describe(sparq_dit *m) {
  const sparq_dit_config *c = &m->cfg;
  static const char *int_keys[] = {"input_size", "patch_size", "in_channels", "hidden_size",
                                   "depth",      "num_heads",  "num_classes", "extra_dim"};
  const int64_t ints[] = {c->input_size, c->patch_size, c->in_channels, c->hidden_size,
                          c->depth,      c->num_heads,  c->num_classes, c->extra_dim};
  static const char *float_keys[] = {"mlp_ratio", "class_dropout_prob", "extra_scale"};
  const float floats[] = {c->mlp_ratio, c->class_dropout_prob, c->extra_scale};
  size_t k = 0;
  for (size_t i = 0; i < 8; i++, k++) {
    snprintf(m->meta_values[k], sizeof m->meta_values[k], "%" PRId64, ints[i]);
    m->meta[k] = (sparq_metadata_entry){int_keys[i], m->meta_values[k]};
  }
  for (size_t i = 0; i < 3; i++, k++) {
    format_float(m->meta_values[k], sizeof m->meta_values[k], floats[i]);
    m->meta[k] = (sparq_metadata_entry){float_keys[i], m->meta_values[k]};
  }
  m->meta[k++] = (sparq_metadata_entry){"learn_sigma", "false"};
  m->meta[k++] = (sparq_metadata_entry){"model", "DiT"};
}

/* ----------------------------------------------------------- parameters */

static sparq_status add(sparq_param_list *pl, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                        int64_t d3) {
  const int64_t shape[4] = {d0, d1, d2, d3};
  return sparq_params_add(pl, name, ndim, shape);
}

static sparq_status register_params(sparq_dit *m) {
  const sparq_dit_config *c = &m->cfg;
  sparq_param_list *pl = &m->params;
  const int64_t D = c->hidden_size, p = c->patch_size, F = SPARQ_DIT_FREQ_DIM;
  sparq_status s;
  /* DiT's own Parameter comes first in its state_dict, then the submodules */
  if ((s = add(pl, "pos_embed", 3, 1, m->T, D, 0)) ||
      (s = add(pl, "x_embedder.proj.weight", 4, D, c->in_channels, p, p)) ||
      (s = add(pl, "x_embedder.proj.bias", 1, D, 0, 0, 0)) ||
      (s = add(pl, "t_embedder.mlp.0.weight", 2, D, F, 0, 0)) ||
      (s = add(pl, "t_embedder.mlp.0.bias", 1, D, 0, 0, 0)) ||
      (s = add(pl, "t_embedder.mlp.2.weight", 2, D, D, 0, 0)) ||
      (s = add(pl, "t_embedder.mlp.2.bias", 1, D, 0, 0, 0)))
    return s;
  if (c->extra_dim > 0 && (s = add(pl, "t_embedder.cond_proj.weight", 2, F, c->extra_dim, 0, 0))) return s;
  /* DiT's LabelEmbedder: the null row exists only for label dropout */
  const int64_t rows = c->num_classes + (c->class_dropout_prob > 0.0f ? 1 : 0);
  if ((s = add(pl, "y_embedder.embedding_table.weight", 2, rows, D, 0, 0))) return s;
  const struct {
    const char *suffix;
    int64_t rows, cols; /* cols 0: a vector */
  } layout[] = {
      {"attn.qkv.weight", 3 * D, D},          {"attn.qkv.bias", 3 * D, 0},  {"attn.proj.weight", D, D},
      {"attn.proj.bias", D, 0},               {"mlp.fc1.weight", m->M, D},  {"mlp.fc1.bias", m->M, 0},
      {"mlp.fc2.weight", D, m->M},            {"mlp.fc2.bias", D, 0},       {"adaLN_modulation.1.weight", 6 * D, D},
      {"adaLN_modulation.1.bias", 6 * D, 0},
  };
  char name[SPARQ_PARAM_NAME_MAX];
  for (int64_t l = 0; l < c->depth; l++)
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
      snprintf(name, sizeof name, "blocks.%" PRId64 ".%s", l, layout[i].suffix);
      if ((s = add(pl, name, layout[i].cols ? 2 : 1, layout[i].rows, layout[i].cols, 0, 0))) return s;
    }
  if ((s = add(pl, "final_layer.linear.weight", 2, m->K, D, 0, 0)) ||
      (s = add(pl, "final_layer.linear.bias", 1, m->K, 0, 0, 0)) ||
      (s = add(pl, "final_layer.adaLN_modulation.1.weight", 2, 2 * D, D, 0, 0)) ||
      (s = add(pl, "final_layer.adaLN_modulation.1.bias", 1, 2 * D, 0, 0, 0)))
    return s;
  return sparq_params_allocate(pl);
}

static sparq_param *block_param(sparq_dit *m, int64_t l, const char *suffix) {
  char name[SPARQ_PARAM_NAME_MAX];
  snprintf(name, sizeof name, "blocks.%" PRId64 ".%s", l, suffix);
  return sparq_params_find(&m->params, name);
}

static void bind_params(sparq_dit *m) {
  sparq_param_list *pl = &m->params;
  m->pos = sparq_params_find(pl, "pos_embed");
  m->pos->frozen = true; /* DiT: nn.Parameter(..., requires_grad=False) */
  m->x_w = sparq_params_find(pl, "x_embedder.proj.weight");
  m->x_b = sparq_params_find(pl, "x_embedder.proj.bias");
  m->t0_w = sparq_params_find(pl, "t_embedder.mlp.0.weight");
  m->t0_b = sparq_params_find(pl, "t_embedder.mlp.0.bias");
  m->t2_w = sparq_params_find(pl, "t_embedder.mlp.2.weight");
  m->t2_b = sparq_params_find(pl, "t_embedder.mlp.2.bias");
  m->cond_w = sparq_params_find(pl, "t_embedder.cond_proj.weight"); /* NULL without extra_dim */
  m->y_table = sparq_params_find(pl, "y_embedder.embedding_table.weight");
  m->f_lin_w = sparq_params_find(pl, "final_layer.linear.weight");
  m->f_lin_b = sparq_params_find(pl, "final_layer.linear.bias");
  m->f_ada_w = sparq_params_find(pl, "final_layer.adaLN_modulation.1.weight");
  m->f_ada_b = sparq_params_find(pl, "final_layer.adaLN_modulation.1.bias");
  for (int64_t l = 0; l < m->cfg.depth; l++) {
    dit_block_params *b = &m->blocks[l];
    b->qkv_w = block_param(m, l, "attn.qkv.weight");
    b->qkv_b = block_param(m, l, "attn.qkv.bias");
    b->proj_w = block_param(m, l, "attn.proj.weight");
    b->proj_b = block_param(m, l, "attn.proj.bias");
    b->fc1_w = block_param(m, l, "mlp.fc1.weight");
    b->fc1_b = block_param(m, l, "mlp.fc1.bias");
    b->fc2_w = block_param(m, l, "mlp.fc2.weight");
    b->fc2_b = block_param(m, l, "mlp.fc2.bias");
    b->ada_w = block_param(m, l, "adaLN_modulation.1.weight");
    b->ada_b = block_param(m, l, "adaLN_modulation.1.bias");
  }
}

sparq_status sparq_dit_create(const sparq_dit_config *cfg, uint64_t seed, sparq_dit **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_dit_create: NULL output");
  *out = NULL;
  sparq_status s = sparq_dit_config_check(cfg);
  if (s) return s;
  sparq_dit *m = sparq_calloc(1, sizeof *m, "DiT model");
  if (!m) return SPARQ_ERR_NOMEM;
  m->cfg = *cfg;
  m->grid = cfg->input_size / cfg->patch_size;
  m->T = m->grid * m->grid;
  m->M = mlp_width(cfg);
  m->K = cfg->in_channels * cfg->patch_size * cfg->patch_size;
  m->hd = cfg->hidden_size / cfg->num_heads;
  m->blocks = sparq_calloc((size_t)cfg->depth, sizeof *m->blocks, "DiT blocks");
  if (!m->blocks) {
    sparq_dit_free(m);
    return SPARQ_ERR_NOMEM;
  }
  if ((s = register_params(m))) {
    sparq_dit_free(m);
    return s;
  }
  bind_params(m);
  dit_init_params(m, seed);
  describe(m);
  *out = m;
  return SPARQ_OK;
}

void sparq_dit_free(sparq_dit *m) {
  if (!m) return;
  sparq_params_free(&m->params);
  sparq_free(m->blocks);
  dit_work_free(&m->train);
  dit_work_free(&m->infer);
  sparq_free(m);
}

const sparq_dit_config *sparq_dit_get_config(const sparq_dit *m) { return m ? &m->cfg : NULL; }
sparq_param_list *sparq_dit_params(sparq_dit *m) { return m ? &m->params : NULL; }

void sparq_dit_checkpoint_info(sparq_dit *m, const sparq_metadata_entry **meta, size_t *meta_count) {
  if (meta) *meta = m ? m->meta : NULL;
  if (meta_count) *meta_count = m ? sizeof m->meta / sizeof m->meta[0] : 0;
}

void sparq_dit_zero_extra(sparq_dit *m) {
  if (m && m->cond_w) memset(m->cond_w->data, 0, m->cond_w->numel * sizeof(float));
}
