/* A growable text buffer for the study's writers, committed atomically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sparq/io.h"
#include "study/signgd_internal.h"

void sg_text_printf(sg_text *t, const char *fmt, ...) {
  if (t->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->cap - t->len;
    int n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if ((size_t)n < room) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap ? t->cap : 4096;
    while (cap - t->len <= (size_t)n) cap *= 2;
    char *grown = realloc(t->buf, cap);
    if (!grown) {
      t->failed = 1;
      return;
    }
    t->buf = grown;
    t->cap = cap;
  }
}

void sg_text_num(sg_text *t, double x) {
  if (isfinite(x)) sg_text_printf(t, "%.9g", x);
  else sg_text_printf(t, "null");
}

void sg_text_free(sg_text *t) {
  free(t->buf);
  t->buf = NULL;
  t->len = t->cap = 0;
}

sparq_status sg_text_commit(sg_text *t, const char *path) {
  if (t->failed) {
    sg_text_free(t);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory while formatting", path);
  }
  sparq_status st = sparq_write_file_atomic(path, t->buf ? t->buf : "", t->len);
  sg_text_free(t);
  return st;
}
