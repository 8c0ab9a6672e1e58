/* The named parameter list: registration, one flat allocation, lookup. */
#include <string.h>

#include "sparq/base.h"
#include "sparq/nn.h"

/* Each parameter starts on a 64-byte boundary so vector loops over one
 * parameter never split a cache line at its start. */
#define PARAM_ALIGN_FLOATS 16

sparq_status sparq_params_add(sparq_param_list *pl, const char *name, int ndim, const int64_t *shape) {
  if (!pl || !name || !shape) return sparq_fail(SPARQ_ERR_ARG, "sparq_params_add: NULL argument");
  size_t len = strlen(name);
  if (len == 0 || len >= SPARQ_PARAM_NAME_MAX)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_params_add: name '%.40s' must have 1..%d characters", name,
                      SPARQ_PARAM_NAME_MAX - 1);
  if (pl->data)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_params_add: '%s' added after sparq_params_allocate", name);
  if (ndim < 1 || ndim > SPARQ_PARAM_MAX_DIMS)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_params_add: '%s' has %d dimensions (1..%d)", name, ndim,
                      SPARQ_PARAM_MAX_DIMS);
  if (sparq_params_find(pl, name)) return sparq_fail(SPARQ_ERR_ARG, "sparq_params_add: '%s' added twice", name);
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 1 || !sparq_size_mul(numel, (size_t)shape[i], &numel))
      return sparq_fail(SPARQ_ERR_ARG, "sparq_params_add: '%s' dimension %d is %lld", name, i, (long long)shape[i]);
  }
  if (pl->count == pl->capacity) {
    size_t cap = pl->capacity ? 2 * pl->capacity : 64;
    sparq_param *items = sparq_alloc(cap * sizeof *items, "parameter list");
    if (!items) return SPARQ_ERR_NOMEM;
    if (pl->count) memcpy(items, pl->items, pl->count * sizeof *items);
    sparq_free(pl->items);
    pl->items = items;
    pl->capacity = cap;
  }
  sparq_param *p = &pl->items[pl->count++];
  memset(p, 0, sizeof *p);
  memcpy(p->name, name, len + 1);
  p->ndim = ndim;
  for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
  p->numel = numel;
  p->decay = ndim >= 2;
  return SPARQ_OK;
}

sparq_status sparq_params_allocate(sparq_param_list *pl) {
  if (!pl) return sparq_fail(SPARQ_ERR_ARG, "sparq_params_allocate: NULL list");
  if (pl->data) return sparq_fail(SPARQ_ERR_ARG, "sparq_params_allocate: already allocated");
  size_t total = 0;
  for (size_t i = 0; i < pl->count; i++) {
    sparq_param *p = &pl->items[i];
    p->offset = total;
    size_t padded = (p->numel + PARAM_ALIGN_FLOATS - 1) / PARAM_ALIGN_FLOATS * PARAM_ALIGN_FLOATS;
    if (!sparq_size_add(total, padded, &total))
      return sparq_fail(SPARQ_ERR_NOMEM, "sparq_params_allocate: parameter count overflows");
  }
  if (total == 0) total = PARAM_ALIGN_FLOATS;
  float *data = sparq_calloc(total, sizeof(float), "parameters");
  float *grad = sparq_calloc(total, sizeof(float), "gradients");
  if (!data || !grad) {
    sparq_free(data);
    sparq_free(grad);
    return SPARQ_ERR_NOMEM;
  }
  pl->data = data;
  pl->grad = grad;
  pl->numel = total;
  for (size_t i = 0; i < pl->count; i++) {
    pl->items[i].data = data + pl->items[i].offset;
    pl->items[i].grad = grad + pl->items[i].offset;
  }
  return SPARQ_OK;
}

void sparq_params_free(sparq_param_list *pl) {
  if (!pl) return;
  sparq_free(pl->items);
  sparq_free(pl->data);
  sparq_free(pl->grad);
  memset(pl, 0, sizeof *pl);
}

sparq_param *sparq_params_find(const sparq_param_list *pl, const char *name) {
  if (!pl || !name) return NULL;
  for (size_t i = 0; i < pl->count; i++)
    if (strcmp(pl->items[i].name, name) == 0) return &pl->items[i];
  return NULL;
}

void sparq_params_zero_grad(sparq_param_list *pl) {
  if (pl && pl->grad) memset(pl->grad, 0, pl->numel * sizeof(float));
}

size_t sparq_params_count(const sparq_param_list *pl) {
  size_t n = 0;
  for (size_t i = 0; pl && i < pl->count; i++) n += pl->items[i].numel;
  return n;
}

size_t sparq_params_copy_matching(sparq_param_list *dst, const sparq_param_list *src) {
  size_t copied = 0;
  for (size_t i = 0; i < dst->count; i++) {
    sparq_param *d = &dst->items[i];
    const sparq_param *s = sparq_params_find(src, d->name);
    if (!s || s->ndim != d->ndim) continue;
    bool same = true;
    for (int k = 0; k < d->ndim; k++) same = same && s->shape[k] == d->shape[k];
    if (!same) continue;
    memcpy(d->data, s->data, d->numel * sizeof *d->data);
    copied++;
  }
  return copied;
}
