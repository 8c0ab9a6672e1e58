/* The chunked parallel loop behind the elementwise layers. */
#include "nn/nn_internal.h"
#include "sparq/base.h"

void nn_map_chunks(nn_map_fn fn, float *out, const float *a, const float *b, size_t n) {
  const int64_t chunks = (int64_t)((n + NN_CHUNK - 1) / NN_CHUNK);
#pragma omp parallel if (n >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
      const size_t i0 = (size_t)c * NN_CHUNK, len = n - i0 < NN_CHUNK ? n - i0 : NN_CHUNK;
      fn(out + i0, a ? a + i0 : NULL, b ? b + i0 : NULL, len);
    }
  }
}
