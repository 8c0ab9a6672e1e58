/* Pieces shared by the image files (src/io/image_*.c, png_write.c,
 * gif_write.c); not part of the public API. */
#ifndef SPARQ_IO_IMAGE_INTERNAL_H
#define SPARQ_IO_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "sparq/image.h"
#include "sparq/io.h"

/* The SPARQ_FONT_HEIGHT rows of character c, top to bottom. A row is a
 * string of SPARQ_FONT_WIDTH characters, '#' for ink and '.' for none, or
 * NULL for an empty row. Bytes outside 32..126 give the glyph of '?'. */
const char *const *image_font_glyph(unsigned char c);

/* Checks 1 <= height, width <= SPARQ_IMAGE_MAX_SIDE and channels 1 or 3, and
 * sets *bytes = height * width * channels. On failure records an error that
 * starts with `who` (a function name or a file path). */
sparq_status image_check_shape(const char *who, int height, int width, int channels, size_t *bytes);

/* A small write buffer in front of sparq_atomic_file (io.h): libpng and
 * giflib emit many tiny writes (4-byte chunk lengths, 255-byte GIF blocks),
 * and each would otherwise be a write(2). The first failure is kept in
 * `status`; later puts do nothing, so encoders may check once at the end. */
typedef struct image_sink {
  sparq_atomic_file file;
  sparq_status status;
  char error[1024]; /* the message of that failure, kept because encoders
                       record their own generic error on top of it */
  size_t used;
  unsigned char buf[16384];
} image_sink;

/* Creates the temporary file next to `path` (see sparq_atomic_open). */
sparq_status image_sink_open(image_sink *s, const char *path);
/* Appends n bytes. */
void image_sink_put(image_sink *s, const void *data, size_t n);
/* Flushes and commits (fsync, rename). If any put failed, removes the
 * temporary file and returns that failure, recording its message again. */
sparq_status image_sink_commit(image_sink *s);
/* Removes the temporary file; the destination is left untouched. */
void image_sink_abort(image_sink *s);

#endif
