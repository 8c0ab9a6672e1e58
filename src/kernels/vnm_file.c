/* Packed V:N:M matrices in safetensors: seven tensors under one name prefix
 * (see sparq_vnm_save in vnm.h). Loading treats the file as hostile: every
 * dtype and shape is checked against the recorded pattern and logical
 * shape before anything is allocated, then the full invariant check runs. */
#include <stdio.h>
#include <string.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

enum { NPARTS = 7 };
static const char *const part_names[NPARTS] = {"values", "meta", "columns", "row_perm", "col_perm", "shape", "pattern"};
enum { P_VALUES, P_META, P_COLUMNS, P_ROW_PERM, P_COL_PERM, P_SHAPE, P_PATTERN };

#define SUFFIX ".vnm.values"

sparq_status sparq_vnm_save(const char *path, const char *name, const sparq_vnm_matrix *m) {
  if (!path || !name || !*name) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_save: NULL path or empty name");
  sparq_status st = sparq_vnm_validate(m, "sparq_vnm_save");
  if (st != SPARQ_OK) return st;
  char names[NPARTS][512];
  for (int i = 0; i < NPARTS; i++)
    if (snprintf(names[i], sizeof names[i], "%s.vnm.%s", name, part_names[i]) >= (int)sizeof names[i])
      return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_save: name '%.64s...' is too long", name);
  int64_t shape[2] = {m->rows, m->cols};
  int32_t pattern[3] = {m->pattern.v, m->pattern.n, m->pattern.m};
  sparq_named_tensor t[NPARTS] = {
      {names[P_VALUES], {m->values, SPARQ_F32, 3, {m->rows_pad, m->groups, 2}}},
      {names[P_META], {m->meta, SPARQ_U8, 2, {m->rows_pad, m->groups}}},
      {names[P_COLUMNS], {m->columns, SPARQ_I32, 3, {m->column_blocks, m->groups, 4}}},
      {names[P_ROW_PERM], {m->row_perm, SPARQ_I32, 1, {m->rows_pad}}},
      {names[P_COL_PERM], {m->col_perm, SPARQ_I32, 1, {m->cols_pad}}},
      {names[P_SHAPE], {shape, SPARQ_I64, 1, {2}}},
      {names[P_PATTERN], {pattern, SPARQ_I32, 1, {3}}},
  };
  char key[600], text[64];
  snprintf(key, sizeof key, "%s.pattern", name);
  sparq_vnm_pattern_format(m->pattern, text, sizeof text);
  sparq_metadata_entry meta[2] = {{"sparq.vnm", name}, {key, text}};
  return sparq_safetensors_write(path, t, NPARTS, meta, 2);
}

