/* The GPT model's private state, shared by its forward/backward, its
 * construction and its inference helpers. */
#ifndef SPARQ_NN_GPT_INTERNAL_H
#define SPARQ_NN_GPT_INTERNAL_H

#include "sparq/gpt.h"
#include "sparq/num.h"

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

/* A tensor kept in FP8 for backward (FP8 activations): codes [rows, cols]
 * and FP32 scales, one (group 0) or rows ceil(cols/16) (group 16). rows is
 * the last forward's N. */
typedef struct gpt_fp8_tensor {
  uint8_t *q;
  float *scales;
  size_t cols, group;
} gpt_fp8_tensor;

/* What one block keeps in FP8 mode (gpt.h). q, k, v, att hold BF16 codes
 * (uint16_t) or, with the test knob fp8_attn_fp32, floats. */
typedef struct gpt_fp8_block {
  gpt_fp8_tensor ln_1_in, attn_in, ln_2_in, fc_in, gelu_in, proj_in;
  float *ln_1_mean, *ln_1_rstd, *ln_2_mean, *ln_2_rstd, *lse;
  void *q, *k, *v, *att;
} gpt_fp8_block;

/* The linear layers whose dout backward rounds through E5M2, per block. */
enum { GPT_GRAD_C_ATTN, GPT_GRAD_ATTN_PROJ, GPT_GRAD_C_FC, GPT_GRAD_MLP_PROJ, GPT_GRAD_PER_BLOCK };

/* Running sums behind sparq_gpt_act_stat. */
typedef struct gpt_fp8_stat_acc {
  double err2, ref2;
  int64_t tensors, elements, saturated, nonfinite;
} gpt_fp8_stat_acc;

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

  /* FP8 activations (gpt.h; gpt_fp8_*.c). In FP8 mode the arena holds, in
   * place of residual/acts/ln_f and d_fc: the saved blocks fp8[n_layer] and
   * the top tensors, and one layer of FP32 work buffers that backward
   * dequantises into (fp8_work: Y = ln_1 == ln_2, X = q k v att == fc ==
   * fc_gelu). The forward's FP32 buffers borrow backward's idle scratch
   * (the residual streams fp8_res are d_res and d_ln; gpt_fp8_forward.c),
   * and d_fc is d_att..d_v. */
  bool fp8_act;
  bool fp8_attn_fp32;    /* test knob: keep q, k, v, att in FP32 instead of BF16 */
  bool fp8_grad_fp32;    /* test knob: skip the E5M2 rounding of backward's douts */
  bool fp8_stats_on, fp8_stats_valid;
  bool fp8_grads_valid; /* fp8_grad_scale holds the last backward's scales */
  gpt_fp8_block *fp8;    /* n_layer, carved by gpt_reserve */
  gpt_fp8_tensor fp8_lnf_in, fp8_head_in;
  float *fp8_res[2];
  gpt_block_acts fp8_work;
  float *fp8_gmax;       /* the group maxima of one tensor */
  float *fp8_grad_scale; /* [n_layer GPT_GRAD_PER_BLOCK + 1]: the last backward's E5M2 scales (lm_head last) */
  gpt_fp8_stat_acc fp8_stats[SPARQ_GPT_ACT_KINDS];
  int64_t fp8_nonfinite[SPARQ_GPT_ACT_KINDS];

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

/* The timing wrappers of the forward and backward files: run `call`, add
 * its wall time to g->timing.bucket (TIMED also returns its failure; it
 * needs a sparq_status s in scope). */
#define TIMED(bucket, call)                  \
  do {                                       \
    double t0_ = sparq_now();                \
    s = (call);                              \
    g->timing.bucket += sparq_now() - t0_;   \
    if (s) return s;                         \
  } while (0)
#define TIMED_VOID(bucket, call)             \
  do {                                       \
    double t0_ = sparq_now();                \
    call;                                    \
    g->timing.bucket += sparq_now() - t0_;   \
  } while (0)

/* dinp = dout * w (overwritten) and the weight/bias gradients accumulated. */
sparq_status gpt_linear_backward_fresh(sparq_gpt *g, float *dinp, float *dw, float *db, const float *dout,
                                       const float *inp, const float *w, int64_t N, int64_t Cin, int64_t OC);

