/* Class-conditional LM training: the CFG baseline (label dropout) and
 * Guidance-Free Training's autoregressive objective (lm.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sparq/gft.h"
#include "train/lm_cond.h"

/* The held-out windows come from their own stream of eval_seed (as the plain task's). */
#define EVAL_STREAM 0x6576616cu /* "eval" */

void lm_cond_free(sparq_lm_task *t) {
  sparq_free(t->labels), sparq_free(t->null_labels), sparq_free(t->beta), sparq_free(t->beta_in);
  sparq_free(t->targets), sparq_free(t->logits_u), sparq_free(t->dlogits), sparq_free(t->work);
  sparq_free(t->class_names);
  t->labels = t->null_labels = t->targets = NULL;
  t->beta = t->beta_in = t->logits_u = t->dlogits = t->work = NULL;
  t->class_names = NULL;
  t->n_classes = 0;
}

static void add_meta(sparq_lm_task *t, const char *key, const char *value) {
  t->meta[t->meta_count++] = (sparq_metadata_entry){key, value};
}

static sparq_status describe(sparq_lm_task *t) {
  const sparq_metadata_entry *gm = NULL;
  size_t gn = 0;
  sparq_gpt_checkpoint_info(t->gpt, NULL, NULL, &gm, &gn);
  if (gn + 4 > sizeof t->meta / sizeof t->meta[0])
    return sparq_fail(SPARQ_ERR_ARG, "train lm: too many metadata entries");
  for (size_t i = 0; i < gn; i++) t->meta[t->meta_count++] = gm[i];
  size_t len = 1;
  for (int k = 0; k < t->n_classes; k++) len += strlen(t->classes[k].name) + 1;
  t->class_names = sparq_alloc(len, "class names");
  if (!t->class_names) return SPARQ_ERR_NOMEM;
  char *p = t->class_names;
  for (int k = 0; k < t->n_classes; k++) p += sprintf(p, "%s%s", k ? "," : "", t->classes[k].name);
  snprintf(t->p_uncond_text, sizeof t->p_uncond_text, "%g", t->p_uncond);
  add_meta(t, "guidance", t->gft ? "gft" : "cfg");
  add_meta(t, "class_dropout_prob", t->p_uncond_text);
  add_meta(t, "data", "fortunes-classes");
  add_meta(t, "classes", t->class_names);
  return SPARQ_OK;
}

