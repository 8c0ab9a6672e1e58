/* The training loop's helpers for the FP8 optimizers and the memory ledger
 * (trainer.c runs the loop). */
#ifndef SPARQ_TRAIN_TRAINER_INTERNAL_H
#define SPARQ_TRAIN_TRAINER_INTERNAL_H

#include <stddef.h>

#include "sparq/train.h"

/* COAT's eight state tensors per trainable parameter as checkpoint
 * tensors pointing into `st` (codes with the parameter's shape, scale / k /
 * c as [ngroups]). *out and *names are allocated (free both with free());
 * *count = 8 * st->ntensors. */
sparq_status trainer_fp8_ckpt_tensors(const sparq_adamw_fp8_state *st, const sparq_param_list *pl,
                                      sparq_ckpt_tensor **out, char **names, size_t *count);

/* Appends one JSON line per tensor of `st` to `path` (coat.jsonl). */
sparq_status trainer_fp8_log(const char *path, const sparq_adamw_fp8_state *st, const sparq_param_list *pl,
                             const sparq_adamw_config *cfg, int64_t step);

/* Bytes resident now (VmRSS from /proc/self/statm), 0 if unreadable. */
size_t trainer_rss_now(void);
/* getrusage's maximum resident set size in bytes. */
size_t trainer_rss_peak(void);
/* Writes the ledger as one JSON line to `path`, atomically. */
sparq_status trainer_memory_json(const char *path, const sparq_memory_ledger *l, size_t peak_rss, size_t rss_start);

#endif
