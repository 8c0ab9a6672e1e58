/* A GPT language model with exactly nanoGPT's architecture
 * (karpathy/nanoGPT model.py, dropout 0): token + position embeddings,
 * n_layer pre-LayerNorm blocks
 *   x = x + attn.c_proj(causal_self_attention(attn.c_attn(ln_1(x))))
 *   x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
 * then ln_f and the LM head tied to the token embedding. Parameter names are
 * nanoGPT's state_dict names, so a sparq checkpoint loads into nanoGPT's GPT
 * with load_state_dict:
 *   transformer.wte.weight [V,C]           transformer.wpe.weight [block_size,C]
 *   transformer.h.{i}.ln_1.weight/.bias [C]
 *   transformer.h.{i}.attn.c_attn.weight [3C,C] /.bias [3C]
 *   transformer.h.{i}.attn.c_proj.weight [C,C]  /.bias [C]
 *   transformer.h.{i}.ln_2.weight/.bias [C]
 *   transformer.h.{i}.mlp.c_fc.weight [4C,C]    /.bias [4C]
 *   transformer.h.{i}.mlp.c_proj.weight [C,4C]  /.bias [C]
 *   transformer.ln_f.weight/.bias [C]
 *   lm_head.weight [V,C] (= transformer.wte.weight; written as an alias)
 * Biases exist only when config.bias is true.
 *
 * Class-conditional models (num_classes K > 0) follow LlamaGen's c2i GPT and
 * its Guidance-Free Training variant (thu-ml/GFT, spec gft.md section 3
 * "Autoregressive"): every sequence starts with one prefix token that holds
 * the condition,
 *   prefix[b] = cls_embedding.embedding_table[label_b]
 *             + t_embedder.cond_proj(emb(1000 gft_beta_b))   (GFT models only)
 * with emb the sinusoidal embedding of width gft_beta_dim in DiT's
 * TimestepEmbedder layout (sparq_nn_timestep_embedding, max period 10000).
 * The prefix has no position embedding (LlamaGen's class token has no rotary
 * phase either); the T bytes keep positions 0..T-1, so T <= block_size still
 * and the attention runs over T + 1 rows. Label K is the null class of label
 * dropout, and a null-labelled sequence always sees gft_beta = 1, whatever
 * the caller passes (the unconditional model is one function; GFT feeds
 * beta = 1 to dropped rows). The prefix's own output is not scored: windows
 * start anywhere in a class's text, so "the first byte given the class"
 * would only teach the class's byte histogram. Extra tensors:
 *   cls_embedding.embedding_table.weight [K+1, C]   (LlamaGen's name)
 *   t_embedder.cond_proj.weight [C, gft_beta_dim]   (only when gft_beta_dim > 0;
 *     LlamaGen embeds beta with its t_embedder, GFT's DiT with this bias-free
 *     "cond_proj"; one linear map, as the spec's section 4 asks)
 * An unconditional config (num_classes 0) is nanoGPT exactly, with the same
 * tensors, metadata and numbers as before these were added.
 *
 * Mixture-of-experts models (moe_router relu or topk; spec remoe.md, moe.h)
 * replace the MLP of the blocks in moe_layers by E experts of the MLP's
 * shape (hidden 4C, exact GELU) behind a bias-free router; the rest of the
 * block is unchanged, and the MoE output is added to the residual like the
 * MLP's. A block l in moe_layers has, in place of its mlp.c_fc/c_proj:
 *   transformer.h.{l}.mlp.router.weight          [E, C]      (Megatron's name)
 *   transformer.h.{l}.mlp.experts.c_fc.weight    [E, 4C, C]  expert e's c_fc
 *                                                            weight is [e]
 *   transformer.h.{l}.mlp.experts.c_fc.bias      [E, 4C]     (with bias)
 *   transformer.h.{l}.mlp.experts.c_proj.weight  [E, C, 4C]
 *   transformer.h.{l}.mlp.experts.c_proj.bias    [E, C]      (with bias)
 * The experts are stacked as in Megatron's GroupedMLP, under nanoGPT's
 * c_fc/c_proj names. Initialisation as nanoGPT's: the router and c_fc
 * N(0, 0.02), c_proj N(0, 0.02 / sqrt(2 n_layer)), biases 0; the stacked
 * biases take no weight decay. Class conditioning and MoE exclude each
 * other. */
