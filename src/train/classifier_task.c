/* Classifier training glue: the evaluation CNN + a labelled image set ->
 * sparq_trainable, with shuffled epochs that resume mid-epoch. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "sparq/classifier.h"

/* The permutation of epoch e comes from stream PERM_STREAM + e of the data
 * seed, apart from the trainer's own data stream. */
#define PERM_STREAM ((uint64_t)0x7065726du << 32) /* "perm" */

sparq_status sparq_classifier_task_init(sparq_classifier_task *t, sparq_classifier *model,
                                        const float *train_images, const int32_t *train_labels, int64_t n_train,
                                        const float *eval_images, const int32_t *eval_labels, int64_t n_eval,
                                        int64_t batch) {
  if (!t || !model || !train_images || !train_labels || !eval_images || !eval_labels)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_task_init: NULL argument");
  memset(t, 0, sizeof *t);
  if (batch < 1 || batch > 65536)
    return sparq_fail(SPARQ_ERR_ARG, "train classifier: --batch %" PRId64 " is outside 1..65536", batch);
  if (n_train < 1 || n_eval < 1)
    return sparq_fail(SPARQ_ERR_ARG, "train classifier: empty training (%" PRId64 ") or held-out (%" PRId64 ") set",
                      n_train, n_eval);
  const int64_t S = sparq_classifier_get_config(model)->image_size;
  t->perm = sparq_alloc((size_t)n_train * sizeof *t->perm, "classifier epoch permutation");
  t->x = sparq_alloc((size_t)(batch * S * S) * sizeof *t->x, "classifier batch");
  t->y = sparq_alloc((size_t)batch * sizeof *t->y, "classifier batch");
  if (!t->perm || !t->x || !t->y) {
    sparq_classifier_task_free(t);
    return SPARQ_ERR_NOMEM;
  }
  t->model = model;
  t->train_images = train_images;
  t->train_labels = train_labels;
  t->n_train = n_train;
  t->eval_images = eval_images;
  t->eval_labels = eval_labels;
  t->n_eval = n_eval;
  t->batch = batch;
  t->perm_epoch = -1;
  t->last_eval_accuracy = NAN;
  return SPARQ_OK;
}

void sparq_classifier_task_free(sparq_classifier_task *t) {
  if (!t) return;
  sparq_free(t->perm);
  sparq_free(t->x);
  sparq_free(t->y);
  t->perm = NULL;
  t->x = NULL;
  t->y = NULL;
}

/* Fisher-Yates shuffle of 0..n-1 for epoch e of `seed` (cached: a run
 * moves through an epoch's batches one after the other). */
static void epoch_perm(sparq_classifier_task *t, uint64_t seed, int64_t e) {
  if (t->perm_epoch == e && t->perm_seed == seed) return;
  sparq_rng rng = sparq_rng_make(seed, PERM_STREAM + (uint64_t)e);
  for (int64_t i = 0; i < t->n_train; i++) t->perm[i] = i;
  for (int64_t i = t->n_train - 1; i > 0; i--) {
    const int64_t j = (int64_t)sparq_rng_below(&rng, (uint64_t)i + 1);
    const int64_t k = t->perm[i];
    t->perm[i] = t->perm[j];
    t->perm[j] = k;
  }
  t->perm_epoch = e;
  t->perm_seed = seed;
}

static sparq_status cls_train_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  sparq_classifier_task *t = self;
  const int64_t side = sparq_classifier_get_config(t->model)->image_size, npix = side * side;
  /* the stream's position counts the micro-batches drawn so far */
  const uint64_t k = rng->position;
  (void)sparq_rng_u32(rng);
  for (int64_t i = 0; i < t->batch; i++) {
    const uint64_t slot = k * (uint64_t)t->batch + (uint64_t)i;
    epoch_perm(t, rng->seed, (int64_t)(slot / (uint64_t)t->n_train));
    const int64_t src = t->perm[slot % (uint64_t)t->n_train];
    memcpy(t->x + i * npix, t->train_images + src * npix, (size_t)npix * sizeof(float));
    t->y[i] = t->train_labels[src];
  }
  sparq_status s = sparq_classifier_forward(t->model, t->x, t->y, t->batch, loss);
  if (!s) s = sparq_classifier_backward(t->model, dloss);
  return s;
}

static sparq_status cls_eval(void *self, float *loss) {
  sparq_classifier_task *t = self;
  double l = 0.0, acc = 0.0;
  sparq_status s = sparq_classifier_evaluate(t->model, t->eval_images, t->eval_labels, t->n_eval, &l, &acc);
  if (s) return s;
  *loss = (float)l;
  t->last_eval_accuracy = acc;
  return SPARQ_OK;
}

void sparq_classifier_task_trainable(sparq_classifier_task *t, sparq_trainable *out) {
  memset(out, 0, sizeof *out);
  out->self = t;
  out->params = sparq_classifier_params(t->model);
  out->train_micro = cls_train_micro;
  out->eval = cls_eval;
  out->tokens_per_micro = t->batch; /* images per micro-batch: the log's tokens_per_s is images/s */
  sparq_classifier_checkpoint_info(t->model, &out->meta, &out->meta_count);
}
