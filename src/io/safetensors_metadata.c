/* Typed reads of safetensors __metadata__ values (which are strings): the
 * model configs stored in checkpoints. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "sparq/io.h"

/* The value of `key`, or NULL with *s set: an error when required, OK when not. */
static const char *lookup(const sparq_safetensors *st, const char *key, bool required, sparq_status *s) {
  const char *v = sparq_safetensors_metadata(st, key);
  *s = SPARQ_OK;
  if (!v && required) *s = sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata has no '%s'", st->path, key);
  return v;
}

sparq_status sparq_safetensors_metadata_int(const sparq_safetensors *st, const char *key, bool required,
                                            int64_t *out) {
  sparq_status s;
  const char *v = lookup(st, key, required, &s);
  if (!v) return s;
  errno = 0;
  char *end = NULL;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end != '\0')
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata '%s' = '%.40s' is not an integer", st->path, key, v);
  *out = (int64_t)x;
  return SPARQ_OK;
}

sparq_status sparq_safetensors_metadata_float(const sparq_safetensors *st, const char *key, bool required,
                                              float *out) {
  sparq_status s;
  const char *v = lookup(st, key, required, &s);
  if (!v) return s;
  errno = 0;
  char *end = NULL;
  float x = strtof(v, &end);
  if (errno || end == v || *end != '\0' || !isfinite(x))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata '%s' = '%.40s' is not a finite number", st->path, key, v);
  *out = x;
  return SPARQ_OK;
}
