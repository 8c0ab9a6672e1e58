/* Byte-level language modelling: a GPT (gpt.h) trained by the generic loop
 * (train.h) on a byte corpus (data.h). This is the glue the `sparq train lm`
 * command, its benchmark and the demo share. */
#ifndef SPARQ_LM_H
#define SPARQ_LM_H

#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/data.h"
#include "sparq/gpt.h"
#include "sparq/status.h"
#include "sparq/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sparq_lm_task {
  sparq_gpt *gpt;        /* borrowed */
  const uint8_t *train;  /* borrowed: training bytes */
  size_t train_size;
  const uint8_t *val;    /* borrowed: held-out bytes */
  size_t val_size;
  int64_t batch, seq;    /* micro-batch: batch windows of seq tokens */
  int64_t eval_batches;  /* held-out batches per evaluation */
  uint64_t eval_seed;    /* the held-out windows are drawn from this seed, the same every time */
  int32_t *x, *y;        /* batch x seq, owned */

  /* Class-conditional training (sparq_lm_task_set_classes); n_classes 0 otherwise. */
  const sparq_text_class *classes; /* borrowed */
  int n_classes;
  float p_uncond;        /* label dropout: a row's class becomes the null class with this probability */
  bool gft;              /* Guidance-Free Training instead of the plain conditional (CFG) objective */
  int32_t *labels, *null_labels;         /* [batch], owned */
  float *beta, *beta_in;                 /* GFT's drawn beta and the beta fed to the network [batch] */
  int32_t *targets;                      /* [batch, seq + 1]: the prefix row ignored */
  float *logits_u, *dlogits, *work;      /* [batch, seq + 1, V] (work twice that) */
  double gft_loss_s, gft_loss_u;         /* sums of the two extra losses over the step's micro-batches */
  int64_t gft_micros;
  /* Checkpoint metadata: the GPT's config, then "guidance" (cfg or gft),
   * "class_dropout_prob", "data" ("fortunes-classes") and "classes" (the
   * class names joined by ','). */
  sparq_metadata_entry meta[16];
  size_t meta_count;
  char p_uncond_text[32];
  char *class_names;                     /* owned */
} sparq_lm_task;

/* Checks sizes (seq <= block_size; both splits longer than seq + 1) and
 * allocates the batch buffers. */
sparq_status sparq_lm_task_init(sparq_lm_task *task, sparq_gpt *gpt, const uint8_t *train, size_t train_size,
                                const uint8_t *val, size_t val_size, int64_t batch, int64_t seq,
                                int64_t eval_batches, uint64_t eval_seed);
void sparq_lm_task_free(sparq_lm_task *task);

/* Makes the task class-conditional (after sparq_lm_task_init, whose byte
 * splits it then leaves unused): windows are drawn inside the classes
 * (sparq_text_class_batch), each row's class is dropped to the null class
 * with probability p_uncond, and the GPT (num_classes = count, and
 * gft_beta_dim > 0 when gft) gets the labels. Without gft the objective is
 * the plain conditional cross-entropy, the CFG baseline. With gft it is
 * GFT's (spec gft.md section 3 "Autoregressive", sparq_gpt_gft_loss):
 * beta ~ U(0, 1) per row, dropped rows fed beta 1 but combined with their
 * drawn beta (sparq_gft_draw_beta), l_u from sparq_gpt_infer with the null
 * class and beta 1; the step records then carry "loss_s" and "loss_u", the
 * cross-entropies of l_s and l_u alone. The held-out loss is the same
 * objective without label dropout on fixed held-out windows (GFT: with
 * beta drawn from the evaluation stream). Every class needs seq + 1 bytes in
 * both splits (SPARQ_ERR_ARG naming the class). */
sparq_status sparq_lm_task_set_classes(sparq_lm_task *task, const sparq_text_class *classes, int count,
                                       float p_uncond, bool gft);

/* The trainable view: train_micro draws a batch of random windows of the
 * training bytes from the trainer's data stream (sparq_text_batch), runs the
 * GPT forward and backward; eval is the mean loss over eval_batches fixed
 * random windows of the held-out bytes. Checkpoints get the GPT's config and
 * the lm_head alias. */
void sparq_lm_task_trainable(sparq_lm_task *task, sparq_trainable *out);

#ifdef __cplusplus
}
#endif
#endif
