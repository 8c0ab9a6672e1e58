/* The fortunes corpus with a label per file (data.h): the classes of the
 * class-conditional language models.
 *
 * The bytes come from sparq_fortunes_load, so they are the unlabelled
 * corpus's, byte for byte; this file only lists the same files again (the
 * same rules: regular files, no ".dat", no symbolic links, strcmp order) to
 * learn where each one starts, and checks that the sizes add up to the
 * corpus it read. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sparq/data.h"

typedef struct file_entry {
  char *name;
  size_t size;
} file_entry;

typedef struct file_list {
  file_entry *items;
  size_t count, capacity;
} file_list;

static void list_free(file_list *l) {
  for (size_t i = 0; i < l->count; i++) free(l->items[i].name);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static bool list_push(file_list *l, const char *name, size_t size) {
  if (l->count == l->capacity) {
    const size_t cap = l->capacity ? 2 * l->capacity : 64;
    file_entry *grown = realloc(l->items, cap * sizeof *grown);
    if (!grown) return false;
    l->items = grown;
    l->capacity = cap;
  }
  const size_t n = strlen(name) + 1;
  char *copy = malloc(n);
  if (!copy) return false;
  memcpy(copy, name, n);
  l->items[l->count++] = (file_entry){copy, size};
  return true;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const file_entry *)a)->name, ((const file_entry *)b)->name);
}

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !memcmp(s + n - m, suffix, m);
}

static sparq_status list_files(const char *dir, file_list *out) {
  DIR *d = opendir(dir);
  if (!d) return sparq_fail(SPARQ_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
  const int dfd = dirfd(d);
  sparq_status st = SPARQ_OK;
  for (struct dirent *e; !st && (e = readdir(d));) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (ends_with(e->d_name, ".dat")) continue;
    struct stat sb;
    if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      st = sparq_fail(SPARQ_ERR_IO, "%s/%s: %s", dir, e->d_name, strerror(errno));
      break;
    }
    if (!S_ISREG(sb.st_mode)) continue;
    if (!list_push(out, e->d_name, (size_t)sb.st_size)) st = sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory", dir);
  }
  closedir(d);
  if (!st && out->count) qsort(out->items, out->count, sizeof *out->items, by_name);
  return st;
}

void sparq_text_classes_free(sparq_text_classes *tc) {
  if (!tc) return;
  sparq_text_corpus_free(&tc->corpus);
  sparq_free(tc->classes);
  memset(tc, 0, sizeof *tc);
}

/* The classes of the listed files over the loaded corpus. */
static sparq_status build_classes(const char *dir, const file_list *files, sparq_text_classes *out) {
  size_t total = 0;
  int kept = 0;
  for (size_t i = 0; i < files->count; i++) {
    total += files->items[i].size;
    kept += files->items[i].size >= SPARQ_TEXT_CLASS_MIN_BYTES;
  }
  if (total != out->corpus.size)
    return sparq_fail(SPARQ_ERR_IO, "%s: the files changed while being read", dir);
  if (kept == 0)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: no text file has the %d bytes a class needs", dir,
                      SPARQ_TEXT_CLASS_MIN_BYTES);
  out->classes = sparq_calloc((size_t)kept, sizeof *out->classes, "text classes");
  if (!out->classes) return SPARQ_ERR_NOMEM;
  size_t offset = 0;
  for (size_t i = 0; i < files->count; i++) {
    const file_entry *f = &files->items[i];
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
  sparq_status st = sparq_fortunes_load(dir, &out->corpus);
  if (st) return st;
  file_list files = {0};
  st = list_files(dir, &files);
  if (!st) st = build_classes(dir, &files, out);
  list_free(&files);
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