/* ------------------------------------------------ FP8 activations */

/* Frees the activation buffers (the next forward reallocates them). */
void gpt_release_buffers(sparq_gpt *g);
/* Floats (each buffer rounded up to 16, so 64-byte aligned) the FP8 mode's
 * saved tensors and work buffers take at N rows, and their carving out of
 * *cursor into blocks[n_layer] and g's other fp8_ fields except fp8 and
 * fp8_grad_scale (gpt_reserve, FP8 mode). */
size_t gpt_fp8_arena_floats(const sparq_gpt *g, size_t N);
void gpt_fp8_carve(sparq_gpt *g, gpt_fp8_block *blocks, float **cursor, size_t N);
/* The blocks and the head of the forward in FP8 mode, from the embeddings
 * in fp8_res[0] to g->logits. */
sparq_status gpt_fp8_forward(sparq_gpt *g, int64_t B, int64_t Tp);
/* Backward from dlogits [N,V] in FP8 mode (dlogits may be g->d_logits). */
sparq_status gpt_fp8_backward(sparq_gpt *g, const float *dlogits);
/* The storage helpers of both passes (gpt_fp8_store.c), parallel over
 * blocks of rows (any thread count gives the same bits):
 * save quantises x [rows, t->cols] into t (E4M3; 1x16 groups, or one scale
 * by Group Scaling) and, with the statistics on, adds to those of `kind`;
 * load dequantises t into x. */
void gpt_fp8_save(sparq_gpt *g, gpt_fp8_tensor *t, const float *x, size_t rows, sparq_gpt_act_kind kind);
void gpt_fp8_load(const sparq_gpt *g, float *x, const gpt_fp8_tensor *t, size_t rows);
/* q, k, v, att: BF16 (or FP32 with the knob) copies of n floats. */
void gpt_fp8_save_hp(sparq_gpt *g, void *dst, const float *x, size_t n);
void gpt_fp8_load_hp(const sparq_gpt *g, float *x, const void *src, size_t n);
/* Rounds the k tensors x[j] [rows, cols] through E5M2 in place with ONE
 * scale (Group Scaling over all of them) and returns it (0 with the
 * fp8_grad_fp32 knob, which leaves them as they are). */
float gpt_fp8_round_grads(sparq_gpt *g, float *const *x, int k, size_t rows, size_t cols);

/* Test knob: q, k, v, att saved in FP32 (true) or BF16 (false, default);
 * frees the buffers like the mode switch. */
void gpt_fp8_set_attn_fp32(sparq_gpt *g, bool on);

/* One FP8 (or E5M2-rounded) tensor of the last forward/backward, for tests
 * of the granularity (spec section 9.7). */
typedef struct gpt_fp8_desc {
  char name[48];       /* "h.0.ln_1.in", ..., "lm_head.in"; gradients "h.0.attn.c_proj.dout", "lm_head.dout" */
  bool is_grad;        /* a backward dout rounded through E5M2 (nothing stored) */
  sparq_fp8_format fmt;
  size_t rows, cols, group; /* group 0: one scale */
  size_t n_scales;
  const uint8_t *q;    /* NULL for gradients */
  const float *scales; /* for gradients: the scale the last backward used */
} gpt_fp8_desc;
/* Writes up to cap descriptors (the saved tensors of the last forward in
 * layer order, then the gradients of the last backward) and returns how
 * many there are; 0 outside FP8 mode. */
size_t gpt_fp8_describe(const sparq_gpt *g, gpt_fp8_desc *out, size_t cap);

/* Rows per sequence of T bytes: T + 1 with a class prefix. */
static inline int64_t gpt_rows_per_seq(const sparq_gpt *g, int64_t T) { return T + (g->cfg.num_classes > 0); }

/* The GPT's buffers are carved out of one float arena, each rounded up to
 * 16 floats so every buffer starts 64-byte aligned when the arena does:
 * gpt_round16 sizes a buffer, gpt_take hands out the next one. */
static inline size_t gpt_round16(size_t n) { return (n + 15) / 16 * 16; }
static inline float *gpt_take(float **cursor, size_t n) {
  float *p = *cursor;
  *cursor += gpt_round16(n);
  return p;
}

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
