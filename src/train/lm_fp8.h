/* The LM task's FP8-activation glue (lm_fp8.c), for lm_task.c. */
#ifndef SPARQ_TRAIN_LM_FP8_H
#define SPARQ_TRAIN_LM_FP8_H

#include "sparq/lm.h"

/* Adds the saved-activation callback of the memory ledger, and with FP8
 * activations on wraps the task's log_extra to append their statistics. */
void lm_fp8_trainable(sparq_lm_task *t, sparq_trainable *out);

#endif
