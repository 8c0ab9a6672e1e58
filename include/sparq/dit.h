/* DiT, the diffusion transformer of facebookresearch/DiT (models.py) with
 * learn_sigma off, plus an optional extra scalar input (GFT's beta, a
 * consistency model's second time):
 *
 *   x  [B,C,H,W] --patchify + x_embedder--> [B,T,D] + pos_embed (fixed 2-D sin-cos)
 *   c = t_embedder(t) + y_embedder(y)                             [B,D]
 *   depth adaLN-Zero blocks, each with (shift, scale, gate) x 2 = adaLN_modulation(c):
 *     x = x + gate_msa * attn(norm1(x) (1 + scale_msa) + shift_msa)
 *     x = x + gate_mlp * mlp(norm2(x) (1 + scale_mlp) + shift_mlp)
 *   final_layer: norm_final, modulate (shift, scale), linear -> [B,T,p*p*C]
 *   unpatchify -> out [B,C,H,W]
 * T = (input_size / patch_size)^2 tokens, D = hidden_size. Norms are
 * LayerNorm(D, elementwise_affine=False, eps=1e-6); attention is timm's
 * (non-causal, scale 1/sqrt(D/num_heads)); the MLP is fc1, GELU(tanh), fc2.
 *
 * Parameter names and shapes are DiT's state_dict (in its order), so a
 * sparq checkpoint loads into DiT(..., learn_sigma=False) with load_state_dict:
 *   pos_embed [1, T, D]                            (frozen: never trained, no gradient)
 *   x_embedder.proj.weight [D, C, p, p]            x_embedder.proj.bias [D]
 *   t_embedder.mlp.0.weight [D, 256] / .bias [D]   t_embedder.mlp.2.weight [D, D] / .bias [D]
 *   t_embedder.cond_proj.weight [256, extra_dim]   (only when extra_dim > 0; GFT's name)
 *   y_embedder.embedding_table.weight [num_classes (+ 1), D]
 *   blocks.{i}.attn.qkv.weight [3D, D] / .bias [3D]
 *   blocks.{i}.attn.proj.weight [D, D] / .bias [D]
 *   blocks.{i}.mlp.fc1.weight [M, D] / .bias [M]   M = int(D * mlp_ratio)
 *   blocks.{i}.mlp.fc2.weight [D, M] / .bias [D]
 *   blocks.{i}.adaLN_modulation.1.weight [6D, D] / .bias [6D]
 *   final_layer.linear.weight [p*p*C, D] / .bias [p*p*C]
 *   final_layer.adaLN_modulation.1.weight [2D, D] / .bias [2D]
 * The label table has the null class row (index num_classes) exactly when
 * class_dropout_prob > 0, as facebookresearch/DiT's LabelEmbedder does, so
 * a checkpoint's shapes are DiT's for the same config.
 *
 * The extra scalar s (extra_dim > 0) enters as in GFT's DiT (beta_in =
 * "linear"): t_embedder.cond_proj (bias-free) maps the extra_dim-wide
 * sinusoidal embedding of extra_scale * s to the 256-d frequency space, and
 * the result is added to t's frequency vector before t_embedder.mlp. (GFT
 * also sets beta = 1 for the samples whose label it drops: like the label
 * dropout itself, that is the caller's choice of inputs.) */
#ifndef SPARQ_DIT_H
#define SPARQ_DIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/attention.h"
#include "sparq/io.h"
#include "sparq/nn.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Width of the sinusoidal frequency embedding of t (DiT's
 * frequency_embedding_size) and the max_period of every sinusoidal embedding. */
#define SPARQ_DIT_FREQ_DIM 256
#define SPARQ_DIT_MAX_PERIOD 10000.0f
/* LayerNorm eps of norm1, norm2 and norm_final. */
#define SPARQ_DIT_LN_EPS 1e-6f

/* DiT's constructor arguments under their own names (learn_sigma is always
 * False), plus the extra scalar input. */
typedef struct sparq_dit_config {
  int64_t input_size;       /* square image side, default 28; a multiple of patch_size */
  int64_t patch_size;       /* default 4 */
  int64_t in_channels;      /* default 1 */
  int64_t hidden_size;      /* default 128; a multiple of num_heads and of 4 (2-D sin-cos), head dim <= 256 */
  int64_t depth;            /* default 4 */
  int64_t num_heads;        /* default 4 */
  float mlp_ratio;          /* default 4; MLP width int(hidden_size * mlp_ratio) >= 1 */
  int64_t num_classes;      /* default 10 (>= 0; the table has num_classes (+ 1 null row when class_dropout_prob > 0) rows) */
  float class_dropout_prob; /* default 0.1, in [0, 1]; stored for the caller's label dropout */
  int64_t extra_dim;        /* 0 = no extra scalar input (default); else the width of its embedding (GFT: 512) */
  float extra_scale;        /* the extra scalar is multiplied by this before embedding (default 1000, GFT's) */
} sparq_dit_config;

