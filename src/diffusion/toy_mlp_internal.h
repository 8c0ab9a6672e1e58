/* The toy MLP's state, shared by its files: toy_mlp.c (config, parameters,
 * checkpoint description) and toy_mlp_forward.c (forward, backward,
 * inference, the denoiser adapter). */
#ifndef SPARQ_TOY_MLP_INTERNAL_H
#define SPARQ_TOY_MLP_INTERNAL_H

#include "sparq/toy_mlp.h"

#define TOY_MLP_MAX_DEPTH 16
/* DiT's TimestepEmbedder period, for both the time and the gft_beta input. */
#define TOY_MLP_MAX_PERIOD 10000.0f
/* GFT embeds 1000 gft_beta, the scale of the DDPM timesteps (spec section 4). */
#define TOY_MLP_BETA_SCALE 1000.0f
#define TOY_MLP_META 9

/* Activations of one forward over `rows` rows, kept for backward. */
typedef struct toy_mlp_acts {
  float *in0;                        /* [rows, in_dim]: x | time embedding | class row */
  float *bemb;                       /* [rows, beta_dim] (gft only) */
  float *pre[TOY_MLP_MAX_DEPTH];     /* [rows, hidden] hidden layer l before SiLU */
  float *act[TOY_MLP_MAX_DEPTH];     /* [rows, hidden] after SiLU */
  int32_t *y;                        /* [rows] labels of the forward */
} toy_mlp_acts;

struct sparq_toy_mlp {
  sparq_toy_mlp_config cfg;
  int64_t in_dim; /* dim + time_dim + class_dim */
  sparq_param_list params;
  sparq_param *class_embed, *beta_proj;
  sparq_param *w[TOY_MLP_MAX_DEPTH + 1], *b[TOY_MLP_MAX_DEPTH + 1]; /* net.{2l}.weight / .bias */

  /* training activations: `cap` rows reserved, `rows` of the last forward (0: none) */
  float *act_block;
  toy_mlp_acts acts;
  int64_t cap, rows;
  /* backward scratch [cap, hidden] x 2 and [cap, class_dim] */
  float *dscratch;
  /* inference scratch: two [icap, max(in_dim, hidden)] ping-pong buffers and
   * [icap, beta_dim] */
  float *infer_block;
  int64_t icap;

  char meta_values[TOY_MLP_META][32];
  sparq_metadata_entry meta[TOY_MLP_META];
};

#endif
