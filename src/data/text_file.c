/* Any file as a byte corpus, with the same 90/10 split as fortunes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sparq/data.h"

sparq_status sparq_text_file_load(const char *path, sparq_text_corpus *out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_text_file_load: NULL output");
  memset(out, 0, sizeof *out);
  if (!path) return sparq_fail(SPARQ_ERR_ARG, "sparq_text_file_load: NULL path");
  FILE *f = fopen(path, "rb");
  if (!f) return sparq_fail(errno == ENOENT ? SPARQ_ERR_NOT_FOUND : SPARQ_ERR_IO, "%s: %s", path, strerror(errno));
  sparq_status s = SPARQ_OK;
  long size = -1;
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
    s = sparq_fail(SPARQ_ERR_IO, "%s: cannot determine the size (not a regular file?)", path);
  else if ((unsigned long)size > SPARQ_TEXT_MAX_BYTES)
    s = sparq_fail(SPARQ_ERR_NOMEM, "%s: %ld bytes are more than the limit of %zu", path, size,
                   (size_t)SPARQ_TEXT_MAX_BYTES);
  else if (size == 0)
    s = sparq_fail(SPARQ_ERR_FORMAT, "%s: the file is empty", path);
  uint8_t *bytes = NULL;
  if (!s && !(bytes = sparq_alloc((size_t)size, "text file"))) s = SPARQ_ERR_NOMEM;
  if (!s && fread(bytes, 1, (size_t)size, f) != (size_t)size)
    s = sparq_fail(SPARQ_ERR_IO, "%s: short read", path);
  fclose(f);
  if (s) {
    sparq_free(bytes);
    return s;
  }
  out->bytes = bytes;
  out->size = (size_t)size;
  out->train = bytes;
  out->train_size = out->size / 10 * 9 + (out->size % 10) * 9 / 10;
  out->val = bytes + out->train_size;
  out->val_size = out->size - out->train_size;
  out->files = 1;
  return SPARQ_OK;
}
