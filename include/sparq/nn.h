/* Neural-network layers for training: each layer is a forward and a
 * hand-written backward over raw FP32 row-major arrays (in the spirit of
 * karpathy/llm.c), plus the named parameter list that optimizers and
 * checkpoints walk.
 *
 * Conventions for every layer below:
 *   - N is the number of rows (tokens, B * T), C the channels of a row.
 *   - Forward writes its outputs (never accumulates) and saves exactly what
 *     its backward needs (LayerNorm's mean and rstd, attention's LSE).
 *   - Backward ACCUMULATES (+=) into every gradient it writes, so residual
 *     branches and tied weights need no special case; the caller zeroes the
 *     gradients before a step. A NULL gradient pointer skips that gradient.
 *   - Outputs must not alias inputs unless a function says so.
 *   - Results do not depend on the thread count: every reduction runs in a
 *     fixed order (per row, or per column over rows in row order).
 * Functions that cannot fail on valid pointers return void; those that call
 * sparq_sgemm or sparq_attention return its status. */
#ifndef SPARQ_NN_H
#define SPARQ_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------ parameter list */

#define SPARQ_PARAM_NAME_MAX 128
#define SPARQ_PARAM_MAX_DIMS 4

/* One named parameter: a view into the list's flat buffers. */
typedef struct sparq_param {
  char name[SPARQ_PARAM_NAME_MAX]; /* the reference PyTorch state_dict name */
  int ndim;                        /* 1..SPARQ_PARAM_MAX_DIMS */
  int64_t shape[SPARQ_PARAM_MAX_DIMS];
  size_t numel;
  size_t offset; /* in floats, into data / grad (and any optimizer state laid out alike) */
  float *data;   /* = list->data + offset (NULL before sparq_params_allocate) */
  float *grad;   /* = list->grad + offset */
  bool decay;    /* AdamW weight decay applies: ndim >= 2 (nanoGPT's rule) */
  bool frozen;   /* not trained (set after sparq_params_add): the optimizers and clipping
                    skip it, checkpoints still store it (DiT's fixed pos_embed, LoRA's base) */
} sparq_param;

/* All parameters of a model in one flat buffer (and one flat gradient
 * buffer of the same layout), so an optimizer state is one more array with
 * the same offsets. Each parameter starts 64-byte aligned. */
typedef struct sparq_param_list {
  sparq_param *items; /* owned */
  size_t count, capacity;
  float *data;  /* `numel` floats, owned */
  float *grad;  /* `numel` floats, owned */
  size_t numel; /* total floats including alignment padding (padding stays 0) */
} sparq_param_list;

/* Registers a parameter (before sparq_params_allocate). Names must be
 * unique, non-empty and shorter than SPARQ_PARAM_NAME_MAX; every dimension
 * >= 1. Fails with SPARQ_ERR_ARG naming the parameter. */
sparq_status sparq_params_add(sparq_param_list *pl, const char *name, int ndim, const int64_t *shape);
/* Allocates data and grad (both zeroed) and points every parameter into them. */
sparq_status sparq_params_allocate(sparq_param_list *pl);
/* Frees everything and zeroes *pl; safe on a zeroed list and twice. */
void sparq_params_free(sparq_param_list *pl);
/* The parameter called `name`, or NULL. */
sparq_param *sparq_params_find(const sparq_param_list *pl, const char *name);
/* grad = 0 everywhere. */
void sparq_params_zero_grad(sparq_param_list *pl);
/* Number of parameter elements (without padding). */
size_t sparq_params_count(const sparq_param_list *pl);

/* A name written into the checkpoint with a copy of another parameter's
 * tensor (tied weights: nanoGPT's state_dict has lm_head.weight = wte). */
typedef struct sparq_ckpt_alias {
  const char *name;   /* e.g. "lm_head.weight" */
  const char *target; /* e.g. "transformer.wte.weight" */
} sparq_ckpt_alias;

/* ------------------------------------------------------------- layers */

/* GPT input embedding.
 *   out[b,t,:] = wte[tokens[b,t], :] + wpe[t, :]
 * tokens [B,T] (each in 0..V-1; checked by the caller), wte [V,C], wpe [>=T,C],
 * out [B,T,C]. */
void sparq_nn_embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                                int64_t B, int64_t T, int64_t C);
/* dwte[tokens[b,t], :] += dout[b,t,:]; dwpe[t, :] += sum_b dout[b,t,:]. */
void sparq_nn_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                 int64_t B, int64_t T, int64_t C);

/* LayerNorm over the last dimension, eps = 1e-5 (PyTorch's default):
 *   out[n,:] = (inp[n,:] - mean[n]) * rstd[n] * w + b,
 *   rstd[n] = 1 / sqrt(var[n] + 1e-5), var the biased variance.
 * inp, out [N,C]; w, b [C] (b may be NULL: no bias); mean, rstd [N] (saved). */
