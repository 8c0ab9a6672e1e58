/* safetensors reader: mmap the file, validate the JSON header completely,
 * hand out views into the mapping.
 *
 * Layout (https://github.com/huggingface/safetensors): u64 little-endian N,
 * N bytes of UTF-8 JSON, then the data region. Every check that keeps a view
 * inside the mapping happens here, before any view is created: after open
 * succeeds, each tensor's numel * dtype size bytes at its data pointer lie
 * inside the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/io_internal.h"

/* Largest integer a JSON number (parsed as a double by cJSON) carries
 * exactly; anything above could have been rounded, so it is refused. */
#define ST_MAX_INT 9007199254740992.0 /* 2^53 */

typedef struct st_name {
  const char *name;
  size_t index;
} st_name;

typedef struct st_range {
  uint64_t begin, end;
  size_t index;
} st_range;

struct sparq_safetensors_impl {
  io_map map; /* owned only when opened from a path */
  cJSON *root;
  const char **names;
  sparq_tensor *tensors;
  const char **meta_keys, **meta_values;
  st_name *sorted; /* names sorted for lookup */
  char *path;
};

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const st_name *)a)->name, ((const st_name *)b)->name);
}

static int cmp_range(const void *a, const void *b) {
  const st_range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Formats a shape as "[4, 5]" for messages. */
static const char *shape_str(const sparq_tensor *t, char *buf, size_t cap) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < t->ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
  return buf;
}

/* A JSON number that is an integer in [0, 2^53]. */
static bool json_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return false;
  double d = item->valuedouble;
  if (!(d >= 0 && d <= ST_MAX_INT) || d != floor(d)) return false;
  *out = (uint64_t)d;
  return true;
}

static bool is_known_unsupported_dtype(const char *s) {
  static const char *const names[] = {"I16", "U16", "U32", "U64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i])) return true;
  return false;
}

/* Validates one tensor entry and fills the view's dtype/shape and range. */
static sparq_status parse_entry(const char *path, const cJSON *e, sparq_tensor *t, st_range *r) {
  const char *name = e->string;
  if (!cJSON_IsObject(e)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' is not a JSON object", path, name);
  const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
  for (const cJSON *f = e->child; f; f = f->next) {
    const cJSON **slot = !strcmp(f->string, "dtype") ? &dtype
                         : !strcmp(f->string, "shape") ? &shape
                         : !strcmp(f->string, "data_offsets") ? &offsets
                                                                : NULL;
    if (!slot) return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has an unknown field '%s'", path, name, f->string);
    if (*slot) return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' repeats the field '%s'", path, name, f->string);
    *slot = f;
  }
  if (!dtype || !shape || !offsets)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' lacks '%s'", path, name,
                      !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

  if (!cJSON_IsString(dtype)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' dtype is not a string", path, name);
  if (!sparq_dtype_from_name(dtype->valuestring, &t->dtype)) {
    if (is_known_unsupported_dtype(dtype->valuestring))
      return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which sparq does not support", path, name,
                        dtype->valuestring);
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has an unknown dtype '%.40s'", path, name, dtype->valuestring);
  }

  if (!cJSON_IsArray(shape)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' shape is not an array", path, name);
  t->ndim = 0;
  for (const cJSON *d = shape->child; d; d = d->next) {
    uint64_t v;
    if (t->ndim == SPARQ_MAX_DIMS)
      return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: tensor '%s' has more than %d dimensions", path, name, SPARQ_MAX_DIMS);
    if (!json_uint(d, &v)) {
      if (cJSON_IsNumber(d) && d->valuedouble < 0)
        return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has a negative dimension %.0f", path, name, d->valuedouble);
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' shape holds something other than an integer in [0, 2^53]", path,
                        name);
    }
    t->shape[t->ndim++] = (int64_t)v;
  }

  if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || !json_uint(offsets->child, &r->begin) ||
      !json_uint(offsets->child->next, &r->end))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' data_offsets is not [begin, end] with integers in [0, 2^53]", path,
                      name);
  if (r->end < r->begin)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] end before they begin", path, name,
                      (unsigned long long)r->begin, (unsigned long long)r->end);
  char sbuf[256];
  size_t nbytes;
  if (!sparq_tensor_nbytes(t, &nbytes))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' shape %s of %s overflows", path, name,
                      shape_str(t, sbuf, sizeof sbuf), sparq_dtype_name(t->dtype));
  if ((uint64_t)nbytes != r->end - r->begin)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] do not match shape %s of %s (%zu bytes)",
                      path, name, (unsigned long long)r->begin, (unsigned long long)r->end,
                      shape_str(t, sbuf, sizeof sbuf), sparq_dtype_name(t->dtype), nbytes);
  return SPARQ_OK;
}

