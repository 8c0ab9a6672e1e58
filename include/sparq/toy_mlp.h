/* The learned denoiser of the 2-D toy (spec gft.md section 8.1): a small
 * MLP conditioned on the network time input, a class label (with a null
 * class for classifier-free guidance) and, optionally, GFT's temperature
 * gft_beta; plus the training glue that turns it into a sparq_trainable.
 *
 * Architecture, as the PyTorch module it mirrors (parameter names are its
 * state_dict names):
 *
 *   class ToyMLP(nn.Module):
 *     class_embed = nn.Embedding(num_classes + 1, class_dim)  # row K = null
 *     beta_proj   = nn.Linear(beta_dim, hidden, bias=False)   # gft only
 *     net = nn.Sequential(nn.Linear(dim + time_dim + class_dim, hidden), nn.SiLU(),
 *                         nn.Linear(hidden, hidden), nn.SiLU(),   # depth - 1 times
 *                         nn.Linear(hidden, dim))
 *     def forward(x, t, y, gft_beta):
 *       h = cat([x, timestep_embedding(t, time_dim), class_embed(y)], -1)
 *       h = net[0](h)
 *       if gft: h = h + beta_proj(timestep_embedding(1000 * gft_beta, beta_dim))
 *       return net[2:](silu(h))          # the head in the diffusion's parameterisation
 *
 * so the names are class_embed.weight [K+1, class_dim], net.0.weight
 * [hidden, dim + time_dim + class_dim], net.0.bias [hidden], net.2.*,
 * net.4.*, ..., net.{2 depth}.weight [dim, hidden], net.{2 depth}.bias [dim],
 * and beta_proj.weight [hidden, beta_dim] when gft is set.
 * timestep_embedding is sparq_nn_timestep_embedding (DiT's layout, max
 * period 10000). The beta input is a separate bias-free projection (the
 * spec's section 4 in MLP form) so that a CFG model becomes a GFT model with
 * beta_proj = 0 and unchanged outputs (sparq_toy_mlp_copy_from).
 *
 * Results do not depend on the thread count (the GEMMs and the fixed-order
 * loops below). One model is not safe to call from two threads at once: its
 * activation and scratch buffers are shared. */
#ifndef SPARQ_TOY_MLP_H
#define SPARQ_TOY_MLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/diffusion.h"
#include "sparq/io.h"
#include "sparq/nn.h"
#include "sparq/status.h"
#include "sparq/toy2d.h"
#include "sparq/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sparq_toy_mlp_config {
  int64_t dim;         /* data dimension; default 2 */
  int64_t hidden;      /* width of the hidden layers; default 128 */
  int64_t depth;       /* number of hidden layers (SiLU after each); default 3 */
  int64_t time_dim;    /* sinusoidal embedding of the network time input; default 64 */
  int64_t class_dim;   /* width of a class_embed row; default 64 */
  int64_t num_classes; /* K; class_embed has K + 1 rows, row K is the null class; default 4 */
  bool gft;            /* the gft_beta input exists (beta_proj); default false */
  int64_t beta_dim;    /* sinusoidal embedding of 1000 gft_beta; default 64 */
} sparq_toy_mlp_config;

/* The defaults above (spec section 8.1, the toy's K = SPARQ_TOY2D_CLASSES). */
sparq_toy_mlp_config sparq_toy_mlp_config_default(void);
/* SPARQ_ERR_ARG naming the field when a value is out of range (every size
 * 1..4096, depth 1..16, num_classes 1..65536). */
sparq_status sparq_toy_mlp_config_check(const sparq_toy_mlp_config *cfg);
/* Reads a config from checkpoint metadata written by this model (the keys
 * of sparq_toy_mlp_checkpoint_info); SPARQ_ERR_FORMAT naming the file and
 * key when one is missing or malformed. */
sparq_status sparq_toy_mlp_config_from_metadata(const sparq_safetensors *st, sparq_toy_mlp_config *out);