void sparq_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                const float *b, int64_t N, int64_t C);
void sparq_nn_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                 const float *w, const float *mean, const float *rstd, int64_t N, int64_t C);

/* Linear layer in PyTorch's layout:
 *   out[N,OC] = inp[N,C] * w[OC,C]^T + bias[OC]   (bias may be NULL)
 * through sparq_sgemm. A block of rows of a larger weight is a valid w. */
sparq_status sparq_nn_linear_forward(float *out, const float *inp, const float *w, const float *bias, int64_t N,
                                     int64_t C, int64_t OC);
/* dinp[N,C] += dout * w;  dw[OC,C] += dout^T * inp;  dbias[OC] += column sums of dout. */
sparq_status sparq_nn_linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                      const float *w, int64_t N, int64_t C, int64_t OC);

/* GELU with the exact erf (PyTorch's nn.GELU(), approximate='none'):
 *   out = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
 * Vectorized with a polynomial erfc (max error 5 ulp of the result against
 * sparq_nn_gelu_forward_ref); out may alias inp. */
void sparq_nn_gelu_forward(float *out, const float *inp, size_t n);
/* dinp = dout * (Phi(x) + x phi(x)), OVERWRITTEN (an exception to the
 * accumulate rule, so the MLP can run it in place: dinp may alias dout). */
void sparq_nn_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* The scalar twins the vector paths are tested against. */
void sparq_nn_gelu_forward_ref(float *out, const float *inp, size_t n);
void sparq_nn_gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n);

/* Causal multi-head self-attention core on flash_f32, in NHD layout:
 * q, k, v, out [B,T,NH,hd] (= [B,T,C] with head h in columns h*hd..),
 * lse [B,NH,T] (saved for backward), sm_scale 1/sqrt(hd). */
sparq_status sparq_nn_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                                        int64_t B, int64_t T, int64_t NH, int64_t hd);
/* The gradients dq, dk, dv [B,T,NH,hd] given dout [B,T,NH,hd] and the saved
 * forward (q, k, v, out, lse). The one exception to the accumulate rule:
 * dq, dk, dv are OVERWRITTEN (they are fresh buffers in a transformer block,
 * and the kernel produces them whole). */
sparq_status sparq_nn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                         const float *k, const float *v, const float *out, const float *lse,
                                         int64_t B, int64_t T, int64_t NH, int64_t hd);

/* out = a + b elementwise (out may alias a or b). */
void sparq_nn_residual_forward(float *out, const float *a, const float *b, size_t n);
/* da += dout; db += dout. */
void sparq_nn_residual_backward(float *da, float *db, const float *dout, size_t n);

/* Softmax cross-entropy over V classes, mean over the rows whose target is
 * >= 0 (a negative target is ignored, like PyTorch's ignore_index=-1):
 *   loss = mean_n [ logsumexp(logits[n,:]) - logits[n, targets[n]] ].
 * logits [N,V]; probs [N,V] receives the softmax (needed by backward; may be
 * NULL when only the loss is wanted). Targets >= V fail with SPARQ_ERR_ARG.
 * With no valid target the loss is 0. */
sparq_status sparq_nn_xent_forward(float *loss, float *probs, const float *logits, const int32_t *targets,
                                   int64_t N, int64_t V);
/* dlogits[n,:] += dloss * (probs[n,:] - onehot(targets[n])) / valid_rows,
 * for rows with a valid target; dloss is the gradient of the objective with
 * respect to the mean loss (1 for plain training, 1/accum for accumulation). */
void sparq_nn_xent_backward(float *dlogits, const float *probs, const int32_t *targets, int64_t N, int64_t V,
                            float dloss);

/* SiLU: out = x * sigmoid(x) (PyTorch's nn.SiLU); out may alias inp. */
void sparq_nn_silu_forward(float *out, const float *inp, size_t n);
/* dinp += dout * sigmoid(x) (1 + x (1 - sigmoid(x))); x = inp, the forward's input. */
void sparq_nn_silu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Sinusoidal embedding of N scalars t[n] into out [N, dim], in DiT's
 * TimestepEmbedder.timestep_embedding layout (max_period 10000 there):
 *   out[n, i] = cos(t[n] f_i), out[n, h + i] = sin(t[n] f_i),
 *   f_i = max_period^(-i / h), h = dim / 2, and out[n, dim - 1] = 0 when
 * dim is odd. No parameters, so no backward. */
void sparq_nn_timestep_embedding(float *out, const float *t, int64_t N, int64_t dim, float max_period);

#ifdef __cplusplus
}
#endif
#endif
