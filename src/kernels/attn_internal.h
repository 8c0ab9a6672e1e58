/* The contract between sparq_attention's front end and its variant kernels.
 *
 * The front end checks the arguments and normalizes the inputs once: FP32,
 * head-major (HND), head dim zero-padded to `dp` (a multiple of 32), one
 * contiguous [N, dp] matrix per (batch, head). Each variant then works on
 * plain row-major matrices, and the front end converts O back to the
 * caller's layout. The normalization is O(N d); every kernel is O(N^2 d). */
#ifndef SPARQ_KERNELS_ATTN_INTERNAL_H
#define SPARQ_KERNELS_ATTN_INTERNAL_H

#include "sparq/attention.h"

enum { ATTN_DIM_ALIGN = 32, ATTN_MAX_DIM = 256 /* largest head_dim, so also the largest dp */ };

/* Element strides of a [batch][heads][len][dp]-indexed tensor. */
typedef struct attn_strides {
  int64_t batch, head, row;
} attn_strides;

typedef struct attn_problem {
  int64_t batch, q_heads, kv_heads, q_len, kv_len;
  int64_t head_dim; /* the caller's d */
  int64_t dp;       /* padded d: multiple of ATTN_DIM_ALIGN, columns >= head_dim are 0 */
  float scale;      /* sm_scale, already defaulted from head_dim */
  bool causal;
  int64_t causal_offset; /* key j visible to query i iff j <= i + causal_offset */
  const float *q;   /* [batch][q_heads][q_len][dp] */
  const float *k;   /* [batch][kv_heads][kv_len][dp] */
  const float *v;   /* [batch][kv_heads][kv_len][dp] */
  float *o;         /* [batch][q_heads][q_len][dp]; padded columns may hold anything */
  float *lse;       /* [batch][q_heads][q_len] natural log, or NULL */
  const sparq_attn_options *opts;
  /* flash_f32 only (forward and backward): when sq.row != 0 the tensors are
   * the caller's own FP32 ones, read and written in place with these strides
   * (sq: q, o and the backward's o, dout, dq; sk: k, v, dk, dv), and
   * head_dim == dp. All zero (every other variant): the HND form above. */
  attn_strides sq, sk;
} attn_problem;

/* Key/value head of query head h. */
static inline int64_t attn_kv_head(const attn_problem *p, int64_t h) {
  return h / (p->q_heads / p->kv_heads);
}
/* Start of the [len, dp] matrix of (b, h). */
static inline const float *attn_q_at(const attn_problem *p, int64_t b, int64_t h) {
  return p->q + ((b * p->q_heads + h) * p->q_len) * p->dp;
}
static inline const float *attn_k_at(const attn_problem *p, int64_t b, int64_t hk) {
  return p->k + ((b * p->kv_heads + hk) * p->kv_len) * p->dp;
}
static inline const float *attn_v_at(const attn_problem *p, int64_t b, int64_t hk) {
  return p->v + ((b * p->kv_heads + hk) * p->kv_len) * p->dp;
}
static inline float *attn_o_at(const attn_problem *p, int64_t b, int64_t h) {
  return p->o + ((b * p->q_heads + h) * p->q_len) * p->dp;
}
/* The strides flash_f32 reads and writes with: sq / sk, or those of the HND form. */
static inline attn_strides attn_q_strides(const attn_problem *p) {
  if (p->sq.row) return p->sq;
  const attn_strides s = {p->q_heads * p->q_len * p->dp, p->q_len * p->dp, p->dp};
  return s;
}
static inline attn_strides attn_k_strides(const attn_problem *p) {
  if (p->sk.row) return p->sk;
  const attn_strides s = {p->kv_heads * p->kv_len * p->dp, p->kv_len * p->dp, p->dp};
  return s;
}

/* Number of keys query i sees (0 for a fully masked row). */
static inline int64_t attn_visible_keys(const attn_problem *p, int64_t i) {
  if (!p->causal) return p->kv_len;
  int64_t last = i + p->causal_offset; /* last visible key */
  if (last < 0) return 0;
  return last + 1 < p->kv_len ? last + 1 : p->kv_len;
}

/* Variant kernels: read the normalized inputs, write o (and lse when set). */
sparq_status attn_forward_ref_f64(const attn_problem *p);
sparq_status attn_forward_flash_f32(const attn_problem *p);
/* sage1, sage2_8b, sage2_4b and sage_cpu (p->opts->variant says which). */
sparq_status attn_forward_sage(const attn_problem *p);

#endif
