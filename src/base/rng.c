#include <math.h>

#include "sparq/base.h"

void sparq_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
  uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0;
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

sparq_rng sparq_rng_make(uint64_t seed, uint64_t stream) {
  return (sparq_rng){.seed = seed, .stream = stream, .position = 0};
}

static void block_at(uint64_t seed, uint64_t stream, uint64_t position, uint32_t out[4]) {
  sparq_philox4x32(seed, stream, position, out);
}

uint32_t sparq_rng_u32(sparq_rng *rng) {
  uint32_t b[4];
  block_at(rng->seed, rng->stream, rng->position++, b);
  return b[0];
}

uint64_t sparq_rng_u64(sparq_rng *rng) {
  uint32_t b[4];
  block_at(rng->seed, rng->stream, rng->position++, b);
  return ((uint64_t)b[1] << 32) | b[0];
}

static float uniform_from(uint32_t u) { return (float)(u >> 8) * 0x1.0p-24f; }

/* Box-Muller with u1 in (0, 1] so the log is finite. */
static float normal_from(uint32_t a, uint32_t b) {
  double u1 = ((double)(a >> 8) + 1.0) * 0x1.0p-24;
  double u2 = (double)(b >> 8) * 0x1.0p-24;
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

float sparq_rng_uniform(sparq_rng *rng) { return uniform_from(sparq_rng_u32(rng)); }

float sparq_rng_normal(sparq_rng *rng) {
  uint32_t b[4];
  block_at(rng->seed, rng->stream, rng->position++, b);
  return normal_from(b[0], b[1]);
}

uint64_t sparq_rng_below(sparq_rng *rng, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the short last bucket */
  uint64_t x;
  do x = sparq_rng_u64(rng);
  while (x >= limit);
  return x % n;
}

void sparq_rng_fill_uniform(sparq_rng *rng, float *out, size_t n, float lo, float hi) {
  const uint64_t seed = rng->seed, stream = rng->stream, base = rng->position;
  const float span = hi - lo;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    uint32_t b[4];
    block_at(seed, stream, base + i, b);
    out[i] = lo + span * uniform_from(b[0]);
  }
  rng->position += n;
}

void sparq_rng_fill_normal(sparq_rng *rng, float *out, size_t n, float mean, float stddev) {
  const uint64_t seed = rng->seed, stream = rng->stream, base = rng->position;
#pragma omp parallel for schedule(static) if (n > 16384)
  for (size_t i = 0; i < n; i++) {
    uint32_t b[4];
    block_at(seed, stream, base + i, b);
    out[i] = mean + stddev * normal_from(b[0], b[1]);
  }
  rng->position += n;
}
