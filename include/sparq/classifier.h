/* The evaluation classifier: a small Fashion-MNIST CNN whose penultimate
 * features and class probabilities feed the generation metrics
 * (gen_metrics.h: Fréchet distance, class accuracy, IS-analog). sparq
 * trains it once (`sparq train classifier`) and ships the frozen weights
 * as models/fmnist-classifier.safetensors.
 *
 * Architecture (PyTorch module names, so a checkpoint loads into the same
 * nn.Module with load_state_dict), images [n,1,S,S] in [-1, 1], S = 28:
 *
 *   conv1  Conv2d(1, C1, 3, padding=1) -> ReLU -> MaxPool2d(2)    [n,C1,S/2,S/2]
 *   conv2  Conv2d(C1, C2, 3, padding=1) -> ReLU -> MaxPool2d(2)   [n,C2,S/4,S/4]
 *   flatten (C-order, as torch.flatten)                            [n,C2 S^2/16]
 *   fc1    Linear(C2 S^2/16, F) -> ReLU   = the feature            [n,F]
 *   fc2    Linear(F, classes)            = the logits             [n,classes]
 *
 * Parameters: conv1.weight [C1,1,3,3], conv1.bias [C1], conv2.weight
 * [C2,C1,3,3], conv2.bias [C2], fc1.weight [F, C2 S^2/16], fc1.bias [F],
 * fc2.weight [classes,F], fc2.bias [classes]. Defaults C1 32, C2 64, F 128,
 * 10 classes. The config is stored in the checkpoint metadata ("model" =
 * "fmnist-cnn", "image_size", "conv1_channels", "conv2_channels", "hidden",
 * "num_classes" as decimal strings).
 *
 * Deterministic: the same seed, data and thread count give the same
 * weights bit for bit; every layer's own loops are thread-count
 * independent, and so is the GEMM backend on the shapes checked by
 * tests/test_classifier.c. */
#ifndef SPARQ_CLASSIFIER_H
#define SPARQ_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/io.h"
#include "sparq/nn.h"
#include "sparq/status.h"
#include "sparq/tensor.h"
#include "sparq/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* File name of the shipped weights (models/ in the source tree, DATADIR/sparq
 * when installed). */
#define SPARQ_CLASSIFIER_FILE "fmnist-classifier.safetensors"
/* Environment variable that overrides sparq_classifier_default_path(). */
#define SPARQ_CLASSIFIER_ENV "SPARQ_CLASSIFIER"
/* Images per forward inside sparq_classifier_features / _evaluate: the
 * batch the buffers are sized for, whatever n is. */
#define SPARQ_CLASSIFIER_CHUNK 128

typedef struct sparq_classifier_config {
  int64_t image_size;     /* S: the input is S x S, one channel; a multiple of 4, default 28 */
  int64_t conv1_channels; /* C1, default 32 */
  int64_t conv2_channels; /* C2, default 64 */
  int64_t hidden;         /* F: fc1's width, the feature dimension, default 128 */
  int64_t num_classes;    /* default 10 */
} sparq_classifier_config;

sparq_classifier_config sparq_classifier_config_default(void);
/* SPARQ_ERR_ARG naming the field when a value is out of range. */
sparq_status sparq_classifier_config_check(const sparq_classifier_config *cfg);
/* Reads the config from a checkpoint's metadata; a file whose "model" is
 * not "fmnist-cnn" is SPARQ_ERR_FORMAT. */
sparq_status sparq_classifier_config_from_metadata(const sparq_safetensors *st, sparq_classifier_config *out);

typedef struct sparq_classifier sparq_classifier;

/* A model with PyTorch's default initialisation of Conv2d and Linear from
 * `seed`: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), each
 * parameter from its own Philox stream. */
sparq_status sparq_classifier_create(const sparq_classifier_config *cfg, uint64_t seed, sparq_classifier **out);
void sparq_classifier_free(sparq_classifier *m);
const sparq_classifier_config *sparq_classifier_get_config(const sparq_classifier *m);
sparq_param_list *sparq_classifier_params(sparq_classifier *m);
/* The config as checkpoint metadata (static storage owned by m). */
void sparq_classifier_checkpoint_info(sparq_classifier *m, const sparq_metadata_entry **meta, size_t *meta_count);

/* Forward over images [n,1,S,S]. With labels [n] (0..classes-1, negative =
 * ignored) *loss is the mean cross-entropy in nats; with labels NULL no loss
 * is computed (loss may be NULL). Activations are kept for
 * sparq_classifier_backward; the buffers grow to the largest n seen. */
