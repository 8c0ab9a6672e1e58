#include "base/thread_scratch.h"

#include "sparq/base.h"

static _Thread_local struct kept_block {
  void *p;
  size_t bytes;
} kept[SCRATCH_SLOTS];

void *thread_scratch(scratch_slot slot, size_t bytes, const char *what) {
  struct kept_block *c = &kept[slot];
  if (c->bytes < bytes) {
    sparq_free(c->p);
    c->p = sparq_alloc(bytes, what);
    c->bytes = c->p ? bytes : 0;
  }
  return c->p;
}

void thread_scratch_trim(scratch_slot slot, size_t keep_max) {
  struct kept_block *c = &kept[slot];
  if (keep_max == 0 || c->bytes > keep_max) {
    sparq_free(c->p);
    c->p = NULL;
    c->bytes = 0;
  }
}