/* Sorts names and rejects duplicates: cJSON keeps every repeated key, and a
 * file with two tensors of one name is ambiguous. */
static sparq_status check_unique(const char *path, st_name *v, size_t n, const char *what) {
  qsort(v, n, sizeof *v, cmp_name);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(v[i - 1].name, v[i].name))
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: duplicate %s '%s'", path, what, v[i].name);
  return SPARQ_OK;
}

static sparq_status parse_metadata(const char *path, const cJSON *m, struct sparq_safetensors_impl *impl, size_t *count) {
  if (!cJSON_IsObject(m)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
  size_t n = 0;
  for (const cJSON *e = m->child; e; e = e->next) {
    if (!cJSON_IsString(e))
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path, e->string);
    n++;
  }
  *count = n;
  if (!n) return SPARQ_OK;
  impl->meta_keys = calloc(n, sizeof *impl->meta_keys);
  impl->meta_values = calloc(n, sizeof *impl->meta_values);
  st_name *keys = calloc(n, sizeof *keys);
  if (!impl->meta_keys || !impl->meta_values || !keys) {
    free(keys);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory reading __metadata__", path);
  }
  size_t i = 0;
  for (const cJSON *e = m->child; e; e = e->next, i++) {
    impl->meta_keys[i] = keys[i].name = e->string;
    impl->meta_values[i] = e->valuestring;
  }
  sparq_status st = check_unique(path, keys, n, "__metadata__ key");
  free(keys);
  return st;
}

/* Checks that the sorted ranges tile [0, data_size) exactly. */
static sparq_status check_tiling(const char *path, st_range *r, size_t n, const char *const *names, uint64_t data_size) {
  qsort(r, n, sizeof *r, cmp_range);
  uint64_t at = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].end > data_size)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] run past the %llu-byte data region",
                        path, names[r[i].index], (unsigned long long)r[i].begin, (unsigned long long)r[i].end,
                        (unsigned long long)data_size);
    if (r[i].begin < at)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu)", path,
                        names[r[i - 1].index], names[r[i].index], (unsigned long long)r[i].begin,
                        (unsigned long long)at);
    if (r[i].begin > at)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: bytes %llu..%llu of the data region belong to no tensor (before '%s')", path,
                        (unsigned long long)at, (unsigned long long)r[i].begin, names[r[i].index]);
    at = r[i].end;
  }
  if (at != data_size)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: the last %llu bytes of the data region belong to no tensor", path,
                      (unsigned long long)(data_size - at));
  return SPARQ_OK;
}

