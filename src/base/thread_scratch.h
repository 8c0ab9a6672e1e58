/* Scratch blocks kept per calling thread between calls of a kernel. A model
 * calls its kernels once per layer and step with the same sizes; freshly
 * allocated multi-megabyte blocks are page-faulted in on every call (glibc
 * hands freed heap tops and mmapped blocks back to the kernel), which cost
 * sage_cpu about 10 % at (1, 8, 2048, 128). The blocks stay reachable from
 * thread-local storage until released. */
#ifndef SPARQ_BASE_THREAD_SCRATCH_H
#define SPARQ_BASE_THREAD_SCRATCH_H

#include <stddef.h>

typedef enum scratch_slot {
  SCRATCH_SVG_PROFILE,
  SCRATCH_SVG_COPIES,
  SCRATCH_SVG_KERNEL,
  SCRATCH_SVG_SAGE,
  SCRATCH_SAGE, /* attn_forward_sage: every buffer of one call */
  SCRATCH_SLOTS
} scratch_slot;

/* A SPARQ_ALIGN-aligned block of at least `bytes` for this thread's slot,
 * with unspecified contents: the kept block when it is large enough, else a
 * new one replacing it. NULL, with an error naming `what`, when it cannot be
 * allocated (the slot is then empty). */
void *thread_scratch(scratch_slot slot, size_t bytes, const char *what);

/* Frees this thread's block of slot when it holds more than keep_max bytes
 * (0: always), so one huge call does not pin its memory. */
void thread_scratch_trim(scratch_slot slot, size_t keep_max);

#endif