/* The prefix of the only packed matrix in st, or an error. */
static sparq_status find_only(const sparq_safetensors *st, char *prefix, size_t size) {
  size_t found = 0, suffix = strlen(SUFFIX);
  for (size_t i = 0; i < st->count; i++) {
    size_t len = strlen(st->names[i]);
    if (len > suffix && !strcmp(st->names[i] + len - suffix, SUFFIX)) {
      if (found++ == 0) snprintf(prefix, size, "%.*s", (int)(len - suffix), st->names[i]);
    }
  }
  if (found == 0) return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no packed V:N:M matrix (no *" SUFFIX ")", st->path);
  if (found > 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %zu packed V:N:M matrices; name one (e.g. '%s')", st->path, found, prefix);
  if (strlen(prefix) + 32 > size) return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor name too long", st->path);
  return SPARQ_OK;
}

static sparq_status expect(const sparq_safetensors *st, const char *tname, const sparq_tensor *t, sparq_dtype dtype,
                           int ndim, const int64_t *shape) {
  bool ok = t->dtype == dtype && t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
  if (ok) return SPARQ_OK;
  char want[128] = "", got[128] = "";
  size_t a = 0, b = 0;
  for (int d = 0; d < ndim && a < sizeof want; d++)
    a += (size_t)snprintf(want + a, sizeof want - a, "%s%lld", d ? ", " : "", (long long)shape[d]);
  for (int d = 0; d < t->ndim && b < sizeof got; d++)
    b += (size_t)snprintf(got + b, sizeof got - b, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
  return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' is %s [%s], expected %s [%s]", st->path, tname,
                    sparq_dtype_name(t->dtype), got, sparq_dtype_name(dtype), want);
}

sparq_status sparq_vnm_load(const sparq_safetensors *st, const char *name, sparq_vnm_matrix **out) {
  if (!st || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_load: NULL argument");
  *out = NULL;
  char prefix[448];
  sparq_status s;
  if (name) {
    if (snprintf(prefix, sizeof prefix, "%s", name) >= (int)sizeof prefix)
      return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_load: name too long");
  } else if ((s = find_only(st, prefix, sizeof prefix)) != SPARQ_OK) {
    return s;
  }
  const sparq_tensor *t[NPARTS];
  char names[NPARTS][512];
  for (int i = 0; i < NPARTS; i++) {
    snprintf(names[i], sizeof names[i], "%s.vnm.%s", prefix, part_names[i]);
    if ((s = sparq_safetensors_get(st, names[i], &t[i])) != SPARQ_OK) return s;
  }
  const int64_t two = 2, three = 3;
  if ((s = expect(st, names[P_SHAPE], t[P_SHAPE], SPARQ_I64, 1, &two)) != SPARQ_OK) return s;
  if ((s = expect(st, names[P_PATTERN], t[P_PATTERN], SPARQ_I32, 1, &three)) != SPARQ_OK) return s;
  int64_t shape[2];
  int32_t pat[3];
  memcpy(shape, t[P_SHAPE]->data, sizeof shape);
  memcpy(pat, t[P_PATTERN]->data, sizeof pat);
  sparq_vnm_pattern p = {pat[0], pat[1], pat[2]};
  char who[600];
  snprintf(who, sizeof who, "%s: '%s'", st->path, prefix);
  if (sparq_vnm_pattern_check(p, who) != SPARQ_OK) return SPARQ_ERR_FORMAT;
  if (shape[0] < 0 || shape[1] < 0 || shape[0] > INT32_MAX - SPARQ_VNM_MAX_V || shape[1] > INT32_MAX - SPARQ_VNM_MAX_M)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: bad logical shape %lld x %lld", who, (long long)shape[0],
                      (long long)shape[1]);
  int64_t rp = sparq_vnm_round_up(shape[0], p.v), cp = sparq_vnm_round_up(shape[1], p.m), groups = cp / p.m;
  int64_t cb = p.m == 4 ? 1 : rp / p.v;
  const int64_t sv[3] = {rp, groups, 2}, sm[2] = {rp, groups}, sc[3] = {cb, groups, 4};
  if ((s = expect(st, names[P_VALUES], t[P_VALUES], SPARQ_F32, 3, sv)) != SPARQ_OK ||
      (s = expect(st, names[P_META], t[P_META], SPARQ_U8, 2, sm)) != SPARQ_OK ||
      (s = expect(st, names[P_COLUMNS], t[P_COLUMNS], SPARQ_I32, 3, sc)) != SPARQ_OK ||
      (s = expect(st, names[P_ROW_PERM], t[P_ROW_PERM], SPARQ_I32, 1, &rp)) != SPARQ_OK ||
      (s = expect(st, names[P_COL_PERM], t[P_COL_PERM], SPARQ_I32, 1, &cp)) != SPARQ_OK)
    return s;
  sparq_vnm_matrix *m;
  if ((s = vnm_matrix_alloc(shape[0], shape[1], p, &m)) != SPARQ_OK) return s;
  memcpy(m->values, t[P_VALUES]->data, (size_t)(rp * groups * 2) * sizeof(float));
  memcpy(m->meta, t[P_META]->data, (size_t)(rp * groups));
  memcpy(m->columns, t[P_COLUMNS]->data, (size_t)(cb * groups * 4) * sizeof(int32_t));
  memcpy(m->row_perm, t[P_ROW_PERM]->data, (size_t)rp * sizeof(int32_t));
  memcpy(m->col_perm, t[P_COL_PERM]->data, (size_t)cp * sizeof(int32_t));
  if (sparq_vnm_validate(m, who) != SPARQ_OK) {
    sparq_vnm_free(m);
    /* validate's arguments are right by construction; its complaints are about the file */
    return SPARQ_ERR_FORMAT;
  }
  if ((s = vnm_matrix_finish(m)) != SPARQ_OK) {
    sparq_vnm_free(m);
    return s;
  }
  *out = m;
  return SPARQ_OK;
}
