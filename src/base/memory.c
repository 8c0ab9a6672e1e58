#include <stdlib.h>
#include <string.h>

#include "sparq/base.h"

bool sparq_size_mul(size_t a, size_t b, size_t *out) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) return false;
  *out = r;
  return true;
}

bool sparq_size_add(size_t a, size_t b, size_t *out) {
  size_t r;
  if (__builtin_add_overflow(a, b, &r)) return false;
  *out = r;
  return true;
}

void *sparq_alloc(size_t bytes, const char *what) {
  size_t rounded;
  if (bytes == 0) {
    sparq_fail(SPARQ_ERR_ARG, "%s: zero-byte allocation", what);
    return NULL;
  }
  if (!sparq_size_add(bytes, SPARQ_ALIGN - 1, &rounded)) {
    sparq_fail(SPARQ_ERR_NOMEM, "%s: %zu bytes is too large to allocate", what, bytes);
    return NULL;
  }
  rounded &= ~(size_t)(SPARQ_ALIGN - 1);
  void *p = aligned_alloc(SPARQ_ALIGN, rounded);
  if (!p) sparq_fail(SPARQ_ERR_NOMEM, "%s: cannot allocate %zu bytes", what, bytes);
  return p;
}

void *sparq_calloc(size_t count, size_t size, const char *what) {
  size_t bytes;
  if (!sparq_size_mul(count, size, &bytes)) {
    sparq_fail(SPARQ_ERR_NOMEM, "%s: %zu x %zu bytes overflows", what, count, size);
    return NULL;
  }
  void *p = sparq_alloc(bytes, what);
  if (p) memset(p, 0, bytes);
  return p;
}

void sparq_free(void *ptr) { free(ptr); }

sparq_status sparq_arena_init(sparq_arena *arena, size_t capacity) {
  memset(arena, 0, sizeof *arena);
  arena->base = sparq_alloc(capacity, "sparq_arena_init");
  if (!arena->base) return SPARQ_ERR_NOMEM;
  arena->capacity = capacity;
  return SPARQ_OK;
}

void *sparq_arena_alloc(sparq_arena *arena, size_t bytes, const char *what) {
  size_t rounded, end;
  if (!sparq_size_add(bytes, SPARQ_ALIGN - 1, &rounded) ||
      !sparq_size_add(arena->used, rounded & ~(size_t)(SPARQ_ALIGN - 1), &end) ||
      end > arena->capacity) {
    sparq_fail(SPARQ_ERR_NOMEM, "%s: arena full (%zu of %zu bytes used, %zu requested)", what,
               arena->used, arena->capacity, bytes);
    return NULL;
  }
  void *p = arena->base + arena->used;
  arena->used = end;
  if (end > arena->peak) arena->peak = end;
  return p;
}

void sparq_arena_reset(sparq_arena *arena, size_t mark) {
  if (mark <= arena->used) arena->used = mark;
}

void sparq_arena_destroy(sparq_arena *arena) {
  sparq_free(arena->base);
  memset(arena, 0, sizeof *arena);
}
