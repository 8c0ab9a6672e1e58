/* The evaluation classifier's construction: config, parameters under
 * PyTorch's names, PyTorch's default initialisation, buffers, and the
 * checkpoint description, loading and parameter-only saving. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/classifier_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"

#define MODEL_NAME "fmnist-cnn"
/* Generous limits that keep every buffer size far from overflow. */
#define CLS_MAX_SIDE 1024
#define CLS_MAX_WIDTH 65536

sparq_classifier_config sparq_classifier_config_default(void) {
  return (sparq_classifier_config){
      .image_size = 28, .conv1_channels = 32, .conv2_channels = 64, .hidden = 128, .num_classes = 10};
}

sparq_status sparq_classifier_config_check(const sparq_classifier_config *c) {
  if (!c) return sparq_fail(SPARQ_ERR_ARG, "classifier config: NULL");
  if (c->image_size < 4 || c->image_size > CLS_MAX_SIDE || c->image_size % 4 != 0)
    return sparq_fail(SPARQ_ERR_ARG, "classifier config: image_size %" PRId64 " must be a multiple of 4 in 4..%d",
                      c->image_size, CLS_MAX_SIDE);
  const struct {
    const char *name;
    int64_t v;
  } w[] = {{"conv1_channels", c->conv1_channels},
           {"conv2_channels", c->conv2_channels},
           {"hidden", c->hidden},
           {"num_classes", c->num_classes}};
  for (int i = 0; i < 4; i++)
    if (w[i].v < 1 || w[i].v > CLS_MAX_WIDTH)
      return sparq_fail(SPARQ_ERR_ARG, "classifier config: %s %" PRId64 " is outside 1..%d", w[i].name, w[i].v,
                        CLS_MAX_WIDTH);
  if (c->num_classes < 2) return sparq_fail(SPARQ_ERR_ARG, "classifier config: num_classes must be >= 2");
  return SPARQ_OK;
}

sparq_status sparq_classifier_config_from_metadata(const sparq_safetensors *st, sparq_classifier_config *out) {
  if (!st || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_config_from_metadata: NULL argument");
  const char *model = sparq_safetensors_metadata(st, "model");
  if (!model || strcmp(model, MODEL_NAME) != 0)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'model' is '%.40s', not '" MODEL_NAME
                      "' (not a sparq classifier checkpoint?)", st->path, model ? model : "(none)");
  sparq_classifier_config c;
  sparq_status s;
  if ((s = sparq_safetensors_metadata_int(st, "image_size", true, &c.image_size)) || (s = sparq_safetensors_metadata_int(st, "conv1_channels", true, &c.conv1_channels)) ||
      (s = sparq_safetensors_metadata_int(st, "conv2_channels", true, &c.conv2_channels)) || (s = sparq_safetensors_metadata_int(st, "hidden", true, &c.hidden)) ||
      (s = sparq_safetensors_metadata_int(st, "num_classes", true, &c.num_classes)))
    return s;
  if ((s = sparq_classifier_config_check(&c))) return sparq_fail(s, "%s: %s", st->path, sparq_last_error());
  *out = c;
  return SPARQ_OK;
}

static sparq_status add_param(sparq_param_list *pl, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                              int64_t d3) {
  const int64_t shape[4] = {d0, d1, d2, d3};
  return sparq_params_add(pl, name, ndim, shape);
}

static sparq_status register_params(sparq_classifier *m) {
  const sparq_classifier_config *c = &m->cfg;
  sparq_param_list *pl = &m->params;
  const int64_t flat = c->conv2_channels * (c->image_size / 4) * (c->image_size / 4);
  sparq_status s;
  if ((s = add_param(pl, "conv1.weight", 4, c->conv1_channels, 1, 3, 3)) ||
      (s = add_param(pl, "conv1.bias", 1, c->conv1_channels, 0, 0, 0)) ||
      (s = add_param(pl, "conv2.weight", 4, c->conv2_channels, c->conv1_channels, 3, 3)) ||
      (s = add_param(pl, "conv2.bias", 1, c->conv2_channels, 0, 0, 0)) ||
      (s = add_param(pl, "fc1.weight", 2, c->hidden, flat, 0, 0)) ||
      (s = add_param(pl, "fc1.bias", 1, c->hidden, 0, 0, 0)) ||
      (s = add_param(pl, "fc2.weight", 2, c->num_classes, c->hidden, 0, 0)) ||
      (s = add_param(pl, "fc2.bias", 1, c->num_classes, 0, 0, 0)))
    return s;
  if ((s = sparq_params_allocate(pl))) return s;
  m->conv1_w = sparq_params_find(pl, "conv1.weight");
  m->conv1_b = sparq_params_find(pl, "conv1.bias");
  m->conv2_w = sparq_params_find(pl, "conv2.weight");
  m->conv2_b = sparq_params_find(pl, "conv2.bias");
  m->fc1_w = sparq_params_find(pl, "fc1.weight");
  m->fc1_b = sparq_params_find(pl, "fc1.bias");
  m->fc2_w = sparq_params_find(pl, "fc2.weight");
  m->fc2_b = sparq_params_find(pl, "fc2.bias");
  return SPARQ_OK;
}