static sparq_status parse_header(sparq_safetensors *st, struct sparq_safetensors_impl *impl, const unsigned char *file,
                                 size_t size) {
  const char *path = st->path;
  if (size < 8)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file (8-byte header length)", path,
                      size);
  uint64_t n = io_le64(file);
  if (n > SPARQ_SAFETENSORS_MAX_HEADER)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: header length %llu exceeds the %zu-byte limit", path, (unsigned long long)n,
                      (size_t)SPARQ_SAFETENSORS_MAX_HEADER);
  if (n > size - 8)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                      (unsigned long long)n, size);
  const unsigned char *h = file + 8;
  if (n < 2) return sparq_fail(SPARQ_ERR_FORMAT, "%s: header length %llu is too short for a JSON object", path, (unsigned long long)n);
  if (h[0] != '{') return sparq_fail(SPARQ_ERR_FORMAT, "%s: header does not start with '{'", path);
  if (!io_utf8_valid(h, (size_t)n)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: header is not valid UTF-8", path);
  /* JSON allows no raw control characters; cJSON does not check, and a NUL
   * would silently cut a name short. */
  for (size_t i = 0; i < n; i++)
    if (h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: header has a control character (0x%02x) at byte %zu", path, h[i], i);

  const char *end = NULL;
  impl->root = cJSON_ParseWithLengthOpts((const char *)h, (size_t)n, &end, 0);
  if (!impl->root) {
    size_t at = end && end >= (const char *)h ? (size_t)(end - (const char *)h) : 0;
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu)", path, at);
  }
  for (const char *p = end; p < (const char *)h + n; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: header has text after the JSON object at byte %zu", path,
                        (size_t)(p - (const char *)h));
  if (!cJSON_IsObject(impl->root)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: header is not a JSON object", path);

  size_t count = 0, keys = 0;
  for (const cJSON *e = impl->root->child; e; e = e->next) {
    keys++;
    if (strcmp(e->string, "__metadata__")) count++;
  }
  impl->sorted = calloc(keys ? keys : 1, sizeof *impl->sorted);
  impl->names = calloc(count ? count : 1, sizeof *impl->names);
  impl->tensors = calloc(count ? count : 1, sizeof *impl->tensors);
  st_range *ranges = calloc(count ? count : 1, sizeof *ranges);
  if (!impl->sorted || !impl->names || !impl->tensors || !ranges) {
    free(ranges);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory for %zu tensors", path, count);
  }
  /* every key, __metadata__ included, goes through the duplicate check */
  size_t i = 0, k = 0;
  for (const cJSON *e = impl->root->child; e; e = e->next, k++) impl->sorted[k] = (st_name){e->string, 0};
  sparq_status s = check_unique(path, impl->sorted, keys, "key");
  const cJSON *meta = NULL;
  for (const cJSON *e = impl->root->child; e && !s; e = e->next) {
    if (!strcmp(e->string, "__metadata__")) {
      meta = e;
      continue;
    }
    impl->names[i] = e->string;
    ranges[i].index = i;
    s = parse_entry(path, e, &impl->tensors[i], &ranges[i]);
    i++;
  }
  if (!s && meta) s = parse_metadata(path, meta, impl, &st->metadata_count);
  uint64_t data_size = size - 8 - n;
  if (!s) s = check_tiling(path, ranges, count, impl->names, data_size);
  if (!s) {
    /* ranges are sorted now; each carries its tensor's index */
    const unsigned char *data = h + n;
    for (size_t j = 0; j < count; j++) impl->tensors[ranges[j].index].data = (void *)(uintptr_t)(data + ranges[j].begin);
    /* the lookup table holds tensors only */
    for (size_t j = 0; j < count; j++) impl->sorted[j] = (st_name){impl->names[j], j};
    qsort(impl->sorted, count, sizeof *impl->sorted, cmp_name);
    st->count = count;
    st->names = impl->names;
    st->tensors = impl->tensors;
    st->metadata_keys = impl->meta_keys;
    st->metadata_values = impl->meta_values;
  }
  free(ranges);
  return s;
}

void sparq_safetensors_close(sparq_safetensors *st) {
  if (!st) return;
  struct sparq_safetensors_impl *impl = st->impl;
  if (impl) {
    cJSON_Delete(impl->root);
    free(impl->names);
    free(impl->tensors);
    free(impl->meta_keys);
    free(impl->meta_values);
    free(impl->sorted);
    free(impl->path);
    io_map_close(&impl->map);
    free(impl);
  }
  free(st);
}

static sparq_status open_bytes(const unsigned char *data, size_t size, const char *name, io_map *owned,
                               sparq_safetensors **out) {
  sparq_safetensors *st = calloc(1, sizeof *st);
  struct sparq_safetensors_impl *impl = calloc(1, sizeof *impl);
  size_t nlen = strlen(name) + 1;
  char *path = malloc(nlen);
  if (!st || !impl || !path) {
    free(st);
    free(impl);
    free(path);
    if (owned) io_map_close(owned);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory", name);
  }
  memcpy(path, name, nlen);
  impl->path = path;
  if (owned) impl->map = *owned;
  st->impl = impl;
  st->path = path;
  sparq_status s = parse_header(st, impl, data, size);
  if (s) {
    sparq_safetensors_close(st);
    return s;
  }
  *out = st;
  return SPARQ_OK;
}

sparq_status sparq_safetensors_open_memory(const void *data, size_t size, const char *name, sparq_safetensors **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_safetensors_open: out is NULL");
  *out = NULL;
  if (!name) name = "(memory)";
  if (!data && size) return sparq_fail(SPARQ_ERR_ARG, "%s: data is NULL", name);
  return open_bytes(data, size, name, NULL, out);
}

sparq_status sparq_safetensors_open(const char *path, sparq_safetensors **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_safetensors_open: out is NULL");
  *out = NULL;
  if (!path) return sparq_fail(SPARQ_ERR_ARG, "sparq_safetensors_open: path is NULL");
  io_map m;
  sparq_status s = io_map_open(path, &m);
  if (s) return s;
  return open_bytes(m.data, m.size, path, &m, out);
}

const sparq_tensor *sparq_safetensors_find(const sparq_safetensors *st, const char *name) {
  if (!st || !name || !st->count) return NULL;
  st_name key = {name, 0};
  const st_name *hit = bsearch(&key, st->impl->sorted, st->count, sizeof key, cmp_name);
  return hit ? &st->tensors[hit->index] : NULL;
}

sparq_status sparq_safetensors_get(const sparq_safetensors *st, const char *name, const sparq_tensor **out) {
  if (!st || !name || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_safetensors_get: NULL argument");
  *out = sparq_safetensors_find(st, name);
  if (!*out) return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no tensor named '%s'", st->path, name);
  return SPARQ_OK;
}

const char *sparq_safetensors_metadata(const sparq_safetensors *st, const char *key) {
  if (!st || !key) return NULL;
  for (size_t i = 0; i < st->metadata_count; i++)
    if (!strcmp(st->metadata_keys[i], key)) return st->metadata_values[i];
  return NULL;
}
