/* The self-attention cores of the transformer blocks on flash_f32 in NHD
 * layout: thin wrappers that fix the options (causal for a GPT block, full
 * for a DiT block; default scale 1/sqrt(hd); LSE saved by the forward for
 * the backward). */
#include <stdbool.h>

#include "sparq/attention.h"
#include "sparq/nn.h"

static sparq_status make_args(const char *who, bool causal, int64_t B, int64_t T, int64_t NH, int64_t hd,
                              sparq_attn_shape *shape, sparq_attn_options *opts, float *lse) {
  if (B < 1 || T < 1 || NH < 1 || hd < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B=%lld T=%lld NH=%lld hd=%lld must all be >= 1", who, (long long)B,
                      (long long)T, (long long)NH, (long long)hd);
  *shape = (sparq_attn_shape){.batch = B, .q_heads = NH, .kv_heads = NH, .q_len = T, .kv_len = T, .head_dim = hd};
  *opts = sparq_attn_options_default();
  opts->variant = SPARQ_ATTN_FLASH_F32;
  opts->layout = SPARQ_ATTN_NHD;
  opts->causal = causal;
  opts->lse = lse;
  return SPARQ_OK;
}

static sparq_status forward(const char *who, bool causal, float *out, float *lse, const float *q, const float *k,
                            const float *v, int64_t B, int64_t T, int64_t NH, int64_t hd) {
  sparq_attn_shape shape;
  sparq_attn_options opts;
  sparq_status st = make_args(who, causal, B, T, NH, hd, &shape, &opts, lse);
  if (st != SPARQ_OK) return st;
  if (!out || !lse || !q || !k || !v) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  return sparq_attention(q, k, v, out, &shape, &opts);
}

static sparq_status backward(const char *who, bool causal, float *dq, float *dk, float *dv, const float *dout,
                             const float *q, const float *k, const float *v, const float *out, const float *lse,
                             int64_t B, int64_t T, int64_t NH, int64_t hd) {
  sparq_attn_shape shape;
  sparq_attn_options opts;
  sparq_status st = make_args(who, causal, B, T, NH, hd, &shape, &opts, NULL);
  if (st != SPARQ_OK) return st;
  if (!dq || !dk || !dv || !dout || !q || !k || !v || !out || !lse)
    return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  return sparq_attention_backward(q, k, v, out, lse, dout, dq, dk, dv, &shape, &opts);
}

sparq_status sparq_nn_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                                        int64_t B, int64_t T, int64_t NH, int64_t hd) {
  return forward("sparq_nn_attention_forward", true, out, lse, q, k, v, B, T, NH, hd);
}

sparq_status sparq_nn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                         const float *k, const float *v, const float *out, const float *lse, int64_t B,
                                         int64_t T, int64_t NH, int64_t hd) {
  return backward("sparq_nn_attention_backward", true, dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, hd);
}

/* DiT's blocks attend over all patches: the same with the mask off. */
sparq_status sparq_nn_attention_full_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                                             int64_t B, int64_t T, int64_t NH, int64_t hd) {
  return forward("sparq_nn_attention_full_forward", false, out, lse, q, k, v, B, T, NH, hd);
}

sparq_status sparq_nn_attention_full_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                              const float *k, const float *v, const float *out, const float *lse,
                                              int64_t B, int64_t T, int64_t NH, int64_t hd) {
  return backward("sparq_nn_attention_full_backward", false, dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, hd);
}