#ifndef SPARQ_GPT_H
#define SPARQ_GPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/io.h"
#include "sparq/moe.h"
#include "sparq/nn.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* nanoGPT's GPTConfig fields under their own names. */
typedef struct sparq_gpt_config {
  int64_t n_layer;    /* default 6 */
  int64_t n_head;     /* default 6 */
  int64_t n_embd;     /* default 384; a multiple of n_head, head size <= 256 */
  int64_t block_size; /* context length, default 256 */
  int64_t vocab_size; /* default 256 (bytes) */
  bool bias;          /* default true */
  int64_t num_classes;  /* 0 (default): unconditional; K > 0: class prefix token (see above) */
  int64_t gft_beta_dim; /* 0 (default): no gft_beta input; else the (even) width of the sinusoidal
                           embedding of 1000 gft_beta (GFT: 256); needs num_classes > 0 */
  sparq_moe_router moe_router; /* SPARQ_MOE_NONE (default): dense MLPs everywhere */
  int64_t moe_experts;  /* E, 1..SPARQ_MOE_MAX_EXPERTS (MoE models only) */
  int64_t moe_topk;     /* k, 1..E: TopK's experts per token, ReMoE's target (S* = 1 - k/E) */
  uint64_t moe_layers;  /* bit l: block l's MLP is an MoE; nonzero, below bit n_layer (so an MoE
                           model has at most 64 layers) */
} sparq_gpt_config;

sparq_gpt_config sparq_gpt_config_default(void);
/* SPARQ_ERR_ARG naming the field when a value is out of range. */
sparq_status sparq_gpt_config_check(const sparq_gpt_config *cfg);

/* Config <-> checkpoint metadata ("n_layer", "n_head", "n_embd",
 * "block_size", "vocab_size" as decimal strings, "bias" as "true"/"false";
 * "num_classes" and "gft_beta_dim" only for conditional models, 0 when
 * absent, so older checkpoints load as unconditional; "moe_router" (relu or
 * topk), "moe_experts", "moe_topk" and "moe_layers" (the layer indices,
 * comma-separated) only for MoE models, dense when absent). */
sparq_status sparq_gpt_config_from_metadata(const sparq_safetensors *st, sparq_gpt_config *out);

typedef struct sparq_gpt sparq_gpt;

/* A model with nanoGPT's initialisation from `seed`: every Linear and
 * Embedding weight N(0, 0.02), the residual projections (attn.c_proj,
 * mlp.c_proj) N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weights 1. */
sparq_status sparq_gpt_create(const sparq_gpt_config *cfg, uint64_t seed, sparq_gpt **out);
void sparq_gpt_free(sparq_gpt *g);
const sparq_gpt_config *sparq_gpt_get_config(const sparq_gpt *g);
sparq_param_list *sparq_gpt_params(sparq_gpt *g);
/* The alias lm_head.weight -> transformer.wte.weight and the config as
 * metadata, for checkpoints (static storage owned by g). */
void sparq_gpt_checkpoint_info(sparq_gpt *g, const sparq_ckpt_alias **aliases, size_t *alias_count,
                               const sparq_metadata_entry **meta, size_t *meta_count);

/* Forward over tokens x [B,T] (T <= block_size, tokens < vocab_size).
 * With targets y [B,T] (negative = ignored) *loss is the mean cross-entropy
 * in nats; with y NULL no loss is computed (loss may be NULL). Activations
 * are kept for sparq_gpt_backward; buffers grow as needed. A conditional
 * model runs with the null class (sparq_gpt_forward_cond with NULL labels). */
