/* safetensors writer: validate everything, build the JSON header in memory,
 * then stream header and tensor bytes through an atomic file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

typedef struct jbuf {
  char *p;
  size_t len, cap;
  bool oom;
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->cap - b->len < n + 1) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n + 1) {
      if (cap > SIZE_MAX / 2) {
        b->oom = true;
        return;
      }
      cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void jb_str(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

/* A JSON string literal; the input is already known to be valid UTF-8, so
 * only quotes, backslashes and control characters need escaping. */
static void jb_quoted(jbuf *b, const char *s) {
  jb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\', esc[1] = (char)*p;
      jb_put(b, esc, 2);
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      jb_put(b, esc, 6);
    } else {
      jb_put(b, (const char *)p, 1);
    }
  }
  jb_put(b, "\"", 1);
}

static void jb_u64(jbuf *b, unsigned long long v) {
  char num[24];
  int n = snprintf(num, sizeof num, "%llu", v);
  jb_put(b, num, (size_t)n);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* NULL when the strings are distinct, else one of the repeated ones. */
static const char *find_duplicate(const char **v, size_t n) {
  qsort(v, n, sizeof *v, cmp_str);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(v[i - 1], v[i])) return v[i];
  return NULL;
}

static bool utf8_ok(const char *s) { return s && io_utf8_valid((const unsigned char *)s, strlen(s)); }

static sparq_status validate(const char *path, const sparq_named_tensor *tensors, size_t count,
                             const sparq_metadata_entry *meta, size_t meta_count, size_t *nbytes) {
  if ((count && !tensors) || (meta_count && !meta))
    return sparq_fail(SPARQ_ERR_ARG, "%s: NULL tensor or metadata list", path);
  for (size_t i = 0; i < count; i++) {
    const char *name = tensors[i].name;
    if (!name || !*name) return sparq_fail(SPARQ_ERR_ARG, "%s: tensor %zu has an empty name", path, i);
    if (!utf8_ok(name)) return sparq_fail(SPARQ_ERR_ARG, "%s: tensor %zu's name is not valid UTF-8", path, i);
    if (!strcmp(name, "__metadata__")) return sparq_fail(SPARQ_ERR_ARG, "%s: '__metadata__' cannot name a tensor", path);
    char what[96];
    snprintf(what, sizeof what, "tensor '%.60s'", name);
    sparq_status st = io_check_tensor(path, what, &tensors[i].tensor, &nbytes[i]);
    if (st) return st;
  }
  for (size_t i = 0; i < meta_count; i++)
    if (!utf8_ok(meta[i].key) || !utf8_ok(meta[i].value))
      return sparq_fail(SPARQ_ERR_ARG, "%s: metadata entry %zu has a NULL or non-UTF-8 key or value", path, i);
  size_t n = count > meta_count ? count : meta_count;
  const char **v = malloc((n ? n : 1) * sizeof *v);
  if (!v) return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory", path);
  const char *dup;
  for (size_t i = 0; i < count; i++) v[i] = tensors[i].name;
  if ((dup = find_duplicate(v, count))) {
    sparq_status st = sparq_fail(SPARQ_ERR_ARG, "%s: two tensors are named '%s'", path, dup);
    free(v);
    return st;
  }
  for (size_t i = 0; i < meta_count; i++) v[i] = meta[i].key;
  if ((dup = find_duplicate(v, meta_count))) {
    sparq_status st = sparq_fail(SPARQ_ERR_ARG, "%s: metadata key '%s' appears twice", path, dup);
    free(v);
    return st;
  }
  free(v);
  return SPARQ_OK;
}

sparq_status sparq_safetensors_write(const char *path, const sparq_named_tensor *tensors, size_t count,
                                     const sparq_metadata_entry *metadata, size_t metadata_count) {
  if (!path) return sparq_fail(SPARQ_ERR_ARG, "sparq_safetensors_write: path is NULL");
  size_t *nbytes = calloc(count ? count : 1, sizeof *nbytes);
  if (!nbytes) return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory", path);
  sparq_status st = validate(path, tensors, count, metadata, metadata_count, nbytes);
  if (st) {
    free(nbytes);
    return st;
  }

  /* __metadata__ first, then tensors in the caller's order with their data
   * back to back, as the reference writer does. */
  jbuf b = {0};
  jb_put(&b, "        {", 9); /* 8 bytes reserved for the length */
  bool first = true;
  if (metadata_count) {
    jb_str(&b, "\"__metadata__\":{");
    for (size_t i = 0; i < metadata_count; i++) {
      if (i) jb_put(&b, ",", 1);
      jb_quoted(&b, metadata[i].key);
      jb_put(&b, ":", 1);
      jb_quoted(&b, metadata[i].value);
    }
    jb_put(&b, "}", 1);
    first = false;
  }
  size_t offset = 0;
  for (size_t i = 0; i < count; i++) {
    const sparq_tensor *t = &tensors[i].tensor;
    if (!first) jb_put(&b, ",", 1);
    first = false;
    jb_quoted(&b, tensors[i].name);
    jb_str(&b, ":{\"dtype\":\"");
    jb_str(&b, sparq_dtype_name(t->dtype));
    jb_str(&b, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      if (d) jb_put(&b, ",", 1);
      jb_u64(&b, (unsigned long long)t->shape[d]);
    }
    jb_str(&b, "],\"data_offsets\":[");
    jb_u64(&b, offset);
    jb_put(&b, ",", 1);
    if (!sparq_size_add(offset, nbytes[i], &offset)) b.oom = true;
    jb_u64(&b, offset);
    jb_str(&b, "]}");
  }
  jb_put(&b, "}", 1);
  /* pad with spaces so the data region starts 8-byte aligned */
  while (!b.oom && b.len % 8) jb_put(&b, " ", 1);
  if (b.oom) {
    free(b.p);
    free(nbytes);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory building the header", path);
  }
  uint64_t hlen = b.len - 8;
  for (int i = 0; i < 8; i++) b.p[i] = (char)(unsigned char)(hlen >> (8 * i));

  sparq_atomic_file f;
  st = sparq_atomic_open(&f, path);
  if (!st) st = sparq_atomic_write(&f, b.p, b.len);
  for (size_t i = 0; i < count && !st; i++)
    if (nbytes[i]) st = sparq_atomic_write(&f, tensors[i].tensor.data, nbytes[i]);
  if (!st) st = sparq_atomic_commit(&f);
  free(b.p);
  free(nbytes);
  return st;
}
