/* DiT diffusion training glue and the DiT as a sampler's network. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sparq/dit_task.h"
#include "sparq/gft.h"

/* The held-out rows, times and noise come from their own stream. */
#define EVAL_STREAM 0x6576616cu /* "eval" */

static void task_meta(sparq_dit_task *t, const char *key, const char *value) {
  const size_t i = t->meta_count++;
  snprintf(t->meta_values[i], sizeof t->meta_values[i], "%s", value);
  t->meta[i] = (sparq_metadata_entry){key, t->meta_values[i]};
}

sparq_status sparq_dit_task_init(sparq_dit_task *t, sparq_dit *dit, const sparq_diffusion *diff,
                                 const float *images, const int32_t *labels, int64_t n_images,
                                 const float *val_images, const int32_t *val_labels, int64_t n_val, int64_t batch,
                                 float p_uncond, int64_t eval_batches, uint64_t eval_seed) {
  static const char who[] = "train dit";
  if (!t || !dit || !diff || !images || !labels || !val_images || !val_labels)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_dit_task_init: NULL argument");
  memset(t, 0, sizeof *t);
  const sparq_dit_config *c = sparq_dit_get_config(dit);
  if (batch < 1 || batch > 65536)
    return sparq_fail(SPARQ_ERR_ARG, "%s: --batch %" PRId64 " is outside 1..65536", who, batch);
  if (!(p_uncond >= 0.0f && p_uncond <= 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: --p-uncond %g is outside [0, 1]", who, p_uncond);
  if (p_uncond > 0.0f && !(c->class_dropout_prob > 0.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: label dropout needs the DiT's null class (class_dropout_prob > 0)", who);
  if (eval_batches < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: eval_batches must be >= 1", who);
  if (n_images < 1 || n_val < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: no training or held-out images", who);
  for (int64_t i = 0; i < n_images + n_val; i++) {
    const int32_t y = i < n_images ? labels[i] : val_labels[i - n_images];
    if (y < 0 || y >= c->num_classes)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s image %" PRId64 " has label %d outside 0..%" PRId64, who,
                        i < n_images ? "training" : "held-out", i < n_images ? i : i - n_images, (int)y,
                        c->num_classes - 1);
  }
  const int64_t dim = c->in_channels * c->input_size * c->input_size;
  const size_t rows = (size_t)batch, fl = rows * (size_t)dim;
  t->x0 = sparq_alloc(fl * sizeof(float), "DiT batch");
  t->net_x = sparq_alloc(fl * sizeof(float), "DiT batch");
  t->target = sparq_alloc(fl * sizeof(float), "DiT batch");
  t->out = sparq_alloc(fl * sizeof(float), "DiT batch");
  t->net_t = sparq_alloc(rows * sizeof(float), "DiT batch");
  t->weight = sparq_alloc(rows * sizeof(float), "DiT batch");
  t->y = sparq_alloc(rows * sizeof(int32_t), "DiT batch");
  if (!t->x0 || !t->net_x || !t->target || !t->out || !t->net_t || !t->weight || !t->y) {
    sparq_dit_task_free(t);
    return SPARQ_ERR_NOMEM;
  }
  t->dit = dit, t->diff = diff;
  t->images = images, t->labels = labels, t->n_images = n_images;
  t->val_images = val_images, t->val_labels = val_labels, t->n_val = n_val;
  t->batch = batch, t->p_uncond = p_uncond, t->eval_batches = eval_batches, t->eval_seed = eval_seed;
  t->dim = dim;
  const sparq_metadata_entry *dm = NULL;
  size_t dn = 0;
  sparq_dit_checkpoint_info(dit, &dm, &dn);
  for (size_t i = 0; i < dn && t->meta_count < 20; i++) t->meta[t->meta_count++] = dm[i];
  task_meta(t, "schedule", sparq_diff_kind_name(diff->kind));
  task_meta(t, "pred", sparq_diff_pred_name(diff->pred));
  task_meta(t, "guidance", "cfg");
  return SPARQ_OK;
}

sparq_status sparq_dit_task_set_gft(sparq_dit_task *t) {
  const sparq_dit_config *c = sparq_dit_get_config(t->dit);
  if (c->extra_dim < 1)
    return sparq_fail(SPARQ_ERR_ARG, "train dit --guidance gft: the DiT has no gft_beta input (extra_dim 0)");
  if (!(c->class_dropout_prob > 0.0f))
    return sparq_fail(SPARQ_ERR_ARG, "train dit --guidance gft: the unconditional pass needs the null class");
  const size_t rows = (size_t)t->batch, fl = rows * (size_t)t->dim;
  t->beta = sparq_alloc(rows * sizeof(float), "GFT batch");
  t->beta_in = sparq_alloc(rows * sizeof(float), "GFT batch");
  t->ones = sparq_alloc(rows * sizeof(float), "GFT batch");
  t->null_y = sparq_alloc(rows * sizeof(int32_t), "GFT batch");
  t->out_u = sparq_alloc(fl * sizeof(float), "GFT batch");
  if (!t->beta || !t->beta_in || !t->ones || !t->null_y || !t->out_u) return SPARQ_ERR_NOMEM;
  for (size_t i = 0; i < rows; i++) t->ones[i] = 1.0f, t->null_y[i] = (int32_t)c->num_classes;
  t->gft = true;
  for (size_t i = 0; i < t->meta_count; i++)
    if (!strcmp(t->meta[i].key, "guidance")) snprintf(t->meta_values[i], sizeof t->meta_values[i], "gft");
  return SPARQ_OK;
}

void sparq_dit_task_free(sparq_dit_task *t) {
  if (!t) return;
  sparq_free(t->x0), sparq_free(t->net_x), sparq_free(t->target), sparq_free(t->out);
  sparq_free(t->net_t), sparq_free(t->weight), sparq_free(t->y);
  sparq_free(t->beta), sparq_free(t->beta_in), sparq_free(t->ones), sparq_free(t->null_y), sparq_free(t->out_u);
  t->x0 = t->net_x = t->target = t->out = t->net_t = t->weight = NULL;
  t->beta = t->beta_in = t->ones = t->out_u = NULL;
  t->y = t->null_y = NULL;
}

/* Rows drawn uniformly from a split, labels dropped with p_uncond. */
static void draw_rows(sparq_dit_task *t, const float *images, const int32_t *labels, int64_t n, float p_uncond,
                      sparq_rng *rng) {
  const int32_t null_class = (int32_t)sparq_dit_get_config(t->dit)->num_classes;
  for (int64_t b = 0; b < t->batch; b++) {
    const int64_t i = (int64_t)sparq_rng_below(rng, (uint64_t)n);
    memcpy(t->x0 + b * t->dim, images + i * t->dim, (size_t)t->dim * sizeof(float));
    t->y[b] = labels[i];
  }
  /* drawn after the rows so the image draws do not depend on p_uncond */
  if (p_uncond > 0.0f)
    for (int64_t b = 0; b < t->batch; b++)
      if (sparq_rng_uniform(rng) < p_uncond) t->y[b] = null_class;
}

/* GFT's unconditional pass (null label, beta 1): inference, no gradient,
 * nothing stored for backward, no label dropout. With log, the two extra
 * losses of out_s and out_u alone are added to the step's sums. */
static sparq_status gft_unconditional(sparq_dit_task *t, bool log) {
  if (!t->gft) return SPARQ_OK;
  sparq_status s = sparq_dit_infer(t->dit, t->net_x, t->net_t, t->null_y, t->ones, t->batch, SPARQ_ATTN_FLASH_F32,
                                   t->out_u);
  if (s || !log) return s;
  t->gft_loss_s += sparq_gft_loss(t->batch, t->dim, NULL, t->out, NULL, t->target, t->weight, 0.0f, NULL);
  t->gft_loss_u += sparq_gft_loss(t->batch, t->dim, NULL, t->out_u, NULL, t->target, t->weight, 0.0f, NULL);
  t->gft_micros++;
  return SPARQ_OK;
}

static sparq_status dit_train_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  sparq_dit_task *t = self;
  const int32_t null_class = (int32_t)sparq_dit_get_config(t->dit)->num_classes;
  draw_rows(t, t->images, t->labels, t->n_images, t->p_uncond, rng);
  if (t->gft) sparq_gft_draw_beta(rng, t->batch, t->y, null_class, t->beta, t->beta_in);
  sparq_status s = sparq_diffusion_training_batch(t->diff, t->x0, t->batch, t->dim, rng, t->net_x, t->net_t,
                                                  t->target, t->weight);
  if (!s) s = sparq_dit_forward(t->dit, t->net_x, t->net_t, t->y, t->gft ? t->beta_in : NULL, t->batch, t->out);
  if (!s) s = gft_unconditional(t, true);
  if (s) return s;
  /* d loss / d out_s goes into the (no longer needed) target buffer */
  *loss = (float)sparq_gft_loss(t->batch, t->dim, t->gft ? t->beta : NULL, t->out, t->out_u, t->target, t->weight,
                                dloss, t->target);
  return sparq_dit_backward(t->dit, t->target);
}

static sparq_status dit_eval(void *self, float *loss) {
  sparq_dit_task *t = self;
  const int32_t null_class = (int32_t)sparq_dit_get_config(t->dit)->num_classes;
  sparq_rng rng = sparq_rng_make(t->eval_seed, EVAL_STREAM);
  double sum = 0.0;
  for (int64_t i = 0; i < t->eval_batches; i++) {
    draw_rows(t, t->val_images, t->val_labels, t->n_val, 0.0f, &rng);
    if (t->gft) sparq_gft_draw_beta(&rng, t->batch, t->y, null_class, t->beta, t->beta_in);
    sparq_status s = sparq_diffusion_training_batch(t->diff, t->x0, t->batch, t->dim, &rng, t->net_x, t->net_t,
                                                    t->target, t->weight);
    if (!s)
      s = sparq_dit_infer(t->dit, t->net_x, t->net_t, t->y, t->gft ? t->beta_in : NULL, t->batch,
                          SPARQ_ATTN_FLASH_F32, t->out);
    if (!s) s = gft_unconditional(t, false);
    if (s) return s;
    sum += sparq_gft_loss(t->batch, t->dim, t->gft ? t->beta : NULL, t->out, t->out_u, t->target, t->weight, 0.0f,
                          NULL);
  }
  *loss = (float)(sum / (double)t->eval_batches);
  return SPARQ_OK;
}

static void dit_log_extra(void *self, char *buf, size_t size) {
  sparq_dit_task *t = self;
  if (!t->gft || t->gft_micros == 0) return;
  snprintf(buf, size, ",\"loss_s\":%.6f,\"loss_u\":%.6f", t->gft_loss_s / (double)t->gft_micros,
           t->gft_loss_u / (double)t->gft_micros);
  t->gft_loss_s = t->gft_loss_u = 0.0;
  t->gft_micros = 0;
}

void sparq_dit_task_trainable(sparq_dit_task *t, sparq_trainable *out) {
  memset(out, 0, sizeof *out);
  out->self = t;
  out->params = sparq_dit_params(t->dit);
  out->train_micro = dit_train_micro;
  out->eval = dit_eval;
  out->log_extra = dit_log_extra;
  out->tokens_per_micro = t->batch; /* images: the progress line counts samples/s */
  out->meta = t->meta;
  out->meta_count = t->meta_count;
}

sparq_status sparq_dit_diffusion_from_metadata(const sparq_safetensors *st, sparq_diffusion *out) {
  const char *sched = sparq_safetensors_metadata(st, "schedule"), *pred = sparq_safetensors_metadata(st, "pred");
  sparq_diff_kind kind;
  sparq_diff_pred p;
  if (!sched || !sparq_diff_kind_from_name(sched, &kind))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'schedule' is %s%s%s (want vp or edm)", st->path,
                      sched ? "'" : "", sched ? sched : "missing", sched ? "'" : "");
  if (!pred || !sparq_diff_pred_from_name(pred, &p))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata 'pred' is %s%s%s (want eps, x0 or v)", st->path,
                      pred ? "'" : "", pred ? pred : "missing", pred ? "'" : "");
  return sparq_diffusion_init(out, kind, p);
}

static sparq_status dit_net_eval(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                                 int64_t n, float *out) {
  sparq_dit_sampler_net *net = self;
  const sparq_dit_config *c = sparq_dit_get_config(net->dit);
  const int64_t dim = c->in_channels * c->input_size * c->input_size;
  const int64_t chunk = net->chunk > 0 ? net->chunk : n;
  for (int64_t r = 0; r < n; r += chunk) {
    const int64_t m = n - r < chunk ? n - r : chunk;
    sparq_status s = sparq_dit_infer(net->dit, x + r * dim, t + r, y + r, extra ? extra + r : NULL, m, net->attn,
                                     out + r * dim);
    if (s) return s;
  }
  return SPARQ_OK;
}

void sparq_dit_denoiser(sparq_dit_sampler_net *net, sparq_denoiser *out) {
  const sparq_dit_config *c = sparq_dit_get_config(net->dit);
  memset(out, 0, sizeof *out);
  out->self = net;
  out->eval = dit_net_eval;
  out->dim = c->in_channels * c->input_size * c->input_size;
  out->null_class = (int32_t)c->num_classes;
}
