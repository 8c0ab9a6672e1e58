/* Byte-level LM training glue: GPT + byte corpus -> sparq_trainable. */
#include <inttypes.h>
#include <string.h>

#include "sparq/data.h"
#include "sparq/lm.h"
#include "train/lm_cond.h"
#include "train/lm_fp8.h"
#include "train/lm_moe.h"

/* The held-out windows come from their own stream of eval_seed. */
#define EVAL_STREAM 0x6576616cu /* "eval" */

sparq_status sparq_lm_task_init(sparq_lm_task *t, sparq_gpt *gpt, const uint8_t *train, size_t train_size,
                                const uint8_t *val, size_t val_size, int64_t batch, int64_t seq,
                                int64_t eval_batches, uint64_t eval_seed) {
  if (!t || !gpt || !train || !val) return sparq_fail(SPARQ_ERR_ARG, "sparq_lm_task_init: NULL argument");
  memset(t, 0, sizeof *t);
  const sparq_gpt_config *c = sparq_gpt_get_config(gpt);
  if (batch < 1 || batch > 65536)
    return sparq_fail(SPARQ_ERR_ARG, "train lm: --batch %" PRId64 " is outside 1..65536", batch);
  if (seq < 1 || seq > c->block_size)
    return sparq_fail(SPARQ_ERR_ARG, "train lm: --seq %" PRId64 " is outside 1..block_size (%" PRId64 ")", seq,
                      c->block_size);
  if (eval_batches < 1) return sparq_fail(SPARQ_ERR_ARG, "train lm: --eval-batches must be >= 1");
  if (c->vocab_size < 256) return sparq_fail(SPARQ_ERR_ARG, "train lm: byte data needs vocab_size >= 256");
  if (train_size < (size_t)seq + 1 || val_size < (size_t)seq + 1)
    return sparq_fail(SPARQ_ERR_ARG,
                      "train lm: the data is too short for --seq %" PRId64 " (train %zu, held-out %zu bytes)", seq,
                      train_size, val_size);
  t->x = sparq_alloc((size_t)(batch * seq) * sizeof *t->x, "LM batch");
  t->y = sparq_alloc((size_t)(batch * seq) * sizeof *t->y, "LM batch");
  if (!t->x || !t->y) {
    sparq_lm_task_free(t);
    return SPARQ_ERR_NOMEM;
  }
  t->gpt = gpt;
  t->train = train;
  t->train_size = train_size;
  t->val = val;
  t->val_size = val_size;
  t->batch = batch;
  t->seq = seq;
  t->eval_batches = eval_batches;
  t->eval_seed = eval_seed;
  return SPARQ_OK;
}

void sparq_lm_task_free(sparq_lm_task *t) {
  if (!t) return;
  sparq_free(t->x);
  sparq_free(t->y);
  t->x = t->y = NULL;
  lm_cond_free(t);
  lm_moe_free(t);
}

static sparq_status lm_train_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  sparq_lm_task *t = self;
  sparq_status s = sparq_text_batch(t->train, t->train_size, t->batch, t->seq, rng, t->x, t->y);
  if (!s) s = sparq_gpt_forward(t->gpt, t->x, t->y, t->batch, t->seq, loss);
  if (!s) s = sparq_gpt_backward(t->gpt, dloss);
  return s;
}

static sparq_status lm_eval(void *self, float *loss) {
  sparq_lm_task *t = self;
  sparq_rng rng = sparq_rng_make(t->eval_seed, EVAL_STREAM);
  double sum = 0.0;
  for (int64_t i = 0; i < t->eval_batches; i++) {
    float l = 0.0f;
    sparq_status s = sparq_text_batch(t->val, t->val_size, t->batch, t->seq, &rng, t->x, t->y);
    if (!s) s = sparq_gpt_forward(t->gpt, t->x, t->y, t->batch, t->seq, &l);
    if (s) return s;
    sum += l;
  }
  *loss = (float)(sum / (double)t->eval_batches);
  return SPARQ_OK;
}

void sparq_lm_task_trainable(sparq_lm_task *t, sparq_trainable *out) {
  memset(out, 0, sizeof *out);
  out->self = t;
  out->params = sparq_gpt_params(t->gpt);
  out->train_micro = lm_train_micro;
  out->eval = lm_eval;
  out->tokens_per_micro = t->batch * t->seq;
  sparq_gpt_checkpoint_info(t->gpt, &out->aliases, &out->alias_count, &out->meta, &out->meta_count);
  if (t->n_classes > 0) {
    out->train_micro = lm_cond_train_micro;
    out->eval = lm_cond_eval;
    out->log_extra = lm_cond_log_extra;
    out->meta = t->meta;
    out->meta_count = t->meta_count;
  }
  if (t->moe) {
    out->train_micro = lm_moe_train_micro;
    out->log_extra = lm_moe_log_extra;
    lm_moe_meta(t, &out->meta, &out->meta_count);
  }
  lm_fp8_trainable(t, out);
}
