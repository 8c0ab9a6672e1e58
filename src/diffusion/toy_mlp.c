/* The toy MLP's config, parameters and checkpoint description. The
 * forward and backward are in toy_mlp_forward.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/toy_mlp_internal.h"
#include "sparq/io.h"

sparq_toy_mlp_config sparq_toy_mlp_config_default(void) {
  sparq_toy_mlp_config c = {.dim = 2, .hidden = 128, .depth = 3, .time_dim = 64, .class_dim = 64,
                            .num_classes = SPARQ_TOY2D_CLASSES, .gft = false, .beta_dim = 64};
  return c;
}

static sparq_status check_range(const char *field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    return sparq_fail(SPARQ_ERR_ARG, "toy MLP config: %s %" PRId64 " is outside %" PRId64 "..%" PRId64, field, v,
                      lo, hi);
  return SPARQ_OK;
}

sparq_status sparq_toy_mlp_config_check(const sparq_toy_mlp_config *c) {
  if (!c) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_config_check: NULL config");
  sparq_status s;
  if ((s = check_range("dim", c->dim, 1, 4096)) || (s = check_range("hidden", c->hidden, 1, 4096)) ||
      (s = check_range("depth", c->depth, 1, TOY_MLP_MAX_DEPTH)) ||
      (s = check_range("time_dim", c->time_dim, 1, 4096)) || (s = check_range("class_dim", c->class_dim, 1, 4096)) ||
      (s = check_range("num_classes", c->num_classes, 1, 65536)))
    return s;
  if (c->gft && (s = check_range("beta_dim", c->beta_dim, 1, 4096))) return s;
  return SPARQ_OK;
}

/* ----------------------------------------------------------- metadata */

static const char *const META_INT_KEYS[] = {"dim", "hidden", "depth", "time_dim", "class_dim", "num_classes",
                                            "beta_dim"};
enum { META_INTS = sizeof META_INT_KEYS / sizeof META_INT_KEYS[0] };

static int64_t *config_int_field(sparq_toy_mlp_config *c, int i) {
  int64_t *fields[META_INTS] = {&c->dim, &c->hidden, &c->depth, &c->time_dim, &c->class_dim, &c->num_classes,
                                &c->beta_dim};
  return fields[i];
}

sparq_status sparq_toy_mlp_config_from_metadata(const sparq_safetensors *st, sparq_toy_mlp_config *out) {
  if (!st || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_config_from_metadata: NULL argument");
  const char *model = sparq_safetensors_metadata(st, "model");
  if (!model || strcmp(model, "toy_mlp") != 0)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'model' is not 'toy_mlp' (not a toy MLP checkpoint?)",
                      st->path);
  sparq_toy_mlp_config c = sparq_toy_mlp_config_default();
  for (int i = 0; i < META_INTS; i++) {
    sparq_status s = sparq_safetensors_metadata_int(st, META_INT_KEYS[i], true, config_int_field(&c, i));
    if (s) return s;
  }
  const char *gft = sparq_safetensors_metadata(st, "gft");
  if (!gft) return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata has no 'gft'", st->path);
  if (strcmp(gft, "true") == 0) c.gft = true;
  else if (strcmp(gft, "false") == 0) c.gft = false;
  else return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'gft' = '%.40s' is not true or false", st->path, gft);
  sparq_status s = sparq_toy_mlp_config_check(&c);
  if (s) return sparq_fail(s, "%s: %s", st->path, sparq_last_error());
  *out = c;
  return SPARQ_OK;
}

static void describe(sparq_toy_mlp *m) {
  sparq_toy_mlp_config c = m->cfg;
  for (int i = 0; i < META_INTS; i++) {
    snprintf(m->meta_values[i], sizeof m->meta_values[i], "%" PRId64, *config_int_field(&c, i));
    m->meta[i] = (sparq_metadata_entry){META_INT_KEYS[i], m->meta_values[i]};
  }
  m->meta[META_INTS] = (sparq_metadata_entry){"gft", c.gft ? "true" : "false"};
  m->meta[META_INTS + 1] = (sparq_metadata_entry){"model", "toy_mlp"};
}

void sparq_toy_mlp_checkpoint_info(sparq_toy_mlp *m, const sparq_ckpt_alias **aliases, size_t *alias_count,
                                   const sparq_metadata_entry **meta, size_t *meta_count) {
  if (aliases) *aliases = NULL;
  if (alias_count) *alias_count = 0;
  if (meta) *meta = m->meta;
  if (meta_count) *meta_count = META_INTS + 2;
}

/* --------------------------------------------------------- parameters */

static sparq_status add2(sparq_param_list *pl, const char *name, int64_t d0, int64_t d1) {
  const int64_t shape[2] = {d0, d1};
  return sparq_params_add(pl, name, d1 > 0 ? 2 : 1, shape);
}

