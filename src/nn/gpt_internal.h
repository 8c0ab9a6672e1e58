/* The GPT model's private state, shared by its forward/backward, its
 * construction and its inference helpers. */
#ifndef SPARQ_NN_GPT_INTERNAL_H
#define SPARQ_NN_GPT_INTERNAL_H

#include "sparq/gpt.h"

/* One transformer block's parameters (bias pointers NULL without bias). */
typedef struct gpt_block_params {
  sparq_param *ln_1_w, *ln_1_b, *c_attn_w, *c_attn_b, *attn_proj_w, *attn_proj_b;
  sparq_param *ln_2_w, *ln_2_b, *c_fc_w, *c_fc_b, *mlp_proj_w, *mlp_proj_b;
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
} gpt_block_acts;

struct sparq_gpt {
  sparq_gpt_config cfg;
  sparq_param_list params;
  sparq_param *wte, *wpe, *ln_f_w, *ln_f_b;
  gpt_block_params *blocks; /* n_layer */

  /* Activations and backward scratch, sized for `cap_rows` rows. */
  int64_t cap_rows;
  float *arena; /* one allocation holding everything below */
  float **residual; /* n_layer + 1 residual streams [N,C]: residual[0] = embeddings */
  gpt_block_acts *acts;
  float *ln_f, *ln_f_mean, *ln_f_rstd, *logits, *probs;
  float *d_res, *d_ln, *d_att, *d_q, *d_k, *d_v, *d_fc, *d_logits;
  int32_t *tokens, *targets; /* copies of the last forward's x and y */

  int64_t B, T;     /* of the last forward */
  bool has_targets; /* the last forward had targets (backward allowed) */

  sparq_gpt_timing timing;

  /* Checkpoint description (strings live here). */
  char meta_values[6][32];
  sparq_metadata_entry meta[8];
  sparq_ckpt_alias alias;
};

/* Makes sure the activation buffers hold `rows` rows (grows, never shrinks). */
sparq_status gpt_reserve(sparq_gpt *g, int64_t rows);

#endif
