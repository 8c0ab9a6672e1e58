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
/* Copies the data of every parameter of dst that src has under the same
 * name with the same shape (grown models: a GFT DiT from a CFG one);
 * returns how many were copied. The others keep their values. */
size_t sparq_params_copy_matching(sparq_param_list *dst, const sparq_param_list *src);
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

/* ------------------------------------------- DiT layers (adaLN-Zero blocks)
 *
 * The layers facebookresearch/DiT's blocks add to the GPT ones. Per-sample
 * conditioning vectors (shift, scale, gate) are rows of a wider matrix:
 * element (b, c) of such a vector is at v[b * ld + c], so the six chunks of
 * a block's adaLN output [B, 6C] are used in place (ld = 6C). Rows of the
 * token tensors are ordered (b, t): row n = b * T + t. */

/* GELU with the tanh approximation (PyTorch's nn.GELU(approximate='tanh')):
 *   out = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3),
 * evaluated as x / (1 + exp(-2u)) (the same function; 1 + tanh(u) would
 * cancel in the left tail). Error against the double reference: within
 * (4 + 4|2u|) ulp, i.e. a few ulp where |out| matters (the roundings of u
 * grow with |2u| inside the exponential; from |2u| > 8 on the left
 * |out| < 1.2e-3). Beyond |x| = 10 the input is clamped (out = x on the
 * right, |out| < 2e-37 on the left). out may alias inp. */
void sparq_nn_gelu_tanh_forward(float *out, const float *inp, size_t n);
/* dinp = dout * GELU_tanh'(x), OVERWRITTEN like sparq_nn_gelu_backward (so
 * the MLP can run it in place: dinp may alias dout). */
void sparq_nn_gelu_tanh_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* The scalar references in double the vector paths are tested against. */
void sparq_nn_gelu_tanh_forward_ref(float *out, const float *inp, size_t n);
void sparq_nn_gelu_tanh_backward_ref(float *dinp, const float *inp, const float *dout, size_t n);

/* LayerNorm without affine parameters and with a given eps
 * (nn.LayerNorm(C, elementwise_affine=False, eps=eps); DiT uses 1e-6):
 *   out[n,:] = (inp[n,:] - mean[n]) * rstd[n],  rstd = 1 / sqrt(var + eps).
 * inp, out [N,C]; mean, rstd [N] (saved for backward). */
void sparq_nn_layernorm_plain_forward(float *out, float *mean, float *rstd, const float *inp, float eps, int64_t N,
                                      int64_t C);
/* dinp[N,C] += (dout - mean_c(dout) - norm mean_c(dout norm)) rstd. */
void sparq_nn_layernorm_plain_backward(float *dinp, const float *dout, const float *inp, const float *mean,
                                       const float *rstd, int64_t N, int64_t C);

/* adaLN modulation (DiT's modulate), per sample b over its T tokens:
 *   out[b,t,c] = inp[b,t,c] * (1 + scale[b*ld + c]) + shift[b*ld + c].
 * inp, out [B,T,C] (out may alias inp); shift, scale [B, >= ld] rows, ld >= C. */
void sparq_nn_modulate_forward(float *out, const float *inp, const float *shift, const float *scale, int64_t ld,
                               int64_t B, int64_t T, int64_t C);
/* dinp[b,t,c] += dout (1 + scale);  dshift[b*ld + c] += sum_t dout[b,t,c];
 * dscale[b*ld + c] += sum_t dout[b,t,c] inp[b,t,c] (t in order). */
void sparq_nn_modulate_backward(float *dinp, float *dshift, float *dscale, const float *dout, const float *inp,
                                const float *scale, int64_t ld, int64_t B, int64_t T, int64_t C);

/* Gated residual (DiT's x + gate.unsqueeze(1) * branch):
 *   out[b,t,c] = x[b,t,c] + gate[b*ld + c] * y[b,t,c].
 * x, y, out [B,T,C] (out may alias x); gate [B, >= ld] rows, ld >= C. */
void sparq_nn_gated_residual_forward(float *out, const float *x, const float *gate, const float *y, int64_t ld,
                                     int64_t B, int64_t T, int64_t C);
/* dx += dout;  dy += dout * gate;  dgate[b*ld + c] += sum_t dout[b,t,c] y[b,t,c]
 * (t in order). dx may be NULL: a caller that keeps the residual stream's
 * gradient in dout itself needs no copy. */
void sparq_nn_gated_residual_backward(float *dx, float *dgate, float *dy, const float *dout, const float *gate,
                                      const float *y, int64_t ld, int64_t B, int64_t T, int64_t C);

/* Patchify an NCHW image batch into tokens, the Conv2d(kernel = stride = p)
 * of timm's PatchEmbed seen as a linear layer: img [B,C,H,W] (H, W
 * multiples of p) -> out [B, T, C*p*p], T = (H/p) (W/p) tokens in row-major
 * patch order (t = gh * W/p + gw), each token in the conv weight's order
 * (c, pi, pj): out[b,t, (c*p + pi)*p + pj] = img[b, c, gh*p + pi, gw*p + pj]. */
void sparq_nn_patchify_forward(float *out, const float *img, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p);
/* dimg += the scatter of dout [B,T,C*p*p] back to [B,C,H,W]. */
void sparq_nn_patchify_backward(float *dimg, const float *dout, int64_t B, int64_t C, int64_t H, int64_t W,
                                int64_t p);