static sparq_status register_params(sparq_toy_mlp *m) {
  const sparq_toy_mlp_config *c = &m->cfg;
  sparq_param_list *pl = &m->params;
  char name[SPARQ_PARAM_NAME_MAX];
  sparq_status s = add2(pl, "class_embed.weight", c->num_classes + 1, c->class_dim);
  if (!s && c->gft) s = add2(pl, "beta_proj.weight", c->hidden, c->beta_dim);
  for (int64_t l = 0; !s && l <= c->depth; l++) {
    const int64_t in = l == 0 ? m->in_dim : c->hidden, out = l == c->depth ? c->dim : c->hidden;
    snprintf(name, sizeof name, "net.%" PRId64 ".weight", 2 * l);
    s = add2(pl, name, out, in);
    snprintf(name, sizeof name, "net.%" PRId64 ".bias", 2 * l);
    if (!s) s = add2(pl, name, out, 0);
  }
  if (!s) s = sparq_params_allocate(pl);
  if (s) return s;
  m->class_embed = sparq_params_find(pl, "class_embed.weight");
  m->beta_proj = sparq_params_find(pl, "beta_proj.weight");
  for (int64_t l = 0; l <= c->depth; l++) {
    snprintf(name, sizeof name, "net.%" PRId64 ".weight", 2 * l);
    m->w[l] = sparq_params_find(pl, name);
    snprintf(name, sizeof name, "net.%" PRId64 ".bias", 2 * l);
    m->b[l] = sparq_params_find(pl, name);
  }
  return SPARQ_OK;
}

/* PyTorch's defaults: nn.Linear's kaiming_uniform_(a = sqrt 5) is
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the same bound as its bias;
 * nn.Embedding is N(0, 1). Parameter i draws stream i of the seed. */
static void init_params(sparq_toy_mlp *m, uint64_t seed) {
  for (size_t i = 0; i < m->params.count; i++) {
    sparq_param *p = &m->params.items[i];
    sparq_rng rng = sparq_rng_make(seed, (uint64_t)i);
    if (p == m->class_embed) {
      sparq_rng_fill_normal(&rng, p->data, p->numel, 0.0f, 1.0f);
    } else if (p == m->beta_proj) {
      sparq_rng_fill_normal(&rng, p->data, p->numel, 0.0f, 0.02f);
    } else {
      /* net.{2l}.weight and .bias share the fan-in of the weight */
      int64_t l = 0;
      while (m->w[l] != p && m->b[l] != p) l++;
      const float bound = 1.0f / sqrtf((float)m->w[l]->shape[1]);
      sparq_rng_fill_uniform(&rng, p->data, p->numel, -bound, bound);
    }
  }
}

sparq_status sparq_toy_mlp_create(const sparq_toy_mlp_config *cfg, uint64_t seed, sparq_toy_mlp **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_create: NULL output");
  *out = NULL;
  sparq_status s = sparq_toy_mlp_config_check(cfg);
  if (s) return s;
  sparq_toy_mlp *m = sparq_calloc(1, sizeof *m, "toy MLP");
  if (!m) return SPARQ_ERR_NOMEM;
  m->cfg = *cfg;
  m->in_dim = cfg->dim + cfg->time_dim + cfg->class_dim;
  if ((s = register_params(m))) {
    sparq_toy_mlp_free(m);
    return s;
  }
  init_params(m, seed);
  describe(m);
  *out = m;
  return SPARQ_OK;
}

void sparq_toy_mlp_free(sparq_toy_mlp *m) {
  if (!m) return;
  sparq_params_free(&m->params);
  sparq_free(m->act_block);
  sparq_free(m->dscratch);
  sparq_free(m->infer_block);
  sparq_free(m);
}

const sparq_toy_mlp_config *sparq_toy_mlp_get_config(const sparq_toy_mlp *m) { return m ? &m->cfg : NULL; }
sparq_param_list *sparq_toy_mlp_params(sparq_toy_mlp *m) { return m ? &m->params : NULL; }

static bool same_shape(const sparq_param *a, const sparq_param *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

sparq_status sparq_toy_mlp_copy_from(sparq_toy_mlp *dst, const sparq_toy_mlp *src) {
  if (!dst || !src) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_copy_from: NULL model");
  /* check everything first so a failure leaves dst untouched */
  for (size_t i = 0; i < dst->params.count; i++) {
    const sparq_param *p = &dst->params.items[i];
    const sparq_param *q = sparq_params_find(&src->params, p->name);
    if (p == dst->beta_proj && !q) continue;
    if (!q) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_copy_from: the source has no '%s'", p->name);
    if (!same_shape(p, q))
      return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_mlp_copy_from: '%s' has another shape in the source", p->name);
  }
  for (size_t i = 0; i < dst->params.count; i++) {
    sparq_param *p = &dst->params.items[i];
    const sparq_param *q = sparq_params_find(&src->params, p->name);
    if (q) memcpy(p->data, q->data, p->numel * sizeof(float));
    else memset(p->data, 0, p->numel * sizeof(float)); /* beta_proj: zero-init for fine-tuning */
  }
  return SPARQ_OK;
}
