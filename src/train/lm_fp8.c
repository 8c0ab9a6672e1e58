/* The LM task's side of COAT's FP8 activations: the switch, the saved bytes
 * for the trainer's memory ledger, and the periodic statistics of what the
 * forward stored in FP8 (spec coat-fp8.md section 7, "Activations"). */
#include <stdio.h>
#include <string.h>

#include "train/lm_fp8.h"

/* Statistics cost a single-threaded FP64 pass over every saved tensor, so
 * they are taken on a schedule rather than every step. */
enum { STATS_EVERY = 50 };

static size_t lm_activation_bytes(void *self) {
  const sparq_lm_task *t = self;
  return sparq_gpt_saved_activation_bytes(t->gpt);
}

static void lm_fp8_log_extra(void *self, char *buf, size_t size) {
  sparq_lm_task *t = self;
  size_t used = 0;
  if (t->fp8_inner_log) {
    t->fp8_inner_log(self, buf, size);
    used = strnlen(buf, size);
  } else if (size > 0) {
    buf[0] = '\0';
  }
  sparq_gpt_act_stat st[SPARQ_GPT_ACT_KINDS];
  if (sparq_gpt_fp8_act_stats(t->gpt, st) == SPARQ_OK) {
    for (int k = 0; k < SPARQ_GPT_ACT_KINDS && used < size; k++) {
      if (st[k].tensors == 0) continue;
      const int n = snprintf(buf + used, size - used, ",\"act_relmse.%s\":%.4g,\"act_sat.%s\":%.4g", st[k].name,
                             st[k].rel_mse, st[k].name, st[k].saturated);
      if (n < 0 || (size_t)n >= size - used) {
        buf[used] = '\0'; /* a record never carries half a field */
        break;
      }
      used += (size_t)n;
    }
  }
  t->fp8_steps++;
  sparq_gpt_set_fp8_act_stats(t->gpt, t->fp8_steps % STATS_EVERY == 0);
}

sparq_status sparq_lm_task_set_fp8_act(sparq_lm_task *task, bool on) {
  if (!task || !task->gpt) return sparq_fail(SPARQ_ERR_ARG, "sparq_lm_task_set_fp8_act: NULL task");
  sparq_status s = sparq_gpt_set_fp8_activations(task->gpt, on);
  if (s) return s;
  task->fp8_act = on;
  task->fp8_steps = 0;
  sparq_gpt_set_fp8_act_stats(task->gpt, on);
  return SPARQ_OK;
}

/* Called by sparq_lm_task_trainable once the task's own callbacks are set. */
void lm_fp8_trainable(sparq_lm_task *t, sparq_trainable *out) {
  out->activation_bytes = lm_activation_bytes;
  if (!t->fp8_act) return;
  t->fp8_inner_log = out->log_extra;
  out->log_extra = lm_fp8_log_extra;
  /* the metadata says so, so that a resume keeps saving in FP8 */
  const size_t cap = sizeof t->fp8_meta / sizeof t->fp8_meta[0];
  if (out->meta_count < cap) {
    memcpy(t->fp8_meta, out->meta, out->meta_count * sizeof *out->meta);
    t->fp8_meta[out->meta_count] = (sparq_metadata_entry){"fp8_activations", "true"};
    out->meta = t->fp8_meta;
    out->meta_count++;
  }
}