sparq_status sparq_gpt_forward(sparq_gpt *g, const int32_t *x, const int32_t *y, int64_t B, int64_t T, float *loss);
/* The same with the condition of a conditional model: labels [B] in
 * 0..num_classes (num_classes = the null class; NULL = all null) and
 * gft_beta [B] (NULL = 1 for every row; only for models with gft_beta_dim;
 * finite values; null-labelled rows use 1 regardless). Both must be NULL for
 * an unconditional model. The prefix rows' targets are ignored, so *loss is
 * the mean over the B T byte targets as for the unconditional model. */
sparq_status sparq_gpt_forward_cond(sparq_gpt *g, const int32_t *x, const int32_t *y, const int32_t *labels,
                                    const float *gft_beta, int64_t B, int64_t T, float *loss);
/* Rows of logits per sequence of T tokens: T, or T + 1 for a conditional
 * model (its row 0 is the prefix's, rows 1..T those of the bytes). */
int64_t sparq_gpt_rows(const sparq_gpt *g, int64_t T);
/* Logits [B, rows(T), V] of the last forward (valid until the next call). */
const float *sparq_gpt_logits(const sparq_gpt *g);
/* Adds dloss * d(loss)/d(param) to the gradients of the parameter list,
 * for the last forward (which must have had targets). */
sparq_status sparq_gpt_backward(sparq_gpt *g, float dloss);
/* Adds the gradients for a given gradient of the objective with respect to
 * the last forward's logits, dlogits [B, rows(T), V] (any last forward,
 * with or without targets): the way in for objectives other than plain
 * cross-entropy, such as GFT's logit combination. */
sparq_status sparq_gpt_backward_logits(sparq_gpt *g, const float *dlogits);

/* The forward as inference: logits [B, rows(T), V] into `logits`, with the
 * same kernels in the same order as sparq_gpt_forward_cond (so the same
 * bits), but through scratch that holds one layer at a time and keeps
 * nothing for backward. The last training forward's activations stay
 * intact, so it can run between a forward and its backward (GFT's detached
 * unconditional pass). Arguments as sparq_gpt_forward_cond. */
sparq_status sparq_gpt_infer(sparq_gpt *g, const int32_t *x, const int32_t *labels, const float *gft_beta,
                             int64_t B, int64_t T, float *logits);

/* Zeroes t_embedder.cond_proj.weight (no-op without gft_beta_dim): right
 * after a conditional (CFG) checkpoint is copied into a GFT model, the
 * model's outputs are then the checkpoint's for every gft_beta, bit for bit
 * (spec gft.md section 9.5). */
void sparq_gpt_zero_beta_proj(sparq_gpt *g);

/* GFT's autoregressive objective (spec gft.md section 3 "Autoregressive") on
 * n_seq sequences of `rows` rows of V logits:
 *   l_cond = beta_b l_s + (1 - beta_b) sg[l_u]     (rows of sequence b)
 *   loss   = mean over rows with targets >= 0 of CE(softmax(l_cond), target)
 * l_s comes from the conditional forward with gradient, l_u from the
 * detached unconditional one (null class, beta 1). gft_beta NULL means beta 1
 * everywhere, i.e. plain cross-entropy on l_s. With dl_s non-NULL it is
 * OVERWRITTEN with dloss * d loss / d l_s = dloss beta_b (softmax(l_cond) -
 * onehot) / valid (0 on ignored rows); nothing flows into l_u. loss_s and
 * loss_u (either may be NULL) receive the cross-entropy of l_s alone and of
 * l_u alone, the two extra quantities GFT logs. work holds 2 n_seq rows V
 * floats of scratch. The softmaxes are the fused ones of
 * sparq_nn_xent_forward, so the result has the same bits for any thread
 * count, and at beta = 1 it is exactly the cross-entropy of l_s. */
sparq_status sparq_gpt_gft_loss(int64_t n_seq, int64_t rows, int64_t V, const float *gft_beta, const float *l_s,
                                const float *l_u, const int32_t *targets, float dloss, float *dl_s, float *work,
                                float *loss, float *loss_s, float *loss_u);

/* Samples `n_new` bytes after `prompt` (n_prompt >= 1 tokens) as nanoGPT's
 * generate does: the context is cropped to block_size, logits of the last
 * position divided by temperature, top_k (0 = all) kept, softmax, one
 * multinomial draw from `rng`. temperature 0 picks the argmax. out receives
 * the n_new new tokens. */