sparq_status sparq_lm_task_set_classes(sparq_lm_task *t, const sparq_text_class *classes, int count,
                                       float p_uncond, bool gft) {
  static const char who[] = "train lm";
  if (!t || !t->gpt || !classes) return sparq_fail(SPARQ_ERR_ARG, "sparq_lm_task_set_classes: NULL argument");
  const sparq_gpt_config *c = sparq_gpt_get_config(t->gpt);
  if (count < 1 || c->num_classes != count)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the GPT has %" PRId64 " classes, the data %d", who, c->num_classes, count);
  if (gft && c->gft_beta_dim == 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: GFT needs a GPT with a gft_beta input (gft_beta_dim 0)", who);
  if (!(p_uncond >= 0.0f && p_uncond <= 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: --p-uncond %g is outside [0, 1]", who, p_uncond);
  for (int k = 0; k < count; k++)
    if (classes[k].train_size < (size_t)t->seq + 1 || classes[k].val_size < (size_t)t->seq + 1)
      return sparq_fail(SPARQ_ERR_ARG,
                        "%s: class %d '%s' has %zu training and %zu held-out bytes, fewer than --seq + 1 = %" PRId64,
                        who, k, classes[k].name, classes[k].train_size, classes[k].val_size, t->seq + 1);
  lm_cond_free(t);
  const size_t B = (size_t)t->batch, rows = B * (size_t)(t->seq + 1), V = (size_t)c->vocab_size;
  t->labels = sparq_alloc(B * sizeof(int32_t), "LM labels");
  t->null_labels = sparq_alloc(B * sizeof(int32_t), "LM labels");
  t->beta = sparq_alloc(B * sizeof(float), "GFT beta");
  t->beta_in = sparq_alloc(B * sizeof(float), "GFT beta");
  t->targets = sparq_alloc(rows * sizeof(int32_t), "LM targets");
  if (gft) {
    t->logits_u = sparq_alloc(rows * V * sizeof(float), "GFT logits");
    t->dlogits = sparq_alloc(rows * V * sizeof(float), "GFT logits");
    t->work = sparq_alloc(2 * rows * V * sizeof(float), "GFT scratch");
  }
  if (!t->labels || !t->null_labels || !t->beta || !t->beta_in || !t->targets ||
      (gft && (!t->logits_u || !t->dlogits || !t->work))) {
    lm_cond_free(t);
    return SPARQ_ERR_NOMEM;
  }
  for (size_t b = 0; b < B; b++) t->null_labels[b] = (int32_t)count;
  t->classes = classes;
  t->n_classes = count;
  t->p_uncond = p_uncond;
  t->gft = gft;
  t->meta_count = 0;
  sparq_status s = describe(t);
  if (s) lm_cond_free(t);
  return s;
}

/* One batch of class windows; labels dropped with p_uncond (drawn after the
 * windows, so the windows do not depend on p_uncond); for GFT the betas. */
static sparq_status draw(sparq_lm_task *t, bool val, float p_uncond, sparq_rng *rng) {
  sparq_status s =
      sparq_text_class_batch(t->classes, t->n_classes, val, t->batch, t->seq, rng, t->x, t->y, t->labels);
  if (s) return s;
  if (p_uncond > 0.0f)
    for (int64_t b = 0; b < t->batch; b++)
      if (sparq_rng_uniform(rng) < p_uncond) t->labels[b] = t->n_classes;
  if (t->gft) sparq_gft_draw_beta(rng, t->batch, t->labels, t->n_classes, t->beta, t->beta_in);
  /* the GFT loss scores [batch, seq + 1] rows: the prefix row is context only */
  const int64_t T = t->seq, Tp = T + 1;
  for (int64_t b = 0; b < t->batch; b++) {
    t->targets[b * Tp] = -1;
    memcpy(t->targets + b * Tp + 1, t->y + b * T, (size_t)T * sizeof *t->y);
  }
  return SPARQ_OK;
}

/* GFT's loss on l_s and the detached l_u, with dloss times its gradient
 * into dl_s (NULL: none). */
static sparq_status gft_loss(sparq_lm_task *t, const float *l_s, float dloss, float *dl_s, float *loss,
                             float *loss_s, float *loss_u) {
  const int64_t V = sparq_gpt_get_config(t->gpt)->vocab_size;
  sparq_status s = sparq_gpt_infer(t->gpt, t->x, t->null_labels, NULL, t->batch, t->seq, t->logits_u);
  if (s) return s;
  return sparq_gpt_gft_loss(t->batch, t->seq + 1, V, t->beta, l_s, t->logits_u, t->targets, dloss, dl_s, t->work,
                            loss, loss_s, loss_u);
}

sparq_status lm_cond_train_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  sparq_lm_task *t = self;
  sparq_status s = draw(t, false, t->p_uncond, rng);
  if (s) return s;
  if (!t->gft) {
    s = sparq_gpt_forward_cond(t->gpt, t->x, t->y, t->labels, NULL, t->batch, t->seq, loss);
    return s ? s : sparq_gpt_backward(t->gpt, dloss);
  }
  float ls = 0.0f, lu = 0.0f;
  s = sparq_gpt_forward_cond(t->gpt, t->x, NULL, t->labels, t->beta_in, t->batch, t->seq, NULL);
  if (!s) s = gft_loss(t, sparq_gpt_logits(t->gpt), dloss, t->dlogits, loss, &ls, &lu);
  if (!s) s = sparq_gpt_backward_logits(t->gpt, t->dlogits);
  if (s) return s;
  t->gft_loss_s += ls;
  t->gft_loss_u += lu;
  t->gft_micros++;
  return SPARQ_OK;
}

sparq_status lm_cond_eval(void *self, float *loss) {
  sparq_lm_task *t = self;
  sparq_rng rng = sparq_rng_make(t->eval_seed, EVAL_STREAM);
  double sum = 0.0;
  for (int64_t i = 0; i < t->eval_batches; i++) {
    float l = 0.0f;
    sparq_status s = draw(t, true, 0.0f, &rng);
    if (!s && !t->gft) s = sparq_gpt_forward_cond(t->gpt, t->x, t->y, t->labels, NULL, t->batch, t->seq, &l);
    if (!s && t->gft) {
      /* l_s goes to dlogits, free between steps */
      s = sparq_gpt_infer(t->gpt, t->x, t->labels, t->beta_in, t->batch, t->seq, t->dlogits);
      if (!s) s = gft_loss(t, t->dlogits, 0.0f, NULL, &l, NULL, NULL);
    }
    if (s) return s;
    sum += l;
  }
  *loss = (float)(sum / (double)t->eval_batches);
  return SPARQ_OK;
}

void lm_cond_log_extra(void *self, char *buf, size_t size) {
  sparq_lm_task *t = self;
  if (!t->gft || t->gft_micros == 0) return;
  snprintf(buf, size, ",\"loss_s\":%.6f,\"loss_u\":%.6f", t->gft_loss_s / (double)t->gft_micros,
           t->gft_loss_u / (double)t->gft_micros);
  t->gft_loss_s = t->gft_loss_u = 0.0;
  t->gft_micros = 0;
}
