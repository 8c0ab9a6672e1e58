/* Scaled dot-product attention: an FP64 oracle, an FP32 flash-attention
 * baseline with backward, and the SageAttention family of quantized kernels
 * (spec: shared/spec/sage-attention.md; the variant names are the spec's).
 *
 *   O = softmax(sm_scale * Q K^T + M) V
 *
 * Shapes (B batch, Hq query heads, Hkv key/value heads, Nq queries, Nk keys,
 * d head dim):
 *   layout SPARQ_ATTN_HND: Q, O [B, Hq, Nq, d]; K, V [B, Hkv, Nk, d]
 *   layout SPARQ_ATTN_NHD: Q, O [B, Nq, Hq, d]; K, V [B, Nk, Hkv, d]
 * all dense row-major. Grouped-query attention: Hq % Hkv == 0 and query head
 * h reads key/value head h / (Hq / Hkv). d is any value in 1..256; kernels pad
 * it internally and the default scale comes from the real d. */
#ifndef SPARQ_ATTENTION_H
#define SPARQ_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"
#include "sparq/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_attn_layout { SPARQ_ATTN_HND = 0, SPARQ_ATTN_NHD = 1 } sparq_attn_layout;

typedef enum sparq_attn_variant {
  SPARQ_ATTN_REF_F64 = 0,  /* naive double precision: the oracle */
  SPARQ_ATTN_FLASH_F32,    /* tiled online softmax in FP32: the honest baseline */
  SPARQ_ATTN_SAGE1,        /* smooth K, INT8 per_block QK, FP16 PV (FP16 block accumulator) */
  SPARQ_ATTN_SAGE2_8B,     /* smooth K, INT8 QK (per_thread default), FP8 PV */
  SPARQ_ATTN_SAGE2_4B,     /* smooth Q + K, INT4 per_thread QK, FP8 PV */
  SPARQ_ATTN_SAGE_CPU,     /* speed variant: INT8 per_token QK on VNNI, low-precision PV blocks */
  SPARQ_ATTN_VARIANT_COUNT
} sparq_attn_variant;

/* Quantization groups of Q and K (spec §2.3). DEFAULT picks the variant's own. */
typedef enum sparq_attn_granularity {
  SPARQ_ATTN_GRAN_DEFAULT = 0,
  SPARQ_ATTN_GRAN_PER_THREAD,
  SPARQ_ATTN_GRAN_PER_WARP,
  SPARQ_ATTN_GRAN_PER_BLOCK,
  SPARQ_ATTN_GRAN_PER_TOKEN
} sparq_attn_granularity;

/* PV accumulation of the FP8 PV path (spec §2.6). DEFAULT picks the variant's own. */
typedef enum sparq_attn_pv_accum {
  SPARQ_ATTN_PV_DEFAULT = 0,
  SPARQ_ATTN_PV_F32,     /* "fp32": single level */
  SPARQ_ATTN_PV_F22,     /* single level, FP22 accumulator emulated (13 mantissa bits) */
  SPARQ_ATTN_PV_F22_F32, /* "fp32+fp32": FP22 block accumulator flushed into FP32 */
  SPARQ_ATTN_PV_F16_F32, /* "fp32+fp16" (SA2++): FP16 block accumulator flushed into FP32 */
  /* sage_cpu only: */
  SPARQ_ATTN_PV_BF16_F32, /* "bf16+f32": BF16 P and V, FP32 sums per 64-key block flushed into FP32 */
  SPARQ_ATTN_PV_U8        /* "u8": u8 P x s8 V on VNNI, int32 sums per 64-key block (spec §5 pv=u8) */
} sparq_attn_pv_accum;

/* Switches that default to the variant's own choice. */
typedef enum sparq_attn_switch { SPARQ_ATTN_AUTO = -1, SPARQ_ATTN_OFF = 0, SPARQ_ATTN_ON = 1 } sparq_attn_switch;

typedef struct sparq_attn_shape {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
} sparq_attn_shape;

typedef struct sparq_attn_options {
  sparq_attn_variant variant;
  sparq_attn_layout layout;
  sparq_dtype dtype;       /* of Q, K, V: SPARQ_F32, SPARQ_F16 or SPARQ_BF16; O is always FP32 */
  bool causal;             /* key j is masked for query i when j > i + causal_offset */
  bool has_causal_offset;  /* required when causal and q_len != kv_len */
  int64_t causal_offset;   /* 0 = top-left aligned; kv_len - q_len = bottom-right (decoding) */
  float sm_scale;          /* 0 means 1/sqrt(head_dim); else finite and > 0 */
  sparq_attn_granularity granularity;
  sparq_attn_pv_accum pv_accum;
  sparq_attn_switch smooth_k, smooth_q, smooth_v;
  sparq_attn_switch refine_k; /* sage_cpu only: a second INT8 pass over K's rounding residual
                              (K = dK (K-hat + K-lo / 128)), which removes K's share of the
                              score error at about 1.25x the time. AUTO refines a head when
                              E = sm_scale max_i |q_i|_2 max_j dK_j / sqrt(12), the standard
                              deviation of the score error K's rounding can cause in nats,
                              exceeds 0.05 (D1 of the spec gives about 0.012, the sharp D4
                              about 0.1); ON always, OFF never. Other variants: AUTO or OFF. */
  float *lse;              /* optional output [B, Hq, Nq] (always this order), natural log of
                              the softmax denominator including sm_scale; -inf for a fully
                              masked row (whose output row is 0) */
  const char *dump_dir;    /* optional existing directory: Sage variants write their
                              quantized Q/K, scales, delta-S and smoothing means as .npy */
} sparq_attn_options;

