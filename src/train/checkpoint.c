/* Checkpoints: one safetensors file holding every parameter (F32, under its
 * PyTorch state_dict name), the aliases of tied weights, the AdamW moments
 * as "optimizer.exp_avg.<name>" / "optimizer.exp_avg_sq.<name>" and the
 * caller's metadata. Writing goes through sparq_safetensors_write, which is
 * atomic (temporary file, fsync, rename, directory fsync), so a crash or a
 * kill leaves the previous checkpoint in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/train.h"

#define PREFIX_M "optimizer.exp_avg."
#define PREFIX_V "optimizer.exp_avg_sq."
/* room for a state's prefix, a parameter name and the NUL */
#define STATE_PREFIX_MAX 64
#define STATE_NAME_MAX (STATE_PREFIX_MAX + SPARQ_PARAM_NAME_MAX)

/* Length of a parameter's name, or SPARQ_PARAM_NAME_MAX when it is empty or
 * fills the whole array (never reads past it). */
static size_t param_name_len(const sparq_param *p) {
  const void *nul = memchr(p->name, '\0', SPARQ_PARAM_NAME_MAX);
  size_t n = nul ? (size_t)((const char *)nul - p->name) : SPARQ_PARAM_NAME_MAX;
  return n == 0 ? SPARQ_PARAM_NAME_MAX : n;
}

static bool is_adam_prefix(const char *prefix) { return !strcmp(prefix, PREFIX_M) || !strcmp(prefix, PREFIX_V); }

static sparq_status check_list(const char *fn, const char *path, const sparq_param_list *pl,
                               const sparq_ckpt_state *states, size_t nstates) {
  if (!path || !*path) return sparq_fail(SPARQ_ERR_ARG, "%s: empty path", fn);
  if (!pl || (pl->count && (!pl->items || !pl->data)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: %s: the parameter list is NULL or not allocated", fn, path);
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    if (param_name_len(p) >= SPARQ_PARAM_NAME_MAX)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s: parameter %zu has an empty or unterminated name", fn, path, i);
    if (p->ndim < 1 || p->ndim > SPARQ_PARAM_MAX_DIMS || p->offset > pl->numel || p->numel > pl->numel - p->offset)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s: parameter '%s' lies outside the list's buffer", fn, path, p->name);
  }
  if (nstates && !states) return sparq_fail(SPARQ_ERR_ARG, "%s: %s: states is NULL", fn, path);
  for (size_t j = 0; j < nstates; j++) {
    const sparq_ckpt_state *q = &states[j];
    if (!q->data || !q->prefix || !*q->prefix || strlen(q->prefix) >= STATE_PREFIX_MAX)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s: state %zu has no buffer or a bad prefix", fn, path, j);
    if (q->numel != pl->numel)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s: the %s state '%s' does not match the parameter list (%zu vs %zu floats)",
                        fn, path, is_adam_prefix(q->prefix) ? "AdamW" : "saved", q->prefix, q->numel, pl->numel);
  }
  return SPARQ_OK;
}

static sparq_tensor f32_view(const sparq_param *p, const float *data) {
  sparq_tensor t;
  memset(&t, 0, sizeof t);
  t.data = (void *)data; /* only read by the writer */
  t.dtype = SPARQ_F32;
  t.ndim = p->ndim;
  for (int d = 0; d < p->ndim; d++) t.shape[d] = p->shape[d];
  return t;
}

static sparq_tensor typed_view(const sparq_ckpt_tensor *c) {
  sparq_tensor t;
  memset(&t, 0, sizeof t);
  t.data = c->data;
  t.dtype = c->dtype;
  t.ndim = c->ndim;
  for (int d = 0; d < c->ndim && d < SPARQ_MAX_DIMS; d++) t.shape[d] = c->shape[d];
  return t;
}

/* The AdamW moments as the two states the checkpoint stores. */
static size_t adam_states(const sparq_adamw_state *adam, sparq_ckpt_state out[2]) {
  if (!adam) return 0;
  out[0] = (sparq_ckpt_state){PREFIX_M, adam->exp_avg, adam->exp_avg ? adam->numel : 0};
  out[1] = (sparq_ckpt_state){PREFIX_V, adam->exp_avg_sq, adam->exp_avg_sq ? adam->numel : 0};
  return 2;
}