sparq_status sparq_classifier_forward(sparq_classifier *m, const float *images, const int32_t *labels, int64_t n,
                                      float *loss);
/* Logits [n,classes], softmax probabilities [n,classes] and features
 * [n,F] of the last forward (valid until the next call). */
const float *sparq_classifier_logits(const sparq_classifier *m);
const float *sparq_classifier_probs(const sparq_classifier *m);
const float *sparq_classifier_last_features(const sparq_classifier *m);
/* Adds dloss * d(loss)/d(param) to the gradients for the last forward,
 * which must have had labels. */
sparq_status sparq_classifier_backward(sparq_classifier *m, float dloss);

/* Batched inference over any n >= 0 in chunks of SPARQ_CLASSIFIER_CHUNK:
 * feats [n,F] (the ReLU output of fc1) and probs [n,classes] (softmax of
 * the logits); either may be NULL. Overwrites the saved activations. */
sparq_status sparq_classifier_features(sparq_classifier *m, const float *images, int64_t n, float *feats,
                                       float *probs);
/* Mean cross-entropy (nats) and accuracy (argmax of the logits, first on
 * ties, equal to the label) over n >= 1 labelled images; either output may
 * be NULL. The per-chunk sums are added in double in chunk order. */
sparq_status sparq_classifier_evaluate(sparq_classifier *m, const float *images, const int32_t *labels, int64_t n,
                                       double *loss, double *accuracy);

/* Opens a classifier checkpoint: the config from its metadata, then the
 * parameters (F32, F16, BF16 or F64; other tensors such as optimizer
 * moments are ignored), so both a training run's ckpt.safetensors and the
 * shipped weights load. */
sparq_status sparq_classifier_load(const char *path, sparq_classifier **out);
/* Writes the parameters only (no optimizer state), as SPARQ_F32 or
 * SPARQ_F16 (round to nearest even), with the config metadata, atomically. */
sparq_status sparq_classifier_save(sparq_classifier *m, const char *path, sparq_dtype dtype);

/* Where the shipped weights are, first match wins:
 *   1. $SPARQ_CLASSIFIER when set and non-empty (returned even if missing,
 *      so loading it names the file);
 *   2. models/fmnist-classifier.safetensors in the source tree this library
 *      was built from (a compile-time path: the build tree's binaries find
 *      the file without installing);
 *   3. DATADIR/sparq/fmnist-classifier.safetensors under the install prefix
 *      (`make install` puts it there).
 * NULL with SPARQ_ERR_NOT_FOUND recorded when neither file exists. The
 * string is static (or the environment's). */
const char *sparq_classifier_default_path(void);

/* ------------------------------------------------------ training glue */

/* A classifier and a labelled image set as a sparq_trainable. */
typedef struct sparq_classifier_task {
  sparq_classifier *model;            /* borrowed */
  const float *train_images;          /* borrowed: [n_train,1,S,S] */
  const int32_t *train_labels;        /* borrowed */
  int64_t n_train;
  const float *eval_images;           /* borrowed: the held-out set, [n_eval,1,S,S] */
  const int32_t *eval_labels;
  int64_t n_eval;
  int64_t batch;                      /* images per micro-batch */
  double last_eval_accuracy;          /* of the last eval call (NaN before) */
  /* The permutation of the current epoch (see sparq_classifier_task_trainable). */
  int64_t *perm, perm_epoch;
  uint64_t perm_seed;
  float *x;                           /* batch images, owned */
  int32_t *y;                         /* batch labels, owned */
} sparq_classifier_task;

/* Checks sizes and allocates the batch buffers. */
sparq_status sparq_classifier_task_init(sparq_classifier_task *t, sparq_classifier *model,
                                        const float *train_images, const int32_t *train_labels, int64_t n_train,
                                        const float *eval_images, const int32_t *eval_labels, int64_t n_eval,
                                        int64_t batch);
void sparq_classifier_task_free(sparq_classifier_task *t);

/* The trainable view. Micro-batches walk the training set in epochs, each
 * epoch a fresh shuffle: micro-batch k takes the samples k B .. k B + B - 1
 * of the endless sequence perm_0, perm_1, ... where perm_e is a
 * Fisher-Yates permutation drawn from (the data stream's seed, epoch e).
 * k is the data stream's position, which each micro-batch advances by one,
 * so a resumed run continues mid-epoch exactly. eval is the mean
 * cross-entropy over the whole held-out set (its accuracy is kept in
 * last_eval_accuracy). Checkpoints get the classifier's config. */
void sparq_classifier_task_trainable(sparq_classifier_task *t, sparq_trainable *out);

#ifdef __cplusplus
}
#endif
#endif
