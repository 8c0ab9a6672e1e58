/* The GPT model's private state, shared by its forward/backward, its
 * construction and its inference helpers. */
#ifndef SPARQ_NN_GPT_INTERNAL_H
#define SPARQ_NN_GPT_INTERNAL_H

#include "sparq/gpt.h"

/* One transformer block's parameters (bias pointers NULL without bias). */
typedef struct gpt_block_params {
  sparq_param *ln_1_w, *ln_1_b, *c_attn_w, *c_attn_b, *attn_proj_w, *attn_proj_b;
  sparq_param *ln_2_w, *ln_2_b, *c_fc_w, *c_fc_b, *mlp_proj_w, *mlp_proj_b;
  /* MoE blocks (router non-NULL) have these instead of the MLP's four */
  sparq_param *router, *ex_fc_w, *ex_fc_b, *ex_proj_w, *ex_proj_b;
} gpt_block_params;

/* Saved activations of one block for rows N = B*T (forward writes, backward reads). */
typedef struct gpt_block_acts {
  float *ln_1, *ln_1_mean, *ln_1_rstd; /* [N,C], [N], [N] */
  float *q, *k, *v;                    /* [N,C] each: c_attn's three column blocks */
  float *att, *lse;                    /* attention output [N,C], LSE [B,NH,T] */
  float *res_mid;                      /* x + attn(...) [N,C] */
  float *ln_2, *ln_2_mean, *ln_2_rstd;
  float *fc;                           /* c_fc output before GELU [N,4C] */
  float *fc_gelu;                      /* after GELU [N,4C] */
  sparq_moe_state *moe;                /* MoE blocks: the layer's routing and expert activations */
} gpt_block_acts;

struct sparq_gpt {
  sparq_gpt_config cfg;
  sparq_param_list params;
  sparq_param *wte, *wpe, *ln_f_w, *ln_f_b;
  sparq_param *cls, *beta_proj; /* conditional models: the class table, the gft_beta projection (or NULL) */
  gpt_block_params *blocks; /* n_layer */

  /* Activations and backward scratch, sized for `cap_rows` rows. */
  int64_t cap_rows;
  float *arena; /* one allocation holding everything below */
  float **residual; /* n_layer + 1 residual streams [N,C]: residual[0] = embeddings */
  gpt_block_acts *acts;
  float *ln_f, *ln_f_mean, *ln_f_rstd, *logits, *probs;
  float *d_res, *d_ln, *d_att, *d_q, *d_k, *d_v, *d_fc, *d_logits;
  int32_t *tokens, *targets; /* copies of the last forward's x and y (targets: [B, rows(T)]) */
  /* Conditional models: the last forward's labels [B] (null filled in), the
   * sinusoidal embeddings of 1000 gft_beta [B, gft_beta_dim] and a [B, C]
   * scratch for the prefix's beta term and its gradient. */
  int32_t *labels;
  float *beta_freq, *prefix;

  int64_t B, T;     /* of the last forward (T: bytes per sequence) */
  bool has_targets; /* the last forward had targets (backward allowed) */
  bool has_forward; /* the last forward succeeded (backward from logits allowed) */

  /* sparq_gpt_infer's scratch: one layer's activations for infer_rows rows. */
  int64_t infer_rows;
  float *infer_arena;
  float *inf_res[2], *inf_ln_f, *inf_ln_f_mean, *inf_ln_f_rstd, *inf_freq, *inf_prefix;
  gpt_block_acts inf_acts;

  sparq_gpt_timing timing;

  /* MoE models: one state per block for the training forward (NULL for
   * dense blocks), one the inference pass reuses for every block, and the
   * objective's settings (sparq_gpt_set_moe_objective). */
  sparq_moe_state **moe_train, *moe_infer;
  int64_t moe_count;
  float moe_lambda, moe_aux, moe_dloss;
  sparq_moe_l1 moe_l1;

  /* Checkpoint description (strings live here). */
  char meta_values[12][32];
  char moe_layers_text[64 * 3 + 1];
  sparq_metadata_entry meta[16];
  size_t meta_count;
  sparq_ckpt_alias alias;
};

/* Floats one block's activations take at N rows (each buffer rounded up to
 * 16 floats), and the carving of those buffers out of *cursor (advanced
 * past them; 64-byte aligned when *cursor is). The training forward keeps
 * one set per layer, the inference pass one in all. */
size_t gpt_block_acts_floats(size_t N, size_t C, size_t NH);
void gpt_block_acts_carve(gpt_block_acts *a, float **cursor, size_t N, size_t C, size_t NH);
/* Makes sure the activation buffers hold `rows` rows (grows, never shrinks). */
sparq_status gpt_reserve(sparq_gpt *g, int64_t rows);
/* The same for sparq_gpt_infer's scratch. */
sparq_status gpt_reserve_infer(sparq_gpt *g, int64_t rows);
void gpt_free_infer(sparq_gpt *g);

/* Rows per sequence of T bytes: T + 1 with a class prefix. */
static inline int64_t gpt_rows_per_seq(const sparq_gpt *g, int64_t T) { return T + (g->cfg.num_classes > 0); }

/* Checks the forward's arguments (sizes, tokens, labels, gft_beta); who
 * names the caller in the message. */
sparq_status gpt_check_inputs(const sparq_gpt *g, const char *who, const int32_t *x, const int32_t *y,
                              const int32_t *labels, const float *gft_beta, int64_t B, int64_t T);

/* The input rows [B, rows(T), C]: the class prefix of each sequence (labels
 * NULL = null class; gft_beta NULL = 1; 1 for null rows), then wte + wpe of
 * its bytes. freq [B, gft_beta_dim] and prefix [B, C] are scratch (freq is
 * kept for backward); labels_out [B] (may be NULL) receives the labels used. */
sparq_status gpt_embed_forward(const sparq_gpt *g, float *out, const int32_t *x, const int32_t *labels,
                               const float *gft_beta, int64_t B, int64_t T, float *freq, float *prefix,
                               int32_t *labels_out);
/* Its backward from d_res [B, rows(T), C] for the last forward: wte, wpe,
 * and the class table and beta projection of conditional models. */
sparq_status gpt_embed_backward(sparq_gpt *g, const float *d_res);

/* One transformer block, in -> out [N,C], saving into a (nanoGPT's order). */
sparq_status gpt_block_forward(sparq_gpt *g, const gpt_block_params *p, gpt_block_acts *a, const float *in,
                               float *out, int64_t B, int64_t Tp);
/* ln_f and the tied LM head: logits [N,V] from in [N,C]. */
sparq_status gpt_head_forward(sparq_gpt *g, float *ln, float *mean, float *rstd, const float *in, float *logits,
                              int64_t N);

/* The MoE layer of a block (gpt_moe.c). */
sparq_moe_dims gpt_moe_dims(const sparq_gpt *g);
sparq_moe_weights gpt_moe_weights(const gpt_block_params *p);
sparq_moe_grads gpt_moe_grads(const gpt_block_params *p);
/* Creates the states of an MoE model (no-op for dense ones). */
sparq_status gpt_moe_create(sparq_gpt *g);
void gpt_moe_free(sparq_gpt *g);
/* Parses / writes the metadata's layer list ("0,2,3"). */
sparq_status gpt_moe_layers_parse(const char *path, const char *text, uint64_t *mask);
void gpt_moe_layers_format(uint64_t mask, char *out, size_t size);

/* Picks a token from one row of logits (sparq_gpt_generate's rule);
 * work holds V doubles. */
int32_t gpt_sample_row(const float *logits, int64_t V, float temperature, int64_t top_k, sparq_rng *rng,
                       double *work);

#endif