/* Defaults: flash_f32, HND, FP32, non-causal, default scale and knobs, no LSE. */
sparq_attn_options sparq_attn_options_default(void);

/* Canonical names ("ref_f64", "flash_f32", "sage1", "sage2_8b", "sage2_4b",
 * "sage_cpu"; "per_thread" ...; "f32", "f22", "f22+f32", "f16+f32") and their
 * parsers (false if unknown). */
const char *sparq_attn_variant_name(sparq_attn_variant v);
bool sparq_attn_variant_from_name(const char *name, sparq_attn_variant *out);
const char *sparq_attn_granularity_name(sparq_attn_granularity g);
bool sparq_attn_granularity_from_name(const char *name, sparq_attn_granularity *out);
const char *sparq_attn_pv_accum_name(sparq_attn_pv_accum a);
bool sparq_attn_pv_accum_from_name(const char *name, sparq_attn_pv_accum *out);

/* O = attention(Q, K, V) with the chosen variant. q, k, v point to elements
 * of opts->dtype in opts->layout; o receives FP32 in the same layout. The
 * inputs are never modified; o must not alias them. Results are bit-identical
 * for any thread count. Fails with SPARQ_ERR_ARG on bad shapes or options
 * (naming the problem), SPARQ_ERR_NOMEM when scratch cannot be allocated. */
sparq_status sparq_attention(const void *q, const void *k, const void *v, float *o,
                             const sparq_attn_shape *shape, const sparq_attn_options *opts);

/* The Sage variants keep their buffers (the quantized Q, K and V of the
 * call, about (N_q + 3 N_k) d bytes per head, and per-thread scratch) per
 * calling thread between calls, up to 64 MB, so a model calling them once
 * per layer does not page-fault fresh blocks every time (about 10 % of a
 * sage_cpu call at B 1, H 8, N 2048, d 128). This frees the calling
 * thread's block: call it before a thread that used them exits, or to
 * return the memory. */
void sparq_attention_release_scratch(void);

/* The three-pass FP32 baseline the benchmark compares against: per query
 * block S = QK^T and O = PV through sparq_sgemm with a separate softmax
 * pass, so its scratch is one [block, kv_len] score tile per thread. Same
 * arguments and results as sparq_attention with variant flash_f32 (any
 * other variant is rejected). */
sparq_status sparq_attention_threepass(const void *q, const void *k, const void *v, float *o,
                                       const sparq_attn_shape *shape, const sparq_attn_options *opts);

/* Gradients of the FP32 attention for training (variants ref_f64 and
 * flash_f32; FP32 inputs). Given Q, K, V, the forward output O and its LSE
 * (from sparq_attention with opts->lse set), and dO, writes dQ, dK, dV in
 * the same layout (overwritten, not accumulated). Recomputes the attention
 * probabilities from the LSE as FlashAttention does. GQA gradients of a
 * key/value head sum over its query heads. */
sparq_status sparq_attention_backward(const float *q, const float *k, const float *v, const float *o,
                                      const float *lse, const float *dout, float *dq, float *dk, float *dv,
                                      const sparq_attn_shape *shape, const sparq_attn_options *opts);

/* ---------------------------------------------------- test distributions */

/* The spec's §8 input distributions, per (batch, head) and channel vectors
 * b, b', b'' ~ N(0, 1):
 *   D0 iid N(0,1);  D1 K += 8b;  D2 D1 and Q += 4b';  D3 D2 and V += 6b'';
 *   D4 Q, K x3 then D1 (sharp rows);  D5 Q = N(0,1) / (0.3 + U(0,1)) with D1's K.
 * Fills q, k, v (FP32, in `layout`) from `seed`; the same seed gives the same
 * tensors for any thread count. */
sparq_status sparq_attn_make_case(int case_id, const sparq_attn_shape *shape, sparq_attn_layout layout,
                                  uint64_t seed, float *q, float *k, float *v);

/* Accuracy of `test` against `ref` over n elements (spec §6). */
typedef struct sparq_attn_error {
  double cos_sim; /* sum(r t) / (sqrt(sum r^2) sqrt(sum t^2)) */
  double rel_l1;  /* sum |r - t| / sum |r| */
  double rmse;    /* sqrt(mean (r - t)^2) */
  double max_abs; /* max |r - t| */
  int64_t nonfinite; /* elements of test that are NaN or inf */
} sparq_attn_error;
void sparq_attn_compare(const float *ref, const float *test, size_t n, sparq_attn_error *out);

#ifdef __cplusplus
}
#endif
#endif