/* PyTorch's reset_parameters of Conv2d and Linear: kaiming_uniform_ with
 * a = sqrt(5) on the weight is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the
 * bias draws from the same interval; fan_in is the weight's elements per
 * output. The bias is registered right after its weight. */
static void init_params(sparq_classifier *m, uint64_t seed) {
  double bound = 1.0;
  for (size_t i = 0; i < m->params.count; i++) {
    sparq_param *p = &m->params.items[i];
    if (p->ndim >= 2) bound = 1.0 / sqrt((double)(p->numel / (size_t)p->shape[0]));
    sparq_rng rng = sparq_rng_make(seed, (uint64_t)i);
    sparq_rng_fill_uniform(&rng, p->data, p->numel, (float)-bound, (float)bound);
  }
}

static void describe(sparq_classifier *m) {
  const sparq_classifier_config *c = &m->cfg;
  static const char *keys[] = {"image_size", "conv1_channels", "conv2_channels", "hidden", "num_classes"};
  const int64_t vals[] = {c->image_size, c->conv1_channels, c->conv2_channels, c->hidden, c->num_classes};
  for (int i = 0; i < 5; i++) {
    snprintf(m->meta_values[i], sizeof m->meta_values[i], "%" PRId64, vals[i]);
    m->meta[i] = (sparq_metadata_entry){keys[i], m->meta_values[i]};
  }
  m->meta[5] = (sparq_metadata_entry){"model", MODEL_NAME};
}

sparq_status sparq_classifier_create(const sparq_classifier_config *cfg, uint64_t seed, sparq_classifier **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_create: NULL output");
  *out = NULL;
  sparq_status s = sparq_classifier_config_check(cfg);
  if (s) return s;
  sparq_classifier *m = sparq_calloc(1, sizeof *m, "classifier");
  if (!m) return SPARQ_ERR_NOMEM;
  m->cfg = *cfg;
  if ((s = register_params(m))) {
    sparq_classifier_free(m);
    return s;
  }
  init_params(m, seed);
  describe(m);
  *out = m;
  return SPARQ_OK;
}

void sparq_classifier_free(sparq_classifier *m) {
  if (!m) return;
  sparq_params_free(&m->params);
  sparq_free(m->arena);
  sparq_free(m->arg1);
  sparq_free(m->arg2);
  sparq_free(m->labels);
  sparq_free(m);
}

const sparq_classifier_config *sparq_classifier_get_config(const sparq_classifier *m) { return m ? &m->cfg : NULL; }
sparq_param_list *sparq_classifier_params(sparq_classifier *m) { return m ? &m->params : NULL; }
const float *sparq_classifier_logits(const sparq_classifier *m) { return m ? m->logits : NULL; }
const float *sparq_classifier_probs(const sparq_classifier *m) { return m ? m->probs : NULL; }
const float *sparq_classifier_last_features(const sparq_classifier *m) { return m ? m->h : NULL; }

void sparq_classifier_checkpoint_info(sparq_classifier *m, const sparq_metadata_entry **meta, size_t *meta_count) {
  if (meta) *meta = m->meta;
  if (meta_count) *meta_count = sizeof m->meta / sizeof m->meta[0];
}

sparq_conv2d_geom classifier_geom1(const sparq_classifier *m, int64_t n) {
  const int64_t S = m->cfg.image_size;
  return (sparq_conv2d_geom){.N = n, .C = 1, .H = S, .W = S, .OC = m->cfg.conv1_channels, .K = 3, .stride = 1,
                             .pad = 1};
}

