/* Image diffusion with a DiT: the training glue (DiT + diffusion
 * formulation + labelled images -> sparq_trainable, with CFG's label
 * dropout) and the DiT as a sampler's network (sparq_denoiser). This is
 * what `sparq train dit`, `sparq sample` and `sparq eval fd` share. */
#ifndef SPARQ_DIT_TASK_H
#define SPARQ_DIT_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "sparq/attention.h"
#include "sparq/base.h"
#include "sparq/diffusion.h"
#include "sparq/dit.h"
#include "sparq/io.h"
#include "sparq/status.h"
#include "sparq/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sparq_dit_task {
  sparq_dit *dit;                /* borrowed */
  const sparq_diffusion *diff;   /* borrowed */
  const float *images;           /* borrowed: n_images x C x H x W training images in [-1, 1] */
  const int32_t *labels;         /* borrowed: n_images labels in 0..num_classes-1 */
  int64_t n_images;
  const float *val_images;       /* borrowed: held-out images and labels */
  const int32_t *val_labels;
  int64_t n_val;
  int64_t batch;                 /* rows per micro-batch */
  float p_uncond;                /* label dropout: a row's label becomes the null class with this probability */
  int64_t eval_batches;          /* held-out batches per evaluation */
  uint64_t eval_seed;            /* the held-out rows, times and noise come from this seed, the same every time */
  int64_t dim;                   /* C * H * W */
  bool gft;                      /* Guidance-free training (sparq_dit_task_set_gft) */
  double gft_loss_s, gft_loss_u; /* sums over the step's micro-batches of the two logged losses */
  int64_t gft_micros;
  /* batch-sized buffers, owned */
  float *x0, *net_x, *net_t, *target, *weight, *out;
  float *beta, *beta_in, *ones; /* GFT only: drawn and fed temperatures, 1 per row */
  float *out_u; /* GFT only: the last micro-batch's unconditional pass (null label, beta 1) */
  int32_t *y, *null_y;
  sparq_metadata_entry meta[24]; /* the DiT's config + the formulation, for checkpoints */
  char meta_values[24][48];
  size_t meta_count;
} sparq_dit_task;

/* Checks that the images fit the DiT (C, H = W = input_size), labels are in
 * range, batch >= 1, 0 <= p_uncond <= 1, eval_batches >= 1; allocates the
 * batch buffers. */
sparq_status sparq_dit_task_init(sparq_dit_task *task, sparq_dit *dit, const sparq_diffusion *diff,
                                 const float *images, const int32_t *labels, int64_t n_images,
                                 const float *val_images, const int32_t *val_labels, int64_t n_val, int64_t batch,
                                 float p_uncond, int64_t eval_batches, uint64_t eval_seed);
void sparq_dit_task_free(sparq_dit_task *task);

/* Switches the objective to Guidance-Free Training (spec gft.md sections
 * 2-3; the DiT needs extra_dim > 0, its extra input being gft_beta): each
 * row draws beta ~ U(0, 1) after its label dropout; dropped rows feed
 * beta = 1 to the network but keep the drawn beta in the combination
 *   eps^ = beta out_s + (1 - beta) sg[out_u],
 * out_s the training forward with (label, beta), out_u the no-grad
 * inference forward with (null label, 1) that stores nothing; the loss is
 * the weighted MSE of eps^ against the target, so d loss / d out_s carries
 * the factor beta and nothing flows into out_u. The held-out loss uses the
 * same rule with fixed draws. Checkpoints record "guidance" = "gft". Each
 * step record of the log gains "loss_s" and "loss_u": the same weighted MSE
 * of out_s and of out_u alone against the target (spec section 3 step 7;
 * no gradient), averaged over the step's micro-batches. */
sparq_status sparq_dit_task_set_gft(sparq_dit_task *task);

/* The trainable view. A micro-batch draws `batch` training images
 * uniformly (with replacement) from the data stream, drops labels with
 * p_uncond, draws times and noise (sparq_diffusion_training_batch), and
 * minimises mean_rows weight * mean_dim (out - target)^2. eval is the same
 * loss without label dropout over eval_batches fixed held-out batches.
 * Checkpoints carry the DiT's config plus "schedule" and "pred". */
void sparq_dit_task_trainable(sparq_dit_task *task, sparq_trainable *out);

/* The formulation stored in a checkpoint's metadata ("schedule": vp|edm,
 * "pred": eps|x0|v), for sampling. Fails naming the key when absent or bad. */
sparq_status sparq_dit_diffusion_from_metadata(const sparq_safetensors *st, sparq_diffusion *out);

/* A DiT as a sampler's network: rows are flattened C x H x W images, the
 * DiT runs in chunks of at most `chunk` rows (bounding the activation
 * memory) with the attention variant `attn`. The struct must outlive the
 * denoiser. */
typedef struct sparq_dit_sampler_net {
  sparq_dit *dit;
  sparq_attn_variant attn;
  int64_t chunk;
} sparq_dit_sampler_net;
void sparq_dit_denoiser(sparq_dit_sampler_net *net, sparq_denoiser *out);

#ifdef __cplusplus
}
#endif
#endif