typedef struct sparq_toy_mlp sparq_toy_mlp;

/* A model initialised from `seed` like PyTorch's defaults: every Linear
 * weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), class_embed N(0, 1),
 * and beta_proj N(0, 0.02) (spec section 4, training from scratch). Each
 * parameter draws from its own stream, so its values do not depend on the
 * other parameters' sizes or on the thread count. */
sparq_status sparq_toy_mlp_create(const sparq_toy_mlp_config *cfg, uint64_t seed, sparq_toy_mlp **out);
void sparq_toy_mlp_free(sparq_toy_mlp *m);
const sparq_toy_mlp_config *sparq_toy_mlp_get_config(const sparq_toy_mlp *m);
sparq_param_list *sparq_toy_mlp_params(sparq_toy_mlp *m);
/* The config as checkpoint metadata ("model" = "toy_mlp", the integer
 * fields as decimal strings, "gft" = "true"/"false"); static storage owned
 * by m. No aliases. */
void sparq_toy_mlp_checkpoint_info(sparq_toy_mlp *m, const sparq_ckpt_alias **aliases, size_t *alias_count,
                                   const sparq_metadata_entry **meta, size_t *meta_count);

/* Copies every parameter of src that dst has under the same name and shape
 * into dst, and zeroes dst's beta_proj.weight when src has none: a CFG model
 * turned into a GFT model this way gives the same outputs for every
 * gft_beta (spec section 9.5, the start of GFT fine-tuning). Fails with
 * SPARQ_ERR_ARG when a parameter of dst other than beta_proj.weight is
 * missing from src or has another shape. */
sparq_status sparq_toy_mlp_copy_from(sparq_toy_mlp *dst, const sparq_toy_mlp *src);

/* Training forward over n rows:
 *   x [n, dim]     the network input (noisy sample in the model's variable)
 *   t [n]          the network time input (VP timestep, EDM c_noise)
 *   y [n]          labels 0..K (K = the null class)
 *   gft_beta [n]   GFT temperatures, or NULL for 1 on every row; must be
 *                  NULL for a model without gft
 *   out [n, dim]   the head output (written)
 * The activations are kept for sparq_toy_mlp_backward (buffers grow as
 * needed). Fails with SPARQ_ERR_ARG on NULL pointers, n < 1, a label out of
 * range or gft_beta given to a model without gft. */
sparq_status sparq_toy_mlp_forward(sparq_toy_mlp *m, const float *x, const float *t, const int32_t *y,
                                   const float *gft_beta, int64_t n, float *out);
/* Adds d(objective)/d(param) to the gradients, given dout [n, dim] =
 * d(objective)/d(out) of the last sparq_toy_mlp_forward. Fails with
 * SPARQ_ERR_ARG when no forward ran since the model was created. */
sparq_status sparq_toy_mlp_backward(sparq_toy_mlp *m, const float *dout);
/* The same function as sparq_toy_mlp_forward, bit for bit, but saves
 * nothing: it runs in its own scratch and leaves the training activations
 * of the last forward intact, so it can compute GFT's detached
 * unconditional pass between a forward and its backward. */
sparq_status sparq_toy_mlp_infer(sparq_toy_mlp *m, const float *x, const float *t, const int32_t *y,
                                 const float *gft_beta, int64_t n, float *out);

/* The model as a sampler's network: eval runs sparq_toy_mlp_infer with
 * extra as gft_beta (a model without gft ignores extra); dim = cfg.dim,
 * null_class = cfg.num_classes. m must outlive the denoiser. */
void sparq_toy_mlp_denoiser(sparq_toy_mlp *m, sparq_denoiser *out);

/* ------------------------------------------------------ training glue */