sparq_conv2d_geom classifier_geom2(const sparq_classifier *m, int64_t n) {
  const int64_t S = m->cfg.image_size / 2;
  return (sparq_conv2d_geom){.N = n, .C = m->cfg.conv1_channels, .H = S, .W = S, .OC = m->cfg.conv2_channels,
                             .K = 3, .stride = 1, .pad = 1};
}

#define ROUND16(x) (((x) + 15) / 16 * 16)

/* Carves the float buffers out of one allocation, each 64-byte aligned. */
sparq_status classifier_reserve(sparq_classifier *m, int64_t n) {
  if (n <= m->cap_n) return SPARQ_OK;
  const sparq_classifier_config *c = &m->cfg;
  const sparq_conv2d_geom g1 = classifier_geom1(m, n), g2 = classifier_geom2(m, n);
  sparq_status s;
  if ((s = sparq_nn_conv2d_check(&g1, NULL, NULL)) || (s = sparq_nn_conv2d_check(&g2, NULL, NULL))) return s;
  const size_t N = (size_t)n, S2 = (size_t)(c->image_size * c->image_size);
  const size_t x = N * S2, a1 = N * (size_t)c->conv1_channels * S2, p1 = a1 / 4;
  const size_t a2 = N * (size_t)c->conv2_channels * S2 / 4, p2 = a2 / 4;
  const size_t h = N * (size_t)c->hidden, lg = N * (size_t)c->num_classes;
  const size_t w1 = sparq_nn_conv2d_work_floats(&g1), w2 = sparq_nn_conv2d_work_floats(&g2);
  const size_t work = w1 > w2 ? w1 : w2;
  const size_t sizes[] = {x, a1, p1, a2, p2, h, lg, lg, lg, h, h, p2, a2, a2, p1, a1, a1, work};
  float **dst[] = {&m->x,    &m->a1,   &m->p1,   &m->a2,    &m->p2,   &m->h,   &m->logits, &m->probs, &m->d_logits,
                   &m->d_h,  &m->d_hr, &m->d_p2, &m->d_a2,  &m->d_a2r, &m->d_p1, &m->d_a1, &m->d_a1r, &m->work};
  const int count = (int)(sizeof sizes / sizeof sizes[0]);
  size_t total = 0;
  for (int i = 0; i < count; i++) total += ROUND16(sizes[i]);
  float *arena = sparq_alloc(total * sizeof(float), "classifier activations");
  int32_t *arg1 = sparq_alloc(p1 * sizeof(int32_t), "classifier pooling indices");
  int32_t *arg2 = sparq_alloc(p2 * sizeof(int32_t), "classifier pooling indices");
  int32_t *labels = sparq_alloc(N * sizeof(int32_t), "classifier labels");
  if (!arena || !arg1 || !arg2 || !labels) {
    sparq_free(arena), sparq_free(arg1), sparq_free(arg2), sparq_free(labels);
    return SPARQ_ERR_NOMEM;
  }
  sparq_free(m->arena), sparq_free(m->arg1), sparq_free(m->arg2), sparq_free(m->labels);
  m->arena = arena, m->arg1 = arg1, m->arg2 = arg2, m->labels = labels;
  float *p = arena;
  for (int i = 0; i < count; i++) {
    *dst[i] = p;
    p += ROUND16(sizes[i]);
  }
  m->cap_n = n;
  m->n = 0;
  m->has_labels = false;
  return SPARQ_OK;
}

sparq_status sparq_classifier_load(const char *path, sparq_classifier **out) {
  if (!path || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_load: NULL argument");
  *out = NULL;
  sparq_safetensors *st = NULL;
  sparq_classifier_config cfg;
  sparq_status s = sparq_safetensors_open(path, &st);
  if (!s) s = sparq_classifier_config_from_metadata(st, &cfg);
  sparq_safetensors_close(st);
  if (s) return s;
  sparq_classifier *m = NULL;
  if ((s = sparq_classifier_create(&cfg, 0, &m))) return s;
  if ((s = sparq_checkpoint_load(path, &m->params, NULL, NULL))) {
    sparq_classifier_free(m);
    return s;
  }
  *out = m;
  return SPARQ_OK;
}

sparq_status sparq_classifier_save(sparq_classifier *m, const char *path, sparq_dtype dtype) {
  if (!m || !path) return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_save: NULL argument");
  if (dtype != SPARQ_F32 && dtype != SPARQ_F16)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_save: dtype %s is not F32 or F16", sparq_dtype_name(dtype));
  return sparq_params_export(path, &m->params, dtype, m->meta, sizeof m->meta / sizeof m->meta[0]);
}