sparq_dit_config sparq_dit_config_default(void);
/* SPARQ_ERR_ARG naming the field when a value is out of range. */
sparq_status sparq_dit_config_check(const sparq_dit_config *c);

/* Config <-> checkpoint metadata: the keys input_size, patch_size,
 * in_channels, hidden_size, depth, num_heads, num_classes, extra_dim
 * (decimal integers), mlp_ratio, class_dropout_prob, extra_scale (decimal
 * floats), learn_sigma ("false") and model ("DiT"). Reading requires every
 * key except extra_dim and extra_scale (defaults 0 and 1000), learn_sigma
 * false and model DiT when present; SPARQ_ERR_FORMAT otherwise. */
sparq_status sparq_dit_config_from_metadata(const sparq_safetensors *st, sparq_dit_config *out);

typedef struct sparq_dit sparq_dit;

/* A model with DiT's initialize_weights from `seed`: xavier_uniform on every
 * Linear weight and on x_embedder.proj.weight viewed as [D, C*p*p], biases 0,
 * the label table and t_embedder.mlp.0/.2 weights N(0, 0.02),
 * t_embedder.cond_proj N(0, 0.02), pos_embed the fixed 2-D sin-cos table,
 * and the adaLN-Zero zeros (every adaLN_modulation.1 weight and bias,
 * final_layer.linear weight and bias): a fresh model's blocks are exactly
 * the identity and its output is exactly 0. Each parameter draws from its
 * own stream, so values do not depend on the thread count. *out is NULL on
 * failure. */
sparq_status sparq_dit_create(const sparq_dit_config *cfg, uint64_t seed, sparq_dit **out);
void sparq_dit_free(sparq_dit *m);
const sparq_dit_config *sparq_dit_get_config(const sparq_dit *m);
/* The parameters (owned by m), in the order of the list above. */
sparq_param_list *sparq_dit_params(sparq_dit *m);
/* The config as checkpoint metadata (static storage owned by m). */
void sparq_dit_checkpoint_info(sparq_dit *m, const sparq_metadata_entry **meta, size_t *meta_count);
/* Zeroes t_embedder.cond_proj.weight (no-op without extra_dim), so that the
 * outputs no longer depend on the extra input: fine-tuning a GFT model from
 * a CFG checkpoint starts from that checkpoint's exact function. */
void sparq_dit_zero_extra(sparq_dit *m);

/* Training forward.
 *   x     [B, C, H, W] (NCHW, H = W = input_size), the noisy input
 *   t     [B] the time input, in whatever units the caller's schedule uses
 *         (it goes straight into the sinusoidal embedding, as in DiT)
 *   y     [B] labels in 0..num_classes; num_classes is the null class (the
 *         caller applies label dropout by passing it), which exists only
 *         when class_dropout_prob > 0
 *   extra [B] the extra scalar (before extra_scale); required when
 *         extra_dim > 0, ignored (may be NULL) when extra_dim == 0
 *   out   [B, C, H, W] the prediction
 * Keeps the activations sparq_dit_backward needs (buffers grow with B,
 * never shrink). Fails with SPARQ_ERR_ARG on NULL pointers, B < 1 or a
 * label out of range; SPARQ_ERR_NOMEM when buffers cannot grow. */
sparq_status sparq_dit_forward(sparq_dit *m, const float *x, const float *t, const int32_t *y, const float *extra,
                               int64_t B, float *out);
/* Adds d(loss)/d(param) to the gradients of the parameter list (every
 * trainable parameter; pos_embed gets none) for the last sparq_dit_forward,
 * given dout = d(loss)/d(out) [B, C, H, W]. SPARQ_ERR_ARG without a
 * successful forward since the model was created. May be called again for
 * the same forward (the gradients add up). */
sparq_status sparq_dit_backward(sparq_dit *m, const float *dout);

/* Inference forward with any attention variant (attention.h); same
 * arguments as sparq_dit_forward. With SPARQ_ATTN_FLASH_F32 the output is
 * bit-identical to sparq_dit_forward's. Keeps no activations: its buffers
 * (separate from the training ones, growing with B) hold one block at a
 * time, and a pending sparq_dit_backward is not disturbed, so a no-grad pass
 * (GFT's unconditional branch, a sampler) can run between a training forward
 * and its backward. */
sparq_status sparq_dit_infer(sparq_dit *m, const float *x, const float *t, const int32_t *y, const float *extra,
                             int64_t B, sparq_attn_variant attn, float *out);

#ifdef __cplusplus
}
#endif
#endif
