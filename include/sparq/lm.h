/* Byte-level language modelling: a GPT (gpt.h) trained by the generic loop
 * (train.h) on a byte corpus (data.h). This is the glue the `sparq train lm`
 * command, its benchmark and the demo share. */
#ifndef SPARQ_LM_H
#define SPARQ_LM_H

#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
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
} sparq_lm_task;

/* Checks sizes (seq <= block_size; both splits longer than seq + 1) and
 * allocates the batch buffers. */
sparq_status sparq_lm_task_init(sparq_lm_task *task, sparq_gpt *gpt, const uint8_t *train, size_t train_size,
                                const uint8_t *val, size_t val_size, int64_t batch, int64_t seq,
                                int64_t eval_batches, uint64_t eval_seed);
void sparq_lm_task_free(sparq_lm_task *task);

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
