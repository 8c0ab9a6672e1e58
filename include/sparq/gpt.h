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
 * Biases exist only when config.bias is true. */
#ifndef SPARQ_GPT_H
#define SPARQ_GPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/io.h"
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
} sparq_gpt_config;

sparq_gpt_config sparq_gpt_config_default(void);
/* SPARQ_ERR_ARG naming the field when a value is out of range. */
sparq_status sparq_gpt_config_check(const sparq_gpt_config *cfg);

/* Config <-> checkpoint metadata ("n_layer", "n_head", "n_embd",
 * "block_size", "vocab_size" as decimal strings, "bias" as "true"/"false"). */
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
 * are kept for sparq_gpt_backward; buffers grow as needed. */
sparq_status sparq_gpt_forward(sparq_gpt *g, const int32_t *x, const int32_t *y, int64_t B, int64_t T, float *loss);
/* Logits [B,T,V] of the last forward (valid until the next call). */
const float *sparq_gpt_logits(const sparq_gpt *g);
/* Adds dloss * d(loss)/d(param) to the gradients of the parameter list,
 * for the last forward (which must have had targets). */
sparq_status sparq_gpt_backward(sparq_gpt *g, float dloss);

/* Samples `n_new` bytes after `prompt` (n_prompt >= 1 tokens) as nanoGPT's
 * generate does: the context is cropped to block_size, logits of the last
 * position divided by temperature, top_k (0 = all) kept, softmax, one
 * multinomial draw from `rng`. temperature 0 picks the argmax. out receives
 * the n_new new tokens. */
sparq_status sparq_gpt_generate(sparq_gpt *g, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                float temperature, int64_t top_k, sparq_rng *rng, int32_t *out);

/* Mean cross-entropy (nats per token) of a byte file scored as nanoGPT
 * would: windows i = 0, T, 2T, ... while i + T + 1 <= size, inputs
 * data[i, i+T), targets data[i+1, i+T+1), T = block_size; the mean is over
 * all targets. *tokens = the number of targets. Needs size >= T + 1. */
sparq_status sparq_gpt_eval_bytes(sparq_gpt *g, const uint8_t *data, size_t size, double *loss, int64_t *tokens);

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