sparq_status sparq_checkpoint_save(const char *path, const sparq_param_list *pl, const sparq_adamw_state *adam,
                                   const sparq_ckpt_alias *aliases, size_t alias_count,
                                   const sparq_metadata_entry *meta, size_t meta_count) {
  sparq_ckpt_state states[2];
  const size_t ns = adam_states(adam, states);
  return sparq_checkpoint_save_states(path, pl, states, ns, aliases, alias_count, meta, meta_count);
}

sparq_status sparq_checkpoint_save_states(const char *path, const sparq_param_list *pl,
                                          const sparq_ckpt_state *states, size_t nstates,
                                          const sparq_ckpt_alias *aliases, size_t alias_count,
                                          const sparq_metadata_entry *meta, size_t meta_count) {
  return sparq_checkpoint_save_ex(path, pl, states, nstates, NULL, 0, aliases, alias_count, meta, meta_count);
}

/* A typed tensor's description must be usable: name, 1..8 dimensions,
 * non-negative sizes, data for a non-empty tensor. */
static sparq_status check_typed(const char *fn, const char *path, const sparq_ckpt_tensor *tensors, size_t ntensors) {
  if (ntensors && !tensors) return sparq_fail(SPARQ_ERR_ARG, "%s: %s: tensors is NULL", fn, path);
  for (size_t i = 0; i < ntensors; i++) {
    const sparq_ckpt_tensor *t = &tensors[i];
    bool ok = t->name && *t->name && t->ndim >= 1 && t->ndim <= SPARQ_MAX_DIMS && (int)t->dtype >= 0 &&
              t->dtype < SPARQ_DTYPE_COUNT;
    for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] >= 0;
    size_t bytes = 0;
    sparq_tensor view = typed_view(t);
    if (ok) ok = sparq_tensor_nbytes(&view, &bytes) && (bytes == 0 || t->data);
    if (!ok)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s: extra tensor %zu ('%s') has no name, a bad shape or dtype, or no data",
                        fn, path, i, t->name ? t->name : "(null)");
  }
  return SPARQ_OK;
}

sparq_status sparq_checkpoint_save_ex(const char *path, const sparq_param_list *pl, const sparq_ckpt_state *states,
                                      size_t nstates, const sparq_ckpt_tensor *tensors, size_t ntensors,
                                      const sparq_ckpt_alias *aliases, size_t alias_count,
                                      const sparq_metadata_entry *meta, size_t meta_count) {
  sparq_status s = check_list("sparq_checkpoint_save", path, pl, states, nstates);
  if (!s) s = check_typed("sparq_checkpoint_save", path, tensors, ntensors);
  if (s) return s;
  if (alias_count && !aliases) return sparq_fail(SPARQ_ERR_ARG, "sparq_checkpoint_save: %s: aliases is NULL", path);
  const size_t n = pl->count;
  if (n > SIZE_MAX / 16 || alias_count > SIZE_MAX / 16 || ntensors > SIZE_MAX / 16 || nstates > 8)
    return sparq_fail(SPARQ_ERR_NOMEM, "sparq_checkpoint_save: %s: too many tensors", path);
  const size_t extra = nstates * n, total = n + alias_count + extra + ntensors;
  sparq_named_tensor *list = calloc(total ? total : 1, sizeof *list);
  char *names = extra ? malloc(extra * STATE_NAME_MAX) : NULL;
  if (!list || (extra && !names)) {
    free(list);
    free(names);
    return sparq_fail(SPARQ_ERR_NOMEM, "sparq_checkpoint_save: %s: out of memory", path);
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const sparq_param *p = &pl->items[i];
    list[k].name = p->name;
    list[k++].tensor = f32_view(p, pl->data + p->offset);
  }
  for (size_t a = 0; a < alias_count; a++) {
    const sparq_param *p = aliases[a].target ? sparq_params_find(pl, aliases[a].target) : NULL;
    if (!aliases[a].name || !p) {
      s = sparq_fail(SPARQ_ERR_ARG, "sparq_checkpoint_save: %s: alias '%s' names no parameter ('%s')", path,
                     aliases[a].name ? aliases[a].name : "(null)", aliases[a].target ? aliases[a].target : "(null)");
      goto done;
    }
    list[k].name = aliases[a].name;
    list[k++].tensor = f32_view(p, pl->data + p->offset);
  }
  for (size_t j = 0; j < extra; j++) {
    const sparq_param *p = &pl->items[j % n];
    const sparq_ckpt_state *q = &states[j / n];
    char *name = names + j * STATE_NAME_MAX;
    snprintf(name, STATE_NAME_MAX, "%s%s", q->prefix, p->name);
    list[k].name = name;
    list[k++].tensor = f32_view(p, q->data + p->offset);
  }
  for (size_t i = 0; i < ntensors; i++) {
    list[k].name = tensors[i].name;
    list[k++].tensor = typed_view(&tensors[i]);
  }
  s = sparq_safetensors_write(path, list, k, meta, meta_count);
done:
  free(names);
  free(list);
  return s;
}