sparq_status sparq_gpt_generate(sparq_gpt *g, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                float temperature, int64_t top_k, sparq_rng *rng, int32_t *out);

/* How a conditional model samples. */
typedef struct sparq_gpt_sampling {
  float temperature; /* as sparq_gpt_generate's */
  int64_t top_k;
  int32_t label;     /* the class 0..num_classes-1, or num_classes: the null class (unconditional) */
  float gft_beta;    /* GFT models: the temperature in (0, 1] fed with the class, one forward per
                        token (1: plain conditional); must be 1 for other models */
  float cfg_scale;   /* classifier-free guidance w >= 1: with w > 1 each token is drawn from
                        l_u + w (l_c - l_u), l_c with the class (and gft_beta 1), l_u with the
                        null class: two forwards per token (one call at batch 2). Needs
                        gft_beta 1 and a real class. */
} sparq_gpt_sampling;

/* sparq_gpt_generate for a conditional model: the prefix token of
 * opt->label (and opt->gft_beta) before the context, which is cropped to
 * block_size bytes; forwards run as sparq_gpt_infer. *nfe (may be NULL)
 * receives the number of network forwards per sampled token (1, or 2 for
 * CFG), counting each sequence of a batched call. */
sparq_status sparq_gpt_generate_cond(sparq_gpt *g, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                     const sparq_gpt_sampling *opt, sparq_rng *rng, int32_t *out, int64_t *nfe);

/* Mean cross-entropy (nats per token) of a byte file scored as nanoGPT
 * would: windows i = 0, T, 2T, ... while i + T + 1 <= size, inputs
 * data[i, i+T), targets data[i+1, i+T+1), T = block_size; the mean is over
 * all targets. *tokens = the number of targets. Needs size >= T + 1. A
 * conditional model is scored with `label` (0..num_classes, num_classes =
 * null, i.e. as an unconditional model) at gft_beta 1; label is ignored by
 * unconditional models. */
sparq_status sparq_gpt_eval_bytes(sparq_gpt *g, const uint8_t *data, size_t size, double *loss, int64_t *tokens);
sparq_status sparq_gpt_eval_bytes_cond(sparq_gpt *g, const uint8_t *data, size_t size, int32_t label, double *loss,
                                      int64_t *tokens);

/* ------------------------------------------------- mixture of experts */

/* The number of MoE blocks (0 for a dense model). */
int64_t sparq_gpt_moe_count(const sparq_gpt *g);
/* What the j-th MoE block (in layer order, 0 <= j < count) measured in the
 * last sparq_gpt_forward(_cond) (evaluation forwards included; the
 * inference pass keeps nothing). *layer (may be NULL) receives the block
 * index. The stats' rows are the forward's B rows(T) rows in order. The
 * pointers stay valid until the next forward. SPARQ_ERR_ARG when j is out
 * of range or nothing was run. */
sparq_status sparq_gpt_moe_stats(const sparq_gpt *g, int64_t j, int64_t *layer, sparq_moe_stats *out);
/* The MoE terms sparq_gpt_backward adds to the cross-entropy (default: none):
 *   J = CE + lambda * L_reg + aux_coef * sum_l aux_l
 * L_reg = (1/L) sum_l reg_l, AVERAGED over the L MoE blocks (the spec's
 * formula; ReMoE's code sums them, which only rescales the adaptive
 * lambda), reg_l the l1 kind's regulariser of block l (relu router only);
 * the TopK aux losses are SUMMED over blocks as Megatron does with its
 * fixed coefficient (topk only). Both are taken on the last forward's rows
 * with the counts held fixed, and scaled by backward's dloss like the
 * cross-entropy. sparq_gpt_backward_logits applies them with dloss 1. */
void sparq_gpt_set_moe_objective(sparq_gpt *g, float lambda, sparq_moe_l1 l1, float aux_coef);

/* ------------------------------------------- FP8 activations (COAT) */

