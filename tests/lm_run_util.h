/* A tiny GPT on a small structured text, wrapped as a trainable, for the
 * training-loop tests (plain AdamW/SignGD and the FP8 optimizers). */
#ifndef SPARQ_TESTS_LM_RUN_UTIL_H
#define SPARQ_TESTS_LM_RUN_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "sparq/sparq.h"

/* A text with structure a model picks up in a few steps (free with free()). */
static inline uint8_t *lm_run_text(size_t n) {
  static const char *words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "dog ", "ran ", "far. ", "\n"};
  uint8_t *t = malloc(n);
  sparq_rng rng = sparq_rng_make(99, 0);
  size_t i = 0;
  while (t && i < n) {
    const char *w = words[sparq_rng_below(&rng, 10)];
    for (; *w && i < n; w++) t[i++] = (uint8_t)*w;
  }
  return t;
}

typedef struct lm_run {
  sparq_gpt *gpt;
  sparq_lm_task task;
  sparq_trainable model;
} lm_run;

/* A GPT of n_layer layers, 2 heads, width 32, context 16 (seed 42) on the
 * text split 90/10, micro-batches of 4 x 16, 2 held-out batches. */
static inline void lm_run_open(lm_run *r, int64_t n_layer, const uint8_t *text, size_t n) {
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = n_layer, c.n_head = 2, c.n_embd = 32, c.block_size = 16;
  assert_int_equal(sparq_gpt_create(&c, 42, &r->gpt), SPARQ_OK);
  const size_t tr = n * 9 / 10;
  assert_int_equal(sparq_lm_task_init(&r->task, r->gpt, text, tr, text + tr, n - tr, 4, 16, 2, 7), SPARQ_OK);
  sparq_lm_task_trainable(&r->task, &r->model);
}

static inline void lm_run_close(lm_run *r) {
  sparq_lm_task_free(&r->task);
  sparq_gpt_free(r->gpt);
}

#endif
