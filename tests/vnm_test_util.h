/* Helpers shared by the test_vnm_*.c tests. */
#ifndef SPARQ_TESTS_VNM_TEST_UTIL_H
#define SPARQ_TESTS_VNM_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sparq/sparq.h"
#include "sparq/vnm.h"

#define VNM_FIXTURES SPARQ_FIXTURES "/vnm"

static inline sparq_vnm_pattern vnm_pat(int v, int m) { return (sparq_vnm_pattern){v, 2, m}; }

static inline float *vnm_random(sparq_rng *rng, size_t n, float lo, float hi) {
  float *p = sparq_alloc((n ? n : 1) * sizeof(float), "test matrix");
  sparq_rng_fill_uniform(rng, p, n, lo, hi);
  return p;
}

/* A random permutation of 0..n-1 (Fisher-Yates on the test's rng). */
static inline int32_t *vnm_random_perm(sparq_rng *rng, int64_t n) {
  int32_t *p = sparq_alloc(((size_t)n + 1) * sizeof(int32_t), "test perm");
  for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)sparq_rng_below(rng, (uint64_t)i + 1);
    int32_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/* The dense masked matrix in the original order, built from the mask in
 * permuted padded order (rp x cp) by hand: the oracle for pack/unpack. */
static inline void vnm_mask_back(const float *w, int64_t rows, int64_t cols, const uint8_t *mask, int64_t cp,
                                 int64_t rp, const int32_t *row_perm, const int32_t *col_perm, float *out) {
  memset(out, 0, (size_t)(rows * cols) * sizeof(float));
  for (int64_t r = 0; r < rp; r++)
    for (int64_t c = 0; c < cp; c++) {
      int64_t i = row_perm ? row_perm[r] : r, j = col_perm ? col_perm[c] : c;
      if (mask[r * cp + c] && i < rows && j < cols) memcpy(out + i * cols + j, w + i * cols + j, sizeof(float));
    }
}

#endif
