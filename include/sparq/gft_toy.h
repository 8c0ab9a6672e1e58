/* The three-arm study of guidance-free training on the 2-D toy (spec
 * gft.md section 8.1): arm A trains the toy MLP with CFG's label dropout and
 * samples at w = 1 / beta, arm B trains GFT from scratch, arm C fine-tunes
 * A's EMA weights with GFT (beta projection zeroed, so C starts as A), and
 * the reference samples the exact eps*_u + w (eps*_c - eps*_u) with DDIM 500
 * steps. Every arm is scored with the exact metrics of toy_metrics.h over
 * all K classes from the same initial noise.
 *
 * Results do not depend on the thread count (the pieces below do not). */
#ifndef SPARQ_GFT_TOY_H
#define SPARQ_GFT_TOY_H

#include <stdbool.h>
#include <stdint.h>

#include "sparq/diffusion.h"
#include "sparq/status.h"
#include "sparq/toy2d.h"
#include "sparq/toy_metrics.h"
#include "sparq/toy_mlp.h"
#include "sparq/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_gft_toy_arm {
  SPARQ_GFT_TOY_CFG = 0,      /* A: CFG (label dropout 0.1), sampled with w = 1 / beta */
  SPARQ_GFT_TOY_SCRATCH = 1,  /* B: GFT from scratch */
  SPARQ_GFT_TOY_FINETUNE = 2, /* C: GFT fine-tuned from A's EMA weights */
} sparq_gft_toy_arm;

/* "A", "B", "C" (NULL for an unknown arm). */
const char *sparq_gft_toy_arm_name(sparq_gft_toy_arm arm);

/* ------------------------------------------------------------ training */

typedef struct sparq_gft_toy_train_config {
  sparq_gft_toy_arm arm;
  int64_t steps;       /* optimizer steps, >= 1 */
  uint64_t seed;       /* model initialisation and data stream */
  int64_t batch;       /* rows per step; default 512 */
  float ema;           /* EMA decay of the weights, in (0, 1); default 0.999 */
  const char *out_dir; /* the arm's run directory (checkpoints, log.jsonl) */
  /* Arm C only: the CFG model to start from (A's EMA weights; borrowed) and
   * A's run signature (sparq_gft_toy_train_result.signature), which becomes
   * part of C's, so a changed A invalidates C's checkpoint. NULL otherwise. */
  sparq_toy_mlp *init;
  const char *init_signature;
  bool quiet; /* no progress line from the training loop */
} sparq_gft_toy_train_config;

/* Arm A, 20000 steps, seed 0, batch 512, EMA 0.999, nothing else set. */
sparq_gft_toy_train_config sparq_gft_toy_train_config_default(void);

#define SPARQ_GFT_TOY_SIGNATURE_MAX 384

typedef struct sparq_gft_toy_train_result {
  bool reused;      /* an existing checkpoint matched and was loaded; nothing trained */
  /* Why an existing checkpoint was not reused ("" when there was none or
   * it was reused). */
  char note[256];
  /* Everything that determines the arm's weights (arm, objective, steps,
   * seed, batch, EMA, optimizer, model, formulation, for C A's signature),
   * stored as checkpoint metadata "gft_toy_run". */
  char signature[SPARQ_GFT_TOY_SIGNATURE_MAX];
  sparq_train_result train; /* the training run (zero when reused) */
} sparq_gft_toy_train_result;

/* Trains one arm into cfg->out_dir with sparq_train_run (spec 8.1: the toy
 * MLP 3 x 128 SiLU, Adam 1e-3 constant, EMA, checkpoint and log.jsonl
 * written atomically by the loop), or, when out_dir/ema.safetensors exists,
 * is complete (step == steps) and carries the same signature, loads it
 * instead. Either way *model (created here; free with sparq_toy_mlp_free)
 * holds the arm's EMA weights: the model to sample with. Arm C creates a
 * GFT model from cfg->seed and copies cfg->init into it with
 * sparq_toy_mlp_copy_from (beta projection zero), so at step 0 it computes
 * A's conditional output for every beta. diff must be the VP or EDM
 * formulation the arms share. Fails with SPARQ_ERR_ARG on bad arguments
 * (steps < 1, batch outside 1..1<<20, ema outside (0, 1), no out_dir, arm C
 * without init and init_signature or with a non-CFG init) and returns the
 * training loop's or the loader's failure otherwise. */
