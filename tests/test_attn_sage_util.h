/* Helpers shared by the Sage attention tests (tests/test_attn_sage_*.c). */
#ifndef SPARQ_TESTS_ATTN_SAGE_UTIL_H
#define SPARQ_TESTS_ATTN_SAGE_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sparq/attention.h"
#include "sparq/base.h"

/* Sanitizer builds run 5-20x slower: the same tests on smaller shapes. */
#if defined(__SANITIZE_ADDRESS__)
#define SAGE_TEST_SLOW 1
#else
#define SAGE_TEST_SLOW 0
#endif

static const sparq_attn_variant sage_variants[] = {SPARQ_ATTN_SAGE1, SPARQ_ATTN_SAGE2_8B, SPARQ_ATTN_SAGE2_4B,
                                                   SPARQ_ATTN_SAGE_CPU};
enum { SAGE_VARIANT_COUNT = 4 };

typedef struct sage_case {
  sparq_attn_shape s;
  float *q, *k, *v, *o, *ref, *lse, *ref_lse;
} sage_case;

static inline size_t sage_nq(const sparq_attn_shape *s) {
  return (size_t)(s->batch * s->q_heads * s->q_len * s->head_dim);
}
static inline size_t sage_nk(const sparq_attn_shape *s) {
  return (size_t)(s->batch * s->kv_heads * s->kv_len * s->head_dim);
}
static inline size_t sage_nl(const sparq_attn_shape *s) { return (size_t)(s->batch * s->q_heads * s->q_len); }

/* Buffers for one shape, filled with distribution D<case_id> (HND). */
static inline sage_case sage_case_make(int64_t b, int64_t hq, int64_t hk, int64_t nq, int64_t nk, int64_t d,
                                       int case_id, uint64_t seed) {
  sage_case c;
  sparq_attn_shape s = {b, hq, hk, nq, nk, d};
  c.s = s;
  c.q = sparq_alloc(sage_nq(&s) * sizeof(float), "test q");
  c.k = sparq_alloc(sage_nk(&s) * sizeof(float), "test k");
  c.v = sparq_alloc(sage_nk(&s) * sizeof(float), "test v");
  c.o = sparq_alloc(sage_nq(&s) * sizeof(float), "test o");
  c.ref = sparq_alloc(sage_nq(&s) * sizeof(float), "test ref");
  c.lse = sparq_alloc(sage_nl(&s) * sizeof(float), "test lse");
  c.ref_lse = sparq_alloc(sage_nl(&s) * sizeof(float), "test ref lse");
  if (sparq_attn_make_case(case_id, &s, SPARQ_ATTN_HND, seed, c.q, c.k, c.v) != SPARQ_OK)
    fprintf(stderr, "make_case: %s\n", sparq_last_error());
  return c;
}

static inline void sage_case_free(sage_case *c) {
  sparq_free(c->q), sparq_free(c->k), sparq_free(c->v), sparq_free(c->o);
  sparq_free(c->ref), sparq_free(c->lse), sparq_free(c->ref_lse);
}

/* Options for a variant; causal with Nq != Nk uses the bottom-right diagonal. */
static inline sparq_attn_options sage_opts(const sage_case *c, sparq_attn_variant v, bool causal) {
  sparq_attn_options o = sparq_attn_options_default();
  o.variant = v;
  o.causal = causal;
  if (causal && c->s.q_len != c->s.kv_len) {
    o.has_causal_offset = true;
    o.causal_offset = c->s.kv_len - c->s.q_len;
  }
  return o;
}

/* ref_f64 into c->ref and c->ref_lse. */
static inline sparq_status sage_run_ref(sage_case *c, bool causal) {
  sparq_attn_options o = sage_opts(c, SPARQ_ATTN_REF_F64, causal);
  o.lse = c->ref_lse;
  return sparq_attention(c->q, c->k, c->v, c->ref, &c->s, &o);
}

static inline sparq_attn_error sage_err(const sage_case *c) {
  sparq_attn_error e;
  sparq_attn_compare(c->ref, c->o, sage_nq(&c->s), &e);
  return e;
}

/* Number of elements whose bits differ (NaN equals NaN). */
static inline size_t sage_bits_differ(const float *a, const float *b, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) && isnan(b[i])) continue;
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0) bad++;
  }
  return bad;
}

/* The kernel contract for a case whose head dim is already a multiple of
 * ATTN_DIM_ALIGN (HND FP32 needs no normalization). Include
 * kernels/attn_internal.h before this header to use it. */
#ifdef SPARQ_KERNELS_ATTN_INTERNAL_H
static inline attn_problem sage_problem(const sage_case *c, const sparq_attn_options *o) {
  attn_problem p;
  memset(&p, 0, sizeof p);
  p.batch = c->s.batch, p.q_heads = c->s.q_heads, p.kv_heads = c->s.kv_heads;
  p.q_len = c->s.q_len, p.kv_len = c->s.kv_len, p.head_dim = c->s.head_dim, p.dp = c->s.head_dim;
  p.scale = o->sm_scale > 0 ? o->sm_scale : (float)(1.0 / sqrt((double)c->s.head_dim));
  p.causal = o->causal;
  p.causal_offset = o->causal && o->has_causal_offset ? o->causal_offset : 0;
  p.q = c->q, p.k = c->k, p.v = c->v, p.o = c->o, p.lse = o->lse, p.opts = o;
  return p;
}
#endif

#endif