typedef enum sparq_toy_objective {
  /* Plain conditional regression with label dropout (the CFG arm):
   * loss = mean_rows weight * mean_dim (out - target)^2. */
  SPARQ_TOY_OBJ_CFG = 0,
  /* Guidance-free training (spec section 3): gft_beta ~ U(0, 1) per row,
   * dropped rows feed gft_beta = 1 to the network but keep the drawn value
   * in the combination eps^ = beta out_s + (1 - beta) out_u, where out_u is
   * the detached unconditional pass (null label, gft_beta 1, through
   * sparq_toy_mlp_infer); loss = mean_rows weight * mean_dim (eps^ - target)^2.
   * Needs a gft model. */
  SPARQ_TOY_OBJ_GFT = 1,
} sparq_toy_objective;

typedef struct sparq_toy_task_config {
  int64_t batch;       /* rows per micro-batch; default 512 */
  float p_uncond;      /* label dropout probability; default 0.1 */
  sparq_toy_objective objective; /* default SPARQ_TOY_OBJ_CFG */
  int64_t eval_rows;   /* rows of the fixed held-out batch; default 4096 */
  uint64_t eval_seed;  /* the held-out batch's seed; default 1234 */
} sparq_toy_task_config;

sparq_toy_task_config sparq_toy_task_config_default(void);

typedef struct sparq_toy_task {
  sparq_toy_mlp *mlp;          /* borrowed */
  const sparq_toy2d *toy;      /* borrowed */
  const sparq_diffusion *diff; /* borrowed */
  sparq_toy_task_config cfg;
  /* one micro-batch: labels, GFT temperatures (drawn and fed), x0, network
   * inputs, targets, weights, head outputs and their gradient; owned */
  int32_t *y;
  float *beta, *beta_in, *x0, *net_x, *net_t, *target, *weight, *out, *out_u, *dout;
  /* the held-out batch, drawn once at init; owned */
  int32_t *ev_y;
  float *ev_beta, *ev_x, *ev_t, *ev_target, *ev_weight;
  int32_t *null_y; /* num_classes on every row (the unconditional pass) */
  int64_t ev_rows;
  sparq_metadata_entry meta[16]; /* the model's config + the formulation, for checkpoints */
  char meta_values[16][32];
  size_t meta_count;
} sparq_toy_task;

/* Checks the config (batch and eval_rows 1..1<<20, p_uncond in [0, 1], the
 * GFT objective only with a gft model, the model's dim 2 and num_classes
 * SPARQ_TOY2D_CLASSES to match the toy), allocates the buffers and draws the
 * held-out batch from eval_seed. */
sparq_status sparq_toy_task_init(sparq_toy_task *task, sparq_toy_mlp *mlp, const sparq_toy2d *toy,
                                 const sparq_diffusion *diff, const sparq_toy_task_config *cfg);
void sparq_toy_task_free(sparq_toy_task *task);

/* The trainable view. Each micro-batch draws, from the trainer's data
 * stream and in this order: batch labels uniform over the K classes, x0
 * from the mixture (sparq_toy2d_sample), one uniform per row for label
 * dropout (label -> K with probability p_uncond), for GFT one uniform per
 * row for gft_beta, then time and noise (sparq_diffusion_training_batch);
 * it runs forward, the loss above and backward. eval is the same loss
 * without label dropout on the held-out batch (labels, x0, gft_beta, time
 * and noise drawn once at init) through the inference forward, so it is
 * deterministic. Checkpoints carry the model's config plus "schedule"
 * (vp|edm), "pred" (eps|x0|v) and "objective" (cfg|gft), the keys
 * sparq_dit_diffusion_from_metadata reads. */
void sparq_toy_task_trainable(sparq_toy_task *task, sparq_trainable *out);

/* The spec's section 8.1 training defaults: 20000 steps, batch via the
 * task, Adam lr 1e-3 constant (warm-up 0, min_lr = lr), betas 0.9 / 0.999,
 * eps 1e-8, weight decay 0, no clipping, EMA 0.999, evaluation every 1000
 * steps, a checkpoint only at the end; the caller sets seed and out_dir. */
sparq_train_config sparq_toy_train_config_default(void);

#ifdef __cplusplus
}
#endif
#endif