sparq_status sparq_gft_toy_train_arm(const sparq_toy2d *toy, const sparq_diffusion *diff,
                                     const sparq_gft_toy_train_config *cfg, sparq_toy_mlp **model,
                                     sparq_gft_toy_train_result *result);

/* ---------------------------------------------------------- evaluation */

typedef struct sparq_gft_toy_eval_config {
  int64_t n_per_class; /* samples per class (all K classes); default 10000 */
  int64_t steps;       /* DDIM steps of the learned arms; default 50 */
  int64_t ref_steps;   /* DDIM steps of the exact-CFG reference; default 500 */
  int64_t eps_n;       /* (t, x_t) draws of the eps error, labels uniform over the
                          classes; 0 (the default) = K n_per_class */
  uint64_t seed;       /* the shared initial noise and the eps error's draws; default 0 */
} sparq_gft_toy_eval_config;

sparq_gft_toy_eval_config sparq_gft_toy_eval_config_default(void);

/* The K n_per_class samples of one sweep point, classes in blocks: rows
 * [c n, (c + 1) n) are class c. */
int64_t sparq_gft_toy_eval_rows(const sparq_gft_toy_eval_config *cfg);

/* The initial noise every arm and the reference start from: unit normals
 * x [rows, 2] (rows = sparq_gft_toy_eval_rows) from cfg->seed on a stream
 * of its own. */
void sparq_gft_toy_noise(const sparq_gft_toy_eval_config *cfg, float *x);

/* The labels of the class blocks: y [rows] with y[i] = i / n_per_class. */
void sparq_gft_toy_labels(const sparq_gft_toy_eval_config *cfg, int32_t *y);

/* Metrics (ii)-(vii) of samples x [K n, 2] in class blocks against
 * reference samples ref [K n, 2] in the same blocks (may be NULL), combined
 * over the classes: each class block is scored with
 * sparq_toy_sample_metrics_eval and the endpoint distance, log density,
 * Bayes accuracy and energy distance are the means over the classes (the
 * energy distance is a per-class figure: the distance between the class's
 * sample and reference distributions); modes_covered and modes are the
 * sums, mode_coverage their ratio; nfe and seconds are stats' (the one
 * sampling call of all rows; may be NULL), seconds_per_sample over all
 * rows, n = K n. Fails like sparq_toy_sample_metrics_eval. */
sparq_status sparq_gft_toy_class_metrics(const sparq_toy2d *toy, const float *x, const float *ref,
                                         int64_t n_per_class, const sparq_sample_stats *stats,
                                         sparq_toy_sample_metrics *out);

/* One row of the study's table: an arm (or the reference) at one beta. */
typedef struct sparq_gft_toy_row {
  float beta;                 /* GFT temperature of the sweep point */
  float w;                    /* its CFG scale 1 / beta */
  sparq_toy_eps_error eps;    /* (i), against eps_w* with labels uniform over the classes */
  sparq_toy_sample_metrics m; /* (ii)-(vii) over the K classes (sparq_gft_toy_class_metrics) */
} sparq_gft_toy_row;

/* The exact-CFG reference at beta in (0, 1]: DDIM ref_steps from the shared
 * noise with sparq_toy2d_exact_denoiser at w = 1 / beta, written to
 * ref [K n, 2]; row (may be NULL) gets its eps error (rounding only) and
 * its own metrics (no reference: endpoint and energy distance NaN). */
sparq_status sparq_gft_toy_reference(const sparq_toy2d *toy, const sparq_diffusion *diff,
                                     const sparq_gft_toy_eval_config *cfg, float beta, float *ref,
                                     sparq_gft_toy_row *row);

/* One learned arm at beta in (0, 1]: a CFG network (gft false) samples
 * with cfg_scale w = 1 / beta (2 NFE per step unless beta = 1), a GFT
 * network (gft true) with cfg_scale 1 and gft_beta = beta on every row
 * (1 NFE per step); DDIM cfg->steps from the shared noise. Scores the eps
 * error the same way (sparq_toy_eps_error_eval) and the samples against
 * ref (from sparq_gft_toy_reference at the same beta; may be NULL).
 * samples (may be NULL) gets the K n samples. */
sparq_status sparq_gft_toy_eval_arm(const sparq_toy2d *toy, const sparq_diffusion *diff, const sparq_denoiser *net,
                                    bool gft, const sparq_gft_toy_eval_config *cfg, float beta, const float *ref,
                                    sparq_gft_toy_row *row, float *samples);

#ifdef __cplusplus
}
#endif
#endif
