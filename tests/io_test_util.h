/* Helpers shared by the test_io_*.c tests: reading the fixture manifests
 * written by tools/gen_fixtures.py and comparing tensors with them. */
#ifndef SPARQ_IO_TEST_UTIL_H
#define SPARQ_IO_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "sparq/sparq.h"
#include "test_file_util.h"

#define IO_FIXTURES SPARQ_FIXTURES "/io"
#define IO_BAD SPARQ_FIXTURES "/bad"
#define IO_WRITTEN SPARQ_TEST_TMP "/sparq_written"

static inline cJSON *io_load_json(const char *path) {
  char *text = test_slurp(path, NULL);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  free(text);
  if (!j) fprintf(stderr, "cannot parse %s\n", path);
  return j;
}

static inline double io_json_value(const cJSON *v) {
  if (cJSON_IsString(v)) return strtod(v->valuestring, NULL); /* "nan", "inf", "-inf" */
  return v->valuedouble;
}

/* True (and nothing printed) when t matches the manifest entry `e`
 * ({"name", "dtype", "shape", "values"}), every value bit-exact in double
 * (NaN matches NaN, and the sign of zero must agree). */
static inline bool io_tensor_matches(const char *file, const sparq_tensor *t, const cJSON *e) {
  const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
  const char *dtype = cJSON_GetObjectItem(e, "dtype")->valuestring;
  const cJSON *shape = cJSON_GetObjectItem(e, "shape"), *values = cJSON_GetObjectItem(e, "values");
  if (strcmp(sparq_dtype_name(t->dtype), dtype)) {
    fprintf(stderr, "%s/%s: dtype %s, expected %s\n", file, name, sparq_dtype_name(t->dtype), dtype);
    return false;
  }
  if (t->ndim != cJSON_GetArraySize(shape)) {
    fprintf(stderr, "%s/%s: ndim %d, expected %d\n", file, name, t->ndim, cJSON_GetArraySize(shape));
    return false;
  }
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] != (int64_t)cJSON_GetArrayItem(shape, i)->valuedouble) {
      fprintf(stderr, "%s/%s: dim %d is %lld\n", file, name, i, (long long)t->shape[i]);
      return false;
    }
  size_t n;
  if (!sparq_tensor_numel(t, &n) || n != (size_t)cJSON_GetArraySize(values)) {
    fprintf(stderr, "%s/%s: %zu elements, expected %d\n", file, name, n, cJSON_GetArraySize(values));
    return false;
  }
  size_t i = 0;
  for (const cJSON *v = values->child; v; v = v->next, i++) {
    double want = io_json_value(v), got = sparq_tensor_get(t, i);
    bool same = isnan(want) ? isnan(got) : (got == want && signbit(got) == signbit(want));
    if (!same) {
      fprintf(stderr, "%s/%s: element %zu is %.17g, expected %.17g\n", file, name, i, got, want);
      return false;
    }
  }
  return true;
}

/* True when the message of the last error starts with "path: ". */
static inline bool io_error_names(const char *path) {
  const char *m = sparq_last_error();
  size_t n = strlen(path);
  bool ok = !strncmp(m, path, n) && m[n] == ':' && m[n + 1] == ' ';
  if (!ok) fprintf(stderr, "message does not start with '%s: ': %s\n", path, m);
  return ok;
}

static inline void io_mkdir(const char *path) {
  if (mkdir(path, 0777) && errno != EEXIST) fprintf(stderr, "mkdir %s: %s\n", path, strerror(errno));
}

/* Number of entries in `dir` whose name contains `needle`. */
static inline int io_count_files(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));)
    if (strstr(e->d_name, needle)) n++;
  closedir(d);
  return n;
}

#endif
