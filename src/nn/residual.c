/* Residual connection: out = a + b, and the backward da += dout, db += dout.
 * The forward may run in place (out == a or out == b); each aliasing case
 * gets its own loop so the vectorizer needs no run-time overlap checks. */
#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

static void add3(float *restrict out, const float *restrict a, const float *restrict b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void add_to(float *restrict out, const float *restrict a, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] += a[i];
}

static void twice(float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] += out[i];
}

static void residual_chunk(float *out, const float *a, const float *b, size_t n) {
  if (out == a && out == b)
    twice(out, n);
  else if (out == a)
    add_to(out, b, n);
  else if (out == b)
    add_to(out, a, n);
  else
    add3(out, a, b, n);
}

void sparq_nn_residual_forward(float *out, const float *a, const float *b, size_t n) {
  const int64_t chunks = (int64_t)((n + NN_CHUNK - 1) / NN_CHUNK);
#pragma omp parallel if (n >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
      const size_t i0 = (size_t)c * NN_CHUNK, len = n - i0 < NN_CHUNK ? n - i0 : NN_CHUNK;
      residual_chunk(out + i0, a + i0, b + i0, len);
    }
  }
}

void sparq_nn_residual_backward(float *da, float *db, const float *dout, size_t n) {
  if (!da && !db) return;
  const int64_t chunks = (int64_t)((n + NN_CHUNK - 1) / NN_CHUNK);
#pragma omp parallel if (n >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
      const size_t i0 = (size_t)c * NN_CHUNK, len = n - i0 < NN_CHUNK ? n - i0 : NN_CHUNK;
      if (da) add_to(da + i0, dout + i0, len);
      if (db) add_to(db + i0, dout + i0, len);
    }
  }
}
