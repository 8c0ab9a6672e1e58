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

/* dst += src on one chunk (the map kernel of the backward). */
static void add_chunk(float *dst, const float *src, const float *unused, size_t n) {
  (void)unused;
  add_to(dst, src, n);
}

void sparq_nn_residual_forward(float *out, const float *a, const float *b, size_t n) {
  nn_map_chunks(residual_chunk, out, a, b, n);
}

void sparq_nn_residual_backward(float *da, float *db, const float *dout, size_t n) {
  if (da) nn_map_chunks(add_chunk, da, dout, NULL, n);
  if (db) nn_map_chunks(add_chunk, db, dout, NULL, n);
}
