/* sparq_tensor basics: dtype table, sizes, element access and conversion.
 * Element reads go through memcpy because tensors may sit at any byte
 * offset (safetensors views point straight into the mapped file). */
#include <string.h>

#include "sparq/base.h"
#include "sparq/io.h"
#include "sparq/num.h"
#include "sparq/tensor.h"

static const struct {
  const char *name;
  size_t size;
} dtype_info[SPARQ_DTYPE_COUNT] = {
    [SPARQ_F64] = {"F64", 8},         [SPARQ_F32] = {"F32", 4},         [SPARQ_F16] = {"F16", 2},
    [SPARQ_BF16] = {"BF16", 2},       [SPARQ_F8_E4M3] = {"F8_E4M3", 1}, [SPARQ_F8_E5M2] = {"F8_E5M2", 1},
    [SPARQ_I64] = {"I64", 8},         [SPARQ_I32] = {"I32", 4},         [SPARQ_I8] = {"I8", 1},
    [SPARQ_U8] = {"U8", 1},           [SPARQ_BOOL] = {"BOOL", 1},
};

static bool dtype_ok(sparq_dtype d) { return (unsigned)d < (unsigned)SPARQ_DTYPE_COUNT; }

size_t sparq_dtype_size(sparq_dtype dtype) { return dtype_ok(dtype) ? dtype_info[dtype].size : 0; }

const char *sparq_dtype_name(sparq_dtype dtype) { return dtype_ok(dtype) ? dtype_info[dtype].name : "?"; }

bool sparq_dtype_from_name(const char *name, sparq_dtype *out) {
  if (!name) return false;
  for (int d = 0; d < SPARQ_DTYPE_COUNT; d++)
    if (!strcmp(name, dtype_info[d].name)) {
      *out = (sparq_dtype)d;
      return true;
    }
  return false;
}

bool sparq_tensor_numel(const sparq_tensor *t, size_t *out) {
  if (t->ndim < 0 || t->ndim > SPARQ_MAX_DIMS) return false;
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0 || (uint64_t)t->shape[i] > SIZE_MAX) return false;
    if (!sparq_size_mul(n, (size_t)t->shape[i], &n)) return false;
  }
  *out = n;
  return true;
}

bool sparq_tensor_nbytes(const sparq_tensor *t, size_t *out) {
  size_t n;
  if (!dtype_ok(t->dtype) || !sparq_tensor_numel(t, &n)) return false;
  return sparq_size_mul(n, dtype_info[t->dtype].size, out);
}

double sparq_tensor_get(const sparq_tensor *t, size_t i) {
  const unsigned char *p = t->data;
  switch (t->dtype) {
    case SPARQ_F64: {
      double v;
      memcpy(&v, p + 8 * i, 8);
      return v;
    }
    case SPARQ_F32: {
      float v;
      memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case SPARQ_F16: {
      uint16_t v;
      memcpy(&v, p + 2 * i, 2);
      return sparq_f16_to_f32(v);
    }
    case SPARQ_BF16: {
      uint16_t v;
      memcpy(&v, p + 2 * i, 2);
      return sparq_bf16_to_f32(v);
    }
    case SPARQ_F8_E4M3: return sparq_e4m3_to_f32(p[i]);
    case SPARQ_F8_E5M2: return sparq_e5m2_to_f32(p[i]);
    case SPARQ_I64: {
      int64_t v;
      memcpy(&v, p + 8 * i, 8);
      return (double)v;
    }
    case SPARQ_I32: {
      int32_t v;
      memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case SPARQ_I8: return (int8_t)p[i];
    case SPARQ_U8: return p[i];
    case SPARQ_BOOL: return p[i] != 0;
    case SPARQ_DTYPE_COUNT: break;
  }
  return 0.0;
}

void sparq_tensor_free(sparq_tensor *t) {
  if (!t) return;
  sparq_free(t->data);
  t->data = NULL;
}

sparq_status sparq_tensor_to_f32(const sparq_tensor *t, float *out) {
  size_t n;
  if (!t || !out || !dtype_ok(t->dtype) || !sparq_tensor_numel(t, &n))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_tensor_to_f32: bad tensor (dtype, ndim or shape)");
  if (n && !t->data) return sparq_fail(SPARQ_ERR_ARG, "sparq_tensor_to_f32: tensor data is NULL");
  if (t->dtype == SPARQ_F32) {
    if (n) memcpy(out, t->data, n * 4);
    return SPARQ_OK;
  }
  for (size_t i = 0; i < n; i++) out[i] = (float)sparq_tensor_get(t, i);
  return SPARQ_OK;
}