/* "a, b, c" into buf (the caller adds the brackets). */
static const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
  size_t used = 0;
  buf[0] = '\0';
  for (int d = 0; d < ndim && used < size; d++) {
    int w = snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (w < 0) break;
    used += (size_t)w;
  }
  return buf;
}

/* The checkpoint's tensor `name` must exist with the parameter's shape and
 * a floating dtype the loader converts. */
static sparq_status find_checked(const sparq_safetensors *st, const char *name, const sparq_param *p,
                                 const char *state, const sparq_tensor **out) {
  const sparq_tensor *t = sparq_safetensors_find(st, name);
  *out = NULL;
  if (!t && state && is_adam_prefix(state))
    return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no tensor named '%s': the checkpoint lacks the AdamW moments of '%s'",
                      st->path, name, p->name);
  if (!t && state)
    return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no tensor named '%s': the checkpoint lacks the '%s' state of '%s'",
                      st->path, name, state, p->name);
  if (!t) return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no tensor named '%s', which the model needs", st->path, name);
  bool same = t->ndim == p->ndim;
  for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
  if (!same) {
    char have[160], want[160];
    shape_str(have, sizeof have, t->ndim, t->shape);
    shape_str(want, sizeof want, p->ndim, p->shape);
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has shape [%s], the model expects [%s]", st->path, name, have,
                      want);
  }
  if (t->dtype != SPARQ_F32 && t->dtype != SPARQ_F16 && t->dtype != SPARQ_BF16 && t->dtype != SPARQ_F64)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has dtype %s; a checkpoint holds F32, F16, BF16 or F64",
                      st->path, name, sparq_dtype_name(t->dtype));
  *out = t;
  return SPARQ_OK;
}

sparq_status sparq_checkpoint_load(const char *path, sparq_param_list *pl, sparq_adamw_state *adam,
                                   sparq_safetensors **st_out) {
  sparq_ckpt_state states[2];
  const size_t ns = adam_states(adam, states);
  return sparq_checkpoint_load_states(path, pl, states, ns, st_out);
}

sparq_status sparq_checkpoint_load_states(const char *path, sparq_param_list *pl, const sparq_ckpt_state *states,
                                          size_t nstates, sparq_safetensors **st_out) {
  return sparq_checkpoint_load_ex(path, pl, states, nstates, NULL, 0, st_out);
}

sparq_status sparq_checkpoint_load_ex(const char *path, sparq_param_list *pl, const sparq_ckpt_state *states,
                                      size_t nstates, const sparq_ckpt_tensor *tensors, size_t ntensors,
                                      sparq_safetensors **st_out) {
  if (st_out) *st_out = NULL;
  sparq_status s = check_list("sparq_checkpoint_load", path, pl, states, nstates);
  if (!s) s = check_typed("sparq_checkpoint_load", path, tensors, ntensors);
  if (s) return s;
  sparq_safetensors *st = NULL;
  s = sparq_safetensors_open(path, &st);
  if (!s) s = sparq_checkpoint_read(st, pl, states, nstates, tensors, ntensors);
  if (s || !st_out) sparq_safetensors_close(st);
  else *st_out = st;
  return s;
}

