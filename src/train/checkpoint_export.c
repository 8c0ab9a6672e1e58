/* Parameters alone, for shipping: every parameter under its name in FP32,
 * FP16 or BF16 (the others converted with round-to-nearest-even), no
 * optimizer state, the caller's metadata plus "format". */
#include <stdio.h>
#include <stdlib.h>

#include "sparq/num.h"
#include "sparq/train.h"

sparq_status sparq_params_export(const char *path, const sparq_param_list *pl, sparq_dtype dtype,
                                 const sparq_metadata_entry *meta, size_t meta_count) {
  static const char who[] = "sparq_params_export";
  if (!path || !pl || !pl->data || (meta_count && !meta)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (dtype != SPARQ_F32 && dtype != SPARQ_F16 && dtype != SPARQ_BF16)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %s: dtype %s is not F32, F16 or BF16", who, path, sparq_dtype_name(dtype));
  if (meta_count > 64) return sparq_fail(SPARQ_ERR_ARG, "%s: %s: too many metadata entries", who, path);
  const size_t count = pl->count;
  sparq_named_tensor *tensors = calloc(count ? count : 1, sizeof *tensors);
  sparq_metadata_entry *all = calloc(meta_count + 1, sizeof *all);
  uint16_t *half = NULL;
  if (dtype != SPARQ_F32) half = malloc((pl->numel ? pl->numel : 1) * sizeof *half);
  if (!tensors || !all || (dtype != SPARQ_F32 && !half)) {
    free(tensors), free(all), free(half);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: %s: out of memory", who, path);
  }
  /* the padded flat layout converts in one call; the padding is never written */
  if (dtype == SPARQ_F16) sparq_f32_to_f16_n(pl->data, half, pl->numel);
  if (dtype == SPARQ_BF16) sparq_f32_to_bf16_n(pl->data, half, pl->numel);
  for (size_t i = 0; i < count; i++) {
    const sparq_param *p = &pl->items[i];
    sparq_tensor t = {.dtype = dtype, .ndim = p->ndim};
    for (int d = 0; d < p->ndim; d++) t.shape[d] = p->shape[d];
    t.data = dtype == SPARQ_F32 ? (void *)(pl->data + p->offset) : (void *)(half + p->offset);
    tensors[i] = (sparq_named_tensor){p->name, t};
  }
  for (size_t i = 0; i < meta_count; i++) all[i] = meta[i];
  all[meta_count] = (sparq_metadata_entry){"format", dtype == SPARQ_F32   ? "parameters-f32"
                                                     : dtype == SPARQ_F16 ? "parameters-f16"
                                                                          : "parameters-bf16"};
  sparq_status s = sparq_safetensors_write(path, tensors, count, all, meta_count + 1);
  free(tensors), free(all), free(half);
  return s;
}
