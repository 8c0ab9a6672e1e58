/* Element types and the small tensor struct that crosses file and CLI APIs.
 * Kernels take raw pointers and sizes, like BLAS; this struct is for
 * loading, saving and inspecting. */
#ifndef SPARQ_TENSOR_H
#define SPARQ_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_dtype {
  SPARQ_F64,
  SPARQ_F32,
  SPARQ_F16,
  SPARQ_BF16,
  SPARQ_F8_E4M3, /* OCP "fn" variant: no inf, NaN = S.1111.111 */
  SPARQ_F8_E5M2,
  SPARQ_I64,
  SPARQ_I32,
  SPARQ_I8,
  SPARQ_U8,
  SPARQ_BOOL,
  SPARQ_DTYPE_COUNT
} sparq_dtype;

/* Bytes per element. */
size_t sparq_dtype_size(sparq_dtype dtype);
/* The safetensors spelling ("F32", "BF16", "F8_E4M3", ...). */
const char *sparq_dtype_name(sparq_dtype dtype);
/* Parses a safetensors dtype name; false if unknown. */
bool sparq_dtype_from_name(const char *name, sparq_dtype *out);

#define SPARQ_MAX_DIMS 8

/* A dense C-order (row-major) tensor. `data` is owned by whoever created the
 * struct unless the creating function says otherwise (a safetensors view
 * points into the mapped file). */
typedef struct sparq_tensor {
  void *data;
  sparq_dtype dtype;
  int ndim;                       /* 0 (scalar) .. SPARQ_MAX_DIMS */
  int64_t shape[SPARQ_MAX_DIMS];  /* elements per dimension, >= 0 */
} sparq_tensor;

/* Product of the shape (1 for a scalar). Returns false on overflow. */
bool sparq_tensor_numel(const sparq_tensor *t, size_t *out);
/* numel * dtype size. Returns false on overflow. */
bool sparq_tensor_nbytes(const sparq_tensor *t, size_t *out);
/* Element i converted to double (any dtype). */
double sparq_tensor_get(const sparq_tensor *t, size_t i);

#ifdef __cplusplus
}
#endif
#endif
