/* The FP32 side of attention beyond the variant contract of attn_internal.h:
 * the three-pass baseline and the backward pass (ref_f64 and flash_f32). */
#ifndef SPARQ_KERNELS_ATTN_FP32_H
#define SPARQ_KERNELS_ATTN_FP32_H

#include "kernels/attn_internal.h"

/* S = QK^T, softmax, O = PV with sparq_sgemm, one query block at a time. */
sparq_status attn_forward_threepass(const attn_problem *p);

/* The backward problem, normalized like attn_problem: every [len, dp] matrix
 * is FP32, head-major, with zero padding columns; or, for flash_f32 when
 * p.sq.row != 0, the caller's tensors at the strides p.sq (q, o, dout, dq)
 * and p.sk (k, v, dk, dv). */
typedef struct attn_grad {
  attn_problem p;   /* q, k, v and the shape; p.o and p.lse are unused */
  const float *o;    /* [batch][q_heads][q_len][dp], the forward output */
  const float *dout; /* [batch][q_heads][q_len][dp] */
  const float *lse;  /* [batch][q_heads][q_len], natural log, -inf for fully masked rows */
  float *dq;         /* [batch][q_heads][q_len][dp]; padded columns may hold anything */
  float *dk, *dv;    /* [batch][kv_heads][kv_len][dp] */
} attn_grad;

/* Double-precision oracle: recomputes the probabilities from Q and K in
 * double and ignores g->o and g->lse, so it checks them too. */
sparq_status attn_backward_ref_f64(const attn_grad *g);
/* FlashAttention-2 backward: probabilities recomputed from the LSE, dK, dV
 * and dQ from one pass over the key blocks; bit-identical for any thread
 * count. */
sparq_status attn_backward_flash_f32(const attn_grad *g);

#endif
