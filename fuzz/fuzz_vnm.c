/* Fuzzes the packed V:N:M loader: safetensors parsing plus every shape,
 * permutation and metadata invariant sparq_vnm_load checks. A matrix that
 * loads must also unpack and multiply without touching memory outside its
 * buffers (ASan watches). */
#include <stdint.h>
#include <string.h>

#include "sparq/sparq.h"

#define NAME "fuzz.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sparq_safetensors *st;
  if (sparq_safetensors_open_memory(data, size, NAME, &st) != SPARQ_OK) return 0;
  sparq_vnm_matrix *m = NULL;
  if (sparq_vnm_load(st, NULL, &m) == SPARQ_OK) {
    /* bounded work: the loader already rejected absurd shapes, skip big ones here */
    if (m->rows * m->cols <= (1 << 16)) {
      float *w = sparq_calloc((size_t)(m->rows * m->cols) + 1, sizeof(float), "fuzz w");
      float *x = sparq_calloc((size_t)(3 * m->cols) + 1, sizeof(float), "fuzz x");
      float *y = sparq_calloc((size_t)(3 * m->rows) + 1, sizeof(float), "fuzz y");
      if (w && x && y) {
        if (sparq_vnm_unpack(m, w, m->cols > 0 ? m->cols : 1) != SPARQ_OK) __builtin_trap();
        if (sparq_vnm_gemm(m, 3, x, m->cols > 0 ? m->cols : 1, y, m->rows > 0 ? m->rows : 1) != SPARQ_OK)
          __builtin_trap();
      }
      sparq_free(w);
      sparq_free(x);
      sparq_free(y);
    }
    sparq_vnm_free(m);
  } else if (strncmp(sparq_last_error(), NAME, strlen(NAME)) && strncmp(sparq_last_error(), "sparq_vnm", 9)) {
    /* failures name the file (or the loader) */
    __builtin_trap();
  }
  sparq_safetensors_close(st);
  return 0;
}