/* COAT's FP8 activations (spec coat-fp8.md section 4) mapped onto nanoGPT.
 * The forward computes exactly what it computes without them, in FP32, so
 * the loss and logits keep every bit; only what is KEPT for backward is
 * compressed, and backward dequantises it into one layer's FP32 scratch
 * before using it. Per block (N = B rows(T) rows, C = n_embd):
 *   residual into ln_1, res_mid into ln_2   E4M3, 1x16 groups along C
 *                                           (ceil(C/16) FP32 scales a row)
 *   ln_1 output (c_attn's input),           E4M3, ONE FP32 scale per tensor,
 *   ln_2 output (mlp.c_fc's input),         found by Group Scaling (the
 *   GELU output (mlp.c_proj's input)        1x16 group maxima, then their max)
 *   c_fc output (GELU's input)              E4M3, 1x16 groups along 4C
 *   LayerNorm mean and rstd, attention lse  FP32 (N or N n_head floats)
 *   q, k, v, attention output (c_proj's     BF16 (the paper's base precision;
 *   input)                                  see below)
 * and at the top the last residual (ln_f's input, 1x16) and ln_f's output
 * (lm_head's input, per tensor). The residual stream itself runs in FP32
 * through two ping-pong buffers and is never kept whole; the forward's FP32
 * buffers borrow backward's scratch, and backward dequantises into one
 * layer's worth of FP32 buffers. For 4 layers, C 128, 4 heads, V 256 at
 * batch 8 x 128 the bytes kept for backward go from 36,847,616 to
 * 13,811,764 (2.67x; sparq_gpt_saved_activation_bytes).
 *
 * Why BF16 for the attention internals: COAT keeps FlashAttention's q, k,
 * v, output and logsumexp in the base precision (BF16 in the paper), and
 * they are the largest block of what remains (4 N C values a layer); BF16
 * halves them. Measured in tests/test_coat_act.c (4 layers, C 32, 4 heads,
 * V 64, batch 4 x 16, weights N(0, 0.15)), the relative L2 error of the
 * whole gradient against the FP32 mode's: with only the activations in FP8
 * (douts left FP32) 2.53e-2 with BF16 attention tensors and 2.53e-2 with
 * FP32 ones (0.2% apart: E4M3 dominates); with the E5M2 douts too, 0.114
 * (BF16) and 0.109 (FP32). So BF16 costs next to nothing for 2x less
 * attention memory. (The E5M2 douts dominate the error: about 3% each,
 * e.g. 2.8e-2 from lm_head's alone, over 4 roundings a layer.)
 *
 * Backward: the gradient that flows into each linear layer's backward (the
 * dout of c_attn (its three blocks under one scale), attn.c_proj, mlp.c_fc,
 * mlp.c_proj and lm_head) is rounded through E5M2 with one per-tensor scale
 * (quantise-dequantise, nothing stored). The residual stream's gradient
 * stays FP32: the branches get rounded copies.
 *
 * Dense models, unconditional or conditional (class prefix, GFT), are
 * supported; MoE models are not (SPARQ_ERR_ARG). sparq_gpt_infer is
 * unaffected (it keeps nothing). Switching frees the activation buffers;
 * the next forward reallocates them in the new layout, and a backward
 * needs a new forward. Call it before the first forward or between steps.
 * Default: off. */
sparq_status sparq_gpt_set_fp8_activations(sparq_gpt *g, bool on);
bool sparq_gpt_fp8_activations(const sparq_gpt *g);

