/* The class-conditional side of the LM task (lm_cond.c), which
 * sparq_lm_task_trainable plugs in when the task has classes. */
#ifndef SPARQ_TRAIN_LM_COND_H
#define SPARQ_TRAIN_LM_COND_H

#include "sparq/lm.h"

sparq_status lm_cond_train_micro(void *self, sparq_rng *rng, float dloss, float *loss);
sparq_status lm_cond_eval(void *self, float *loss);
void lm_cond_log_extra(void *self, char *buf, size_t size);
/* Frees what sparq_lm_task_set_classes allocated (safe when it did not run). */
void lm_cond_free(sparq_lm_task *t);

#endif
