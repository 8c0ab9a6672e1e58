/* The MoE side of the LM task (lm_moe.c), which sparq_lm_task_trainable
 * plugs in when the task has MoE settings. */
#ifndef SPARQ_TRAIN_LM_MOE_H
#define SPARQ_TRAIN_LM_MOE_H

#include "sparq/lm.h"

sparq_status lm_moe_train_micro(void *self, sparq_rng *rng, float dloss, float *loss);
void lm_moe_log_extra(void *self, char *buf, size_t size);
void lm_moe_meta(sparq_lm_task *t, const sparq_metadata_entry **meta, size_t *count);
void lm_moe_free(sparq_lm_task *t);

#endif
