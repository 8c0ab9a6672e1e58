/* The fortunes corpus with a label per file (data.h): the classes of the
 * class-conditional language models. The bytes and the file boundaries come
 * from one load (fortunes_load_files), so they are the unlabelled corpus's,
 * byte for byte. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/fortunes_internal.h"
#include "sparq/data.h"

void sparq_text_classes_free(sparq_text_classes *tc) {
  if (!tc) return;
  sparq_text_corpus_free(&tc->corpus);
  sparq_free(tc->classes);
  memset(tc, 0, sizeof *tc);
}

/* The classes of the listed files over the loaded corpus. */
static sparq_status build_classes(const char *dir, const fortunes_file *files, size_t nfiles,
                                  sparq_text_classes *out) {
  size_t total = 0;
  int kept = 0;
  for (size_t i = 0; i < nfiles; i++) {
    total += files[i].size;
    kept += files[i].size >= SPARQ_TEXT_CLASS_MIN_BYTES;
  }
  if (total != out->corpus.size)
    return sparq_fail(SPARQ_ERR_IO, "%s: the files changed while being read", dir);
  if (kept == 0)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: no text file has the %d bytes a class needs", dir,
                      SPARQ_TEXT_CLASS_MIN_BYTES);
  out->classes = sparq_calloc((size_t)kept, sizeof *out->classes, "text classes");
  if (!out->classes) return SPARQ_ERR_NOMEM;
  size_t offset = 0;
  for (size_t i = 0; i < nfiles; i++) {
    const fortunes_file *f = &files[i];
    const uint8_t *start = out->corpus.bytes + offset;
    offset += f->size;
    if (f->size < SPARQ_TEXT_CLASS_MIN_BYTES) {
      out->skipped++;
      continue;
    }
    if (strchr(f->name, ',') || strlen(f->name) > SPARQ_TEXT_CLASS_NAME_MAX)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s/%s: a class name must be at most %d bytes without ','", dir, f->name,
                        SPARQ_TEXT_CLASS_NAME_MAX);
    sparq_text_class *c = &out->classes[out->count++];
    snprintf(c->name, sizeof c->name, "%s", f->name);
    /* floor(size * 9 / 10) without the overflow of size * 9, as the corpus's split */
    c->train_size = f->size / 10 * 9 + f->size % 10 * 9 / 10;
    c->val_size = f->size - c->train_size;
    c->train = start;
    c->val = start + c->train_size;
  }
  return SPARQ_OK;
}

sparq_status sparq_fortunes_classes_load(const char *dir, sparq_text_classes *out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_fortunes_classes_load: NULL output");
  memset(out, 0, sizeof *out);
  if (!dir) {
    const char *env = getenv("SPARQ_FORTUNES_DIR");
    dir = env && *env ? env : SPARQ_FORTUNES_DEFAULT_DIR;
  }
  fortunes_file *files = NULL;
  size_t nfiles = 0;
  sparq_status st = fortunes_load_files(dir, &out->corpus, &files, &nfiles);
  if (st) return st;
  st = build_classes(dir, files, nfiles, out);
  fortunes_files_free(files, nfiles);
  if (st) sparq_text_classes_free(out);
  return st;
}

sparq_status sparq_text_class_batch(const sparq_text_class *classes, int count, bool val, int64_t batch, int64_t T,
                                    sparq_rng *rng, int32_t *x, int32_t *y, int32_t *labels) {
  static const char who[] = "sparq_text_class_batch";
  if (!classes || !rng || !x || !y || !labels || count < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument or no class", who);
  if (batch < 1 || T < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: batch %" PRId64 ", T %" PRId64, who, batch, T);
  uint64_t windows = 0;
  for (int k = 0; k < count; k++) {
    const size_t size = val ? classes[k].val_size : classes[k].train_size;
    if (size >= (size_t)T + 1) windows += size - (size_t)T;
  }
  if (windows == 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: no class has %" PRId64 " %s bytes for a window", who, T + 1,
                      val ? "held-out" : "training");
  for (int64_t b = 0; b < batch; b++) {
    uint64_t u = sparq_rng_below(rng, windows);
    int k = 0;
    for (;; k++) {
      const size_t size = val ? classes[k].val_size : classes[k].train_size;
      const uint64_t w = size >= (size_t)T + 1 ? size - (size_t)T : 0;
      if (u < w) break;
      u -= w;
    }
    const uint8_t *src = (val ? classes[k].val : classes[k].train) + u;
    for (int64_t t = 0; t < T; t++) {
      x[b * T + t] = src[t];
      y[b * T + t] = src[t + 1];
    }
    labels[b] = k;
  }
  return SPARQ_OK;
}
