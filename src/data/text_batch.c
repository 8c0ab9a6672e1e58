/* Random next-byte-prediction batches from a byte array. */
#include "sparq/data.h"

sparq_status sparq_text_batch(const uint8_t *data, size_t size, int64_t batch, int64_t T, sparq_rng *rng,
                              int32_t *x, int32_t *y) {
  if (batch < 1 || T < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_text_batch: batch %lld and T %lld must both be >= 1", (long long)batch,
                      (long long)T);
  if ((uint64_t)T >= size)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_text_batch: %zu bytes are too few for windows of T + 1 = %lld bytes",
                      size, (long long)T + 1);
  if (!data || !rng || !x || !y) return sparq_fail(SPARQ_ERR_ARG, "sparq_text_batch: NULL argument");
  /* Offsets are drawn one after the other from one stream (not in parallel)
   * so the batch depends on the rng alone; copying is cheap next to a
   * model step. */
  const uint64_t starts = (uint64_t)size - (uint64_t)T; /* offsets 0 .. size - T - 1 */
  for (int64_t b = 0; b < batch; b++) {
    const uint8_t *w = data + sparq_rng_below(rng, starts);
    int32_t *xb = x + b * T, *yb = y + b * T;
    for (int64_t t = 0; t < T; t++) {
      xb[t] = w[t];
      yb[t] = w[t + 1];
    }
  }
  return SPARQ_OK;
}
