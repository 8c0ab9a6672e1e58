/* Helpers shared by the attention front-end, flash and backward tests. */
#ifndef SPARQ_TESTS_ATTN_TEST_FP32_H
#define SPARQ_TESTS_ATTN_TEST_FP32_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sparq/attention.h"
#include "sparq/base.h"

/* Sanitizer builds run 5-20x slower: they get the same tests on smaller shapes. */
#if defined(__SANITIZE_ADDRESS__)
#define ATTN_TEST_SLOW 1
#else
#define ATTN_TEST_SLOW 0
#endif

static inline sparq_attn_shape attn_shape(int64_t b, int64_t hq, int64_t hk, int64_t nq, int64_t nk, int64_t d) {
  sparq_attn_shape s = {b, hq, hk, nq, nk, d};
  return s;
}

static inline size_t attn_q_count(const sparq_attn_shape *s) {
  return (size_t)(s->batch * s->q_heads * s->q_len * s->head_dim);
}
static inline size_t attn_k_count(const sparq_attn_shape *s) {
  return (size_t)(s->batch * s->kv_heads * s->kv_len * s->head_dim);
}
static inline size_t attn_l_count(const sparq_attn_shape *s) {
  return (size_t)(s->batch * s->q_heads * s->q_len);
}

/* Q, K, V, O and LSE buffers of one problem. */
typedef struct attn_bufs {
  sparq_attn_shape shape;
  float *q, *k, *v, *o, *lse;
} attn_bufs;

static inline attn_bufs attn_bufs_make(const sparq_attn_shape *s, int case_id, sparq_attn_layout layout,
                                       uint64_t seed) {
  attn_bufs b;
  b.shape = *s;
  b.q = sparq_alloc(attn_q_count(s) * sizeof(float), "test q");
  b.k = sparq_alloc(attn_k_count(s) * sizeof(float), "test k");
  b.v = sparq_alloc(attn_k_count(s) * sizeof(float), "test v");
  b.o = sparq_alloc(attn_q_count(s) * sizeof(float), "test o");
  b.lse = sparq_alloc(attn_l_count(s) * sizeof(float), "test lse");
  if (case_id >= 0 && sparq_attn_make_case(case_id, s, layout, seed, b.q, b.k, b.v) != SPARQ_OK) {
    fprintf(stderr, "make_case: %s\n", sparq_last_error());
  }
  return b;
}

static inline void attn_bufs_free(attn_bufs *b) {
  sparq_free(b->q);
  sparq_free(b->k);
  sparq_free(b->v);
  sparq_free(b->o);
  sparq_free(b->lse);
}

/* Runs one variant on b (O and LSE into b->o, b->lse). */
static inline sparq_status attn_run(attn_bufs *b, sparq_attn_variant variant, bool causal, int64_t offset,
                                    sparq_attn_layout layout) {
  sparq_attn_options o = sparq_attn_options_default();
  o.variant = variant;
  o.causal = causal;
  o.layout = layout;
  if (causal && b->shape.q_len != b->shape.kv_len) {
    o.has_causal_offset = true;
    o.causal_offset = offset;
  }
  o.lse = b->lse;
  return sparq_attention(b->q, b->k, b->v, b->o, &b->shape, &o);
}

/* max |a - b| / max |b| over n elements, non-finite counted as failure (1e30). */
static inline double attn_normwise_err(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i]) || !isfinite(b[i])) return 1e30;
    double e = fabs((double)a[i] - (double)b[i]);
    num = e > num ? e : num;
    den = fabs((double)b[i]) > den ? fabs((double)b[i]) : den;
  }
  return den > 0 ? num / den : num;
}

static inline bool attn_bits_equal(const float *a, const float *b, size_t n) {
  return memcmp(a, b, n * sizeof(float)) == 0;
}

#endif
