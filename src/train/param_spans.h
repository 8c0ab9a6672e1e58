/* Elementwise optimizer passes over the flat parameter buffer: each OpenMP
 * thread takes one contiguous block of the flat index space (a multiple of
 * 16 floats, so vector loops start aligned) and visits the parts of the
 * parameters inside it. The padding between parameters is never touched, so
 * it stays zero. Elementwise work split this way cannot depend on the
 * thread count. */
#ifndef SPARQ_TRAIN_PARAM_SPANS_H
#define SPARQ_TRAIN_PARAM_SPANS_H

#include <omp.h>
#include <stdbool.h>
#include <stddef.h>

#include "sparq/nn.h"

/* Below this many floats a pass runs on one thread. */
#define PARAM_SPANS_PARALLEL_MIN ((size_t)1 << 16)

/* The calling thread's block [*lo, *hi) of [0, total). */
static inline void param_spans_block(size_t total, size_t *lo, size_t *hi) {
  const size_t nt = (size_t)omp_get_num_threads(), tid = (size_t)omp_get_thread_num();
  const size_t block = ((total + nt - 1) / nt + 15) / 16 * 16;
  *lo = tid * block < total ? tid * block : total;
  *hi = *lo + block < total ? *lo + block : total;
}

/* The next part of a trainable (not frozen) parameter inside [lo, hi),
 * starting the search at item *k:
 * [*s0, *s1) of the flat buffer, belonging to items[*k - 1]. False when
 * there is none left. Use: for (size_t k = 0, s0, s1; param_spans_next(...);) */
static inline bool param_spans_next(const sparq_param *items, size_t count, size_t lo, size_t hi, size_t *k,
                                    size_t *s0, size_t *s1) {
  while (*k < count && lo < hi) {
    const sparq_param *p = &items[(*k)++];
    if (p->frozen) continue;
    const size_t a = p->offset > lo ? p->offset : lo;
    const size_t b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
    if (a < b) {
      *s0 = a, *s1 = b;
      return true;
    }
  }
  return false;
}

#endif