/* The file's tensor for a typed one: present, same dtype (no conversion:
 * the bytes are copied as they are), same shape, and as many bytes as that
 * shape and dtype make. */
static sparq_status find_typed(const sparq_safetensors *st, const sparq_ckpt_tensor *want, const sparq_tensor **out) {
  const sparq_tensor *t = sparq_safetensors_find(st, want->name);
  *out = NULL;
  if (!t) return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no tensor named '%s', which this run needs", st->path, want->name);
  if (t->dtype != want->dtype)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected %s", st->path, want->name,
                      sparq_dtype_name(t->dtype), sparq_dtype_name(want->dtype));
  bool same = t->ndim == want->ndim;
  for (int d = 0; same && d < want->ndim; d++) same = t->shape[d] == want->shape[d];
  if (!same) {
    char have[160], need[160];
    shape_str(have, sizeof have, t->ndim, t->shape);
    shape_str(need, sizeof need, want->ndim, want->shape);
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s]", st->path, want->name, have,
                      need);
  }
  size_t have_bytes = 0, want_bytes = 0;
  sparq_tensor view = typed_view(want);
  if (!sparq_tensor_nbytes(t, &have_bytes) || !sparq_tensor_nbytes(&view, &want_bytes) || have_bytes != want_bytes ||
      (want_bytes && (!t->data || !want->data)))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: tensor '%s' does not hold the expected %zu bytes", st->path, want->name,
                      want_bytes);
  *out = t;
  return SPARQ_OK;
}

sparq_status sparq_checkpoint_read(const sparq_safetensors *st, sparq_param_list *pl, const sparq_ckpt_state *states,
                                   size_t nstates, const sparq_ckpt_tensor *tensors, size_t ntensors) {
  if (!st) return sparq_fail(SPARQ_ERR_ARG, "sparq_checkpoint_read: no file");
  sparq_status s = check_list("sparq_checkpoint_load", st->path, pl, states, nstates);
  if (!s) s = check_typed("sparq_checkpoint_load", st->path, tensors, ntensors);
  if (s) return s;
  if (nstates > 8) return sparq_fail(SPARQ_ERR_ARG, "sparq_checkpoint_load: %s: too many states", st->path);
  const size_t n = pl->count, total = (1 + nstates) * n;
  if (ntensors > SIZE_MAX / sizeof(void *) - total)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_checkpoint_load: %s: too many tensors", st->path);
  const sparq_tensor **src = calloc(total + ntensors ? total + ntensors : 1, sizeof *src);
  if (!src) return sparq_fail(SPARQ_ERR_NOMEM, "sparq_checkpoint_load: %s: out of memory", st->path);
  /* every tensor is found and checked before anything is written, so a bad
   * checkpoint leaves the model and the states as they were */
  char name[STATE_NAME_MAX];
  for (size_t j = 0; j < total && !s; j++) {
    const sparq_param *p = &pl->items[j % n];
    const char *prefix = j < n ? NULL : states[j / n - 1].prefix;
    snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", p->name);
    s = find_checked(st, name, p, prefix, &src[j]);
  }
  for (size_t i = 0; i < ntensors && !s; i++) s = find_typed(st, &tensors[i], &src[total + i]);
  for (size_t j = 0; j < total && !s; j++) {
    const sparq_param *p = &pl->items[j % n];
    float *dst = j < n ? pl->data : states[j / n - 1].data;
    s = sparq_tensor_to_f32(src[j], dst + p->offset);
  }
  for (size_t i = 0; i < ntensors && !s; i++) {
    size_t bytes = 0;
    sparq_tensor_nbytes(src[total + i], &bytes);
    if (bytes) memcpy(tensors[i].data, src[total + i]->data, bytes);
  }
  free(src);
  return s;
}
