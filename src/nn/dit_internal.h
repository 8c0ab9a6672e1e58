/* The DiT model's private state, shared by its construction (dit_model.c),
 * initialisation (dit_init.c), buffers (dit_buffers.c), forward
 * (dit_forward.c) and backward (dit_backward.c).
 *
 * Notation: B samples, T tokens, N = B*T token rows, D = hidden_size,
 * M = MLP width, K = C*p*p values per patch, F = SPARQ_DIT_FREQ_DIM,
 * E = extra_dim. */
#ifndef SPARQ_NN_DIT_INTERNAL_H
#define SPARQ_NN_DIT_INTERNAL_H

#include "sparq/dit.h"

/* One block's parameters. */
typedef struct dit_block_params {
  sparq_param *qkv_w, *qkv_b, *proj_w, *proj_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ada_w, *ada_b;
} dit_block_params;

/* One block's activations (forward writes, backward reads). The inference
 * pass points every block at one shared set. */
typedef struct dit_block_acts {
  float *mod;                        /* adaLN output [B,6D]: shift, scale, gate (msa), shift, scale, gate (mlp) */
  float *ln1, *ln1_mean, *ln1_rstd;  /* norm1(x) [N,D], [N], [N] */
  float *mod1;                       /* modulate(ln1): the qkv input [N,D] */
  float *q, *k, *v;                  /* [N,D] each: qkv's three row blocks, NHD layout */
  float *att, *lse;                  /* attention output [N,D], LSE [B,heads,T] */
  float *attn_out;                   /* attn.proj output [N,D]: gate_msa's operand */
  float *res_mid;                    /* x + gate_msa attn_out [N,D] */
  float *ln2, *ln2_mean, *ln2_rstd;  /* norm2(res_mid) */
  float *mod2;                       /* modulate(ln2): the fc1 input [N,D] */
  float *fc1, *fc1_gelu;             /* [N,M] before and after GELU */
  float *mlp_out;                    /* fc2 output [N,D]: gate_mlp's operand */
} dit_block_acts;

/* Everything one forward writes, sized for `cap_B` samples. Training keeps
 * depth + 1 residual streams and one acts per block; inference keeps two
 * streams (ping-pong) and one acts shared by all blocks. */
typedef struct dit_work {
  int64_t cap_B;
  int n_res, n_acts;
  float *arena;         /* one allocation holding every buffer below */
  float **res;          /* n_res streams [N,D]: res[l] is block l's input */
  dit_block_acts *acts; /* n_acts */
  float *patches;       /* patchify(x) [N,K] */
  float *t_freq;        /* [B,F] t's sinusoidal embedding (+ cond_proj of the extra one) */
  float *e_in;          /* [B] extra_scale * extra (E > 0) */
  float *e_freq;        /* [B,E] the extra scalar's sinusoidal embedding (E > 0) */
  float *e_proj;        /* [B,F] cond_proj(e_freq) */
  float *h1, *s1;       /* t_embedder.mlp.0 output and its SiLU [B,D] */
  float *c;             /* t_emb + y_emb [B,D] (t_emb is computed in place here) */
  float *sc;            /* SiLU(c) [B,D]: the input of every adaLN_modulation.1 */
  float *fmod;          /* final adaLN output [B,2D]: shift, scale */
  float *lnf, *lnf_mean, *lnf_rstd, *modf; /* norm_final [N,D], [N], [N]; modulated [N,D] */
  float *lin;           /* final_layer.linear output [N, p*p*C] */
  int32_t *y;           /* copy of the labels [B] */
  /* backward scratch (training only; NULL in the inference work) */
  float *d_res, *d_a, *d_b, *d_q, *d_k, *d_v, *d_fc; /* [N,D] x 6, [N,M] */
  float *d_lin;                                       /* [N, p*p*C] */
  float *d_mod;                                       /* [B,6D] */
  float *d_sc, *d_c, *d_s1, *d_h1;                    /* [B,D] */
  float *d_tfreq;                                     /* [B,F] */
} dit_work;

struct sparq_dit {
  sparq_dit_config cfg;
  int64_t T, grid, M, K, hd; /* tokens, patches per side, MLP width, values per patch, head dim */
  sparq_param_list params;
  sparq_param *x_w, *x_b, *t0_w, *t0_b, *t2_w, *t2_b, *cond_w, *y_table, *pos;
  sparq_param *f_lin_w, *f_lin_b, *f_ada_w, *f_ada_b;
  dit_block_params *blocks; /* depth */

  dit_work train, infer;
  int64_t B;     /* of the last training forward */
  bool has_fwd;  /* a training forward succeeded (backward allowed) */

  /* Checkpoint description (strings live here). */
  char meta_values[11][32];
  sparq_metadata_entry meta[13];
};

/* Makes sure `w` holds B samples (grows, never shrinks). `training` picks
 * the layout described at dit_work. */
sparq_status dit_reserve(sparq_dit *m, dit_work *w, int64_t B, bool training);
void dit_work_free(dit_work *w);

/* DiT's initialize_weights (dit_init.c). */
void dit_init_params(sparq_dit *m, uint64_t seed);

/* The whole forward into `w` (dit_forward.c); `variant` picks the
 * attention kernel, and the LSE is kept only for flash_f32 in training. */
sparq_status dit_run_forward(sparq_dit *m, dit_work *w, bool training, const float *x, const float *t,
                             const int32_t *y, const float *extra, int64_t B, sparq_attn_variant variant, float *out);

#endif
