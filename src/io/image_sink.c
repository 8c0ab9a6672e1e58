/* Buffered writes into an atomic file, for the image encoders. */
#include <stdio.h>
#include <string.h>

#include "io/image_internal.h"

sparq_status image_sink_open(image_sink *s, const char *path) {
  s->used = 0;
  s->error[0] = '\0';
  s->status = sparq_atomic_open(&s->file, path);
  return s->status;
}

static void write_through(image_sink *s, const void *data, size_t n) {
  s->status = sparq_atomic_write(&s->file, data, n);
  if (s->status != SPARQ_OK) snprintf(s->error, sizeof s->error, "%s", sparq_last_error());
}

static void flush(image_sink *s) {
  if (s->status == SPARQ_OK && s->used) write_through(s, s->buf, s->used);
  s->used = 0;
}

void image_sink_put(image_sink *s, const void *data, size_t n) {
  if (s->status != SPARQ_OK) return;
  if (n > sizeof s->buf - s->used) {
    flush(s);
    if (s->status != SPARQ_OK) return;
    if (n >= sizeof s->buf) { /* large blocks skip the copy */
      write_through(s, data, n);
      return;
    }
  }
  memcpy(s->buf + s->used, data, n);
  s->used += n;
}

sparq_status image_sink_commit(image_sink *s) {
  flush(s);
  if (s->status != SPARQ_OK) {
    /* sparq_atomic_write already removed the file; abort is a no-op then. */
    sparq_atomic_abort(&s->file);
    return sparq_fail(s->status, "%s", s->error);
  }
  return sparq_atomic_commit(&s->file);
}

void image_sink_abort(image_sink *s) {
  s->used = 0;
  sparq_atomic_abort(&s->file);
}