/* DiT's unpatchify: tokens inp [B, T, p*p*C] in the final linear's order
 * (pi, pj, c) -> img [B,C,H,W] (reshape (h, w, p, q, c), einsum
 * 'nhwpqc->nchpwq'): img[b, c, gh*p + pi, gw*p + pj] = inp[b,t, (pi*p + pj)*C + c]. */
void sparq_nn_unpatchify_forward(float *img, const float *inp, int64_t B, int64_t C, int64_t H, int64_t W,
                                 int64_t p);
/* dinp [B, T, p*p*C] += the gather of dimg [B,C,H,W]. */
void sparq_nn_unpatchify_backward(float *dinp, const float *dimg, int64_t B, int64_t C, int64_t H, int64_t W,
                                  int64_t p);

/* Non-causal (full) multi-head self-attention on flash_f32, the core of
 * timm's Attention in a DiT block; same layout and conventions as
 * sparq_nn_attention_forward / _backward (q, k, v, out [B,T,NH,hd], lse
 * [B,NH,T], scale 1/sqrt(hd), dq dk dv OVERWRITTEN by the backward). */
sparq_status sparq_nn_attention_full_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                                             int64_t B, int64_t T, int64_t NH, int64_t hd);
sparq_status sparq_nn_attention_full_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                              const float *k, const float *v, const float *out, const float *lse,
                                              int64_t B, int64_t T, int64_t NH, int64_t hd);

/* ------------------------------------------ convolution, pooling, ReLU
 * Image layers of the evaluation classifier (classifier.h), NCHW
 * row-major like PyTorch. */

/* Geometry of a 2-D convolution (PyTorch's nn.Conv2d with dilation 1,
 * groups 1, zero padding): input [N,C,H,W], weight [OC,C,K,K] (a square
 * kernel), output [N,OC,HO,WO] with HO = (H + 2 pad - K) / stride + 1 and
 * WO likewise (floor). */
typedef struct sparq_conv2d_geom {
  int64_t N, C, H, W; /* input batch, channels, height, width: each >= 1 */
  int64_t OC, K;      /* output channels, kernel size: >= 1 */
  int64_t stride;     /* >= 1 */
  int64_t pad;        /* zeros added on every side, 0..K-1 */
} sparq_conv2d_geom;

/* Checks the geometry (SPARQ_ERR_ARG naming the problem) and gives the
 * output size (either pointer may be NULL). */
sparq_status sparq_nn_conv2d_check(const sparq_conv2d_geom *g, int64_t *HO, int64_t *WO);
/* Floats of the `work` scratch that forward and backward need:
 * 2 R C K K + R OC, R = N HO WO (the im2col matrix, its gradient and the
 * GEMM output in row-per-pixel layout); 0 for an invalid geometry. */
size_t sparq_nn_conv2d_work_floats(const sparq_conv2d_geom *g);
/* out[n,o,y,x] = bias[o] + sum_{c,ky,kx} w[o,c,ky,kx] inp[n,c,y S - P + ky, x S - P + kx]
 * (zero outside the image), as im2col + one sparq_sgemm. inp [N,C,H,W],
 * w [OC,C,K,K], bias [OC] or NULL, out [N,OC,HO,WO]. */
sparq_status sparq_nn_conv2d_forward(float *out, float *work, const float *inp, const float *w, const float *bias,
                                     const sparq_conv2d_geom *g);
/* dinp [N,C,H,W] += dL/dinp, dw [OC,C,K,K] += dL/dw, dbias [OC] += dL/dbias
 * for dout [N,OC,HO,WO]; any gradient may be NULL (inp is needed only for
 * dw, w only for dinp). Nothing of the forward is kept: backward rebuilds
 * what it needs from inp. */
sparq_status sparq_nn_conv2d_backward(float *dinp, float *dw, float *dbias, float *work, const float *dout,
                                      const float *inp, const float *w, const sparq_conv2d_geom *g);

/* 2 x 2 max pooling at stride 2 (nn.MaxPool2d(2)): inp [N,C,H,W] ->
 * out [N,C,H/2,W/2] (floor: an odd last row or column is dropped).
 * argmax [N,C,H/2,W/2] receives the position y W + x of each window's
 * maximum inside its input plane (the first one on ties; NaN propagates),
 * which is all backward needs. */
void sparq_nn_maxpool2_forward(float *out, int32_t *argmax, const float *inp, int64_t N, int64_t C, int64_t H,
                               int64_t W);
/* dinp [N,C,H,W] += dout [N,C,H/2,W/2] routed to the saved argmax. */
void sparq_nn_maxpool2_backward(float *dinp, const float *dout, const int32_t *argmax, int64_t N, int64_t C, int64_t H,
                                int64_t W);

/* ReLU: out = max(x, 0) (a NaN passes through); out may alias inp. */
void sparq_nn_relu_forward(float *out, const float *inp, size_t n);
/* dinp += dout where act > 0, act being the forward's output (or its
 * input: the sign test is the same), so the forward may run in place.
 * The gradient at exactly 0 is 0, as in PyTorch. */
void sparq_nn_relu_backward(float *dinp, const float *act, const float *dout, size_t n);

#ifdef __cplusplus
}
#endif
#endif