/* Exact bytes of what the last training forward (sparq_gpt_forward(_cond))
 * keeps for backward, in either mode (0 before any forward), counted at the
 * tensors' logical sizes (the arena's 64-byte alignment padding is not
 * counted). With N = B rows(T), C, V, NH = n_head, L = n_layer, F =
 * gft_beta_dim, ng(c) = ceil(c/16), and x in bytes:
 *   FP32 mode, per block: 4 (16 N C + 4 N + N NH): the block's input
 *     residual, ln_1 out, q, k, v, att, res_mid, ln_2 out, c_fc out (4NC),
 *     GELU out (4NC), two LayerNorms' mean and rstd, lse. (An MoE block
 *     counts no c_fc / GELU buffers; the expert activations inside its
 *     sparq_moe_state are not counted.)
 *   FP32 mode, top: 4 (2 N C + 2 N): the last residual, ln_f out, its mean
 *     and rstd.
 *   FP8 mode, per block: 12 N C + 4 (2 N ng(C) + N ng(4C)) + 3 x 4 (the
 *     scales) + 4 N C x (2 for BF16) + 4 (4 N + N NH).
 *   FP8 mode, top: 2 N C + 4 N ng(C) + 4 + 8 N.
 *   Both modes: the logits 4 N V; with targets, probs 4 N V and the
 *     targets 4 N; the tokens 4 B T; conditional models the labels 4 B and
 *     the gft_beta embeddings 4 B F.
 * Not counted: backward's scratch (gradients of activations, FP8 mode's
 * one-layer dequantisation buffers), parameters, gradients. */
size_t sparq_gpt_saved_activation_bytes(const sparq_gpt *g);

/* Spec section 7's activation log: what each kind of saved tensor lost. */
typedef enum sparq_gpt_act_kind {
  SPARQ_GPT_ACT_LN1_IN,   /* "ln_1.in"     residual into ln_1, E4M3 1x16 (n_layer tensors) */
  SPARQ_GPT_ACT_ATTN_IN,  /* "c_attn.in"   ln_1 output, E4M3 per tensor */
  SPARQ_GPT_ACT_LN2_IN,   /* "ln_2.in"     res_mid into ln_2, E4M3 1x16 */
  SPARQ_GPT_ACT_FC_IN,    /* "c_fc.in"     ln_2 output, E4M3 per tensor */
  SPARQ_GPT_ACT_GELU_IN,  /* "gelu.in"     c_fc output, E4M3 1x16 */
  SPARQ_GPT_ACT_PROJ_IN,  /* "mlp.c_proj.in" GELU output, E4M3 per tensor */
  SPARQ_GPT_ACT_LNF_IN,   /* "ln_f.in"     last residual, E4M3 1x16 (one tensor) */
  SPARQ_GPT_ACT_HEAD_IN,  /* "lm_head.in"  ln_f output, E4M3 per tensor (one tensor) */
  SPARQ_GPT_ACT_QKVO,     /* "attn.qkvo"   q, k, v, attention output: BF16, no scale */
  SPARQ_GPT_ACT_KINDS
} sparq_gpt_act_kind;

typedef struct sparq_gpt_act_stat {
  const char *name;   /* as above (static storage) */
  const char *format; /* "e4m3" or "bf16" */
  int64_t group;      /* 16 (per group along the row) or 0 (one scale per tensor) */
  int64_t tensors;    /* tensors of this kind the forward saved */
  int64_t elements;   /* their elements, all together */
  double rel_mse;     /* sum (x' - x)^2 / sum x^2 over them (x' = dequantised; 0 if all x are 0) */
  double saturated;   /* share of elements stored as +-max of the format (448 for E4M3; 0 for BF16) */
  int64_t nonfinite;  /* NaN/inf elements met (skipped by the scales, kept as NaN / +-max) */
} sparq_gpt_act_stat;

/* Turns the statistics on or off (default off: they cost a pass over every
 * saved tensor in FP64, single-threaded). While on, each training forward
 * in FP8 mode recomputes them. */
void sparq_gpt_set_fp8_act_stats(sparq_gpt *g, bool on);
/* out[SPARQ_GPT_ACT_KINDS] for the last forward. SPARQ_ERR_ARG when FP8
 * activations or the statistics are off, or the last forward did not run
 * with both on. */
sparq_status sparq_gpt_fp8_act_stats(const sparq_gpt *g, sparq_gpt_act_stat *out);

/* Per-phase wall time of forward+backward since the last reset, seconds
 * (for sparq bench train). */
typedef struct sparq_gpt_timing {
  double gemm, attention, other;
} sparq_gpt_timing;
void sparq_gpt_timing_get(const sparq_gpt *g, sparq_gpt_timing *out);
void sparq_gpt_timing_reset(sparq_gpt *g);

#ifdef __cplusplus
}
#endif
#endif
