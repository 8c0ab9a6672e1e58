/* Training: optimizers, the learning-rate schedule, gradient clipping,
 * checkpoints and the model-agnostic training loop.
 *
 * Everything walks a sparq_param_list (nn.h): one flat parameter buffer,
 * one flat gradient buffer, and optimizer states laid out the same way. */
#ifndef SPARQ_TRAIN_H
#define SPARQ_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sparq/base.h"
#include "sparq/coat.h"
#include "sparq/io.h"
#include "sparq/nn.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- AdamW */

typedef struct sparq_adamw_config {
  float beta1;        /* default 0.9 */
  float beta2;        /* default 0.95 (nanoGPT) */
  float eps;          /* default 1e-8 */
  float weight_decay; /* default 0.1 (nanoGPT); applied to parameters with decay set */
} sparq_adamw_config;

sparq_adamw_config sparq_adamw_config_default(void);

/* The moments, laid out like the parameter list's flat buffer. */
typedef struct sparq_adamw_state {
  float *exp_avg;    /* m, `numel` floats, owned */
  float *exp_avg_sq; /* v, `numel` floats, owned */
  size_t numel;
  int64_t step;      /* updates done so far (PyTorch's state['step']) */
} sparq_adamw_state;

/* Zeroed moments for `pl` (allocated). */
sparq_status sparq_adamw_init(sparq_adamw_state *st, const sparq_param_list *pl);
void sparq_adamw_free(sparq_adamw_state *st);

/* One update with PyTorch's torch.optim.AdamW semantics (single-tensor path),
 * step t = st->step + 1:
 *   p *= 1 - lr * wd            (only parameters with decay set)
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g^2
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * Elementwise, so the result does not depend on the thread count. */
sparq_status sparq_adamw_step(sparq_adamw_state *st, sparq_param_list *pl, const sparq_adamw_config *cfg, float lr);

/* SignGD (the sign-gradient method of spec signgd.md, with decoupled weight
 * decay like AdamW): p *= 1 - lr * wd (decay parameters); p -= lr * sign(g),
 * sign(0) = 0. Stateless. */
void sparq_signgd_step(sparq_param_list *pl, float weight_decay, float lr);

/* Signum's momentum for SignGD (optional): m = beta m + (1 - beta) g, then
 * g = m, so the following sparq_signgd_step moves by lr * sign(m).
 * `momentum` has the list's flat layout (pl->numel floats, zero at first). */
void sparq_signgd_momentum(sparq_param_list *pl, float *momentum, float beta);

/* ----------------------------------------------------- schedule, clip */

/* nanoGPT's get_lr: linear warm-up lr * (it + 1) / (warmup + 1) for
 * it < warmup, then cosine from lr down to min_lr at it = decay_iters, and
 * min_lr after. it counts from 0. */
float sparq_lr_cosine(int64_t it, float lr, float min_lr, int64_t warmup, int64_t decay_iters);

/* Global L2 norm of all gradients (accumulated in double in a fixed order,
 * so it does not depend on the thread count). When max_norm > 0 and the
 * norm exceeds it, every gradient is scaled by max_norm / (norm + 1e-6)
 * (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping; a
 * non-finite norm leaves the gradients untouched. */
double sparq_grad_clip(sparq_param_list *pl, float max_norm);

/* -------------------------------------------------------- checkpoints */

/* Writes one safetensors file atomically (temporary file, fsync, rename):
 * every parameter as F32 under its name, every alias, the AdamW moments (when
 * adam is non-NULL) as "optimizer.exp_avg.<name>" and
 * "optimizer.exp_avg_sq.<name>", and `meta` as __metadata__. */
sparq_status sparq_checkpoint_save(const char *path, const sparq_param_list *pl, const sparq_adamw_state *adam,
                                   const sparq_ckpt_alias *aliases, size_t alias_count,
                                   const sparq_metadata_entry *meta, size_t meta_count);

/* Reads the parameters of `pl` (every one must be present with the same
 * shape; F32, F16, BF16 or F64 data is converted to FP32) and, when adam is
 * non-NULL, the moments (which must be present then). Tensors the list does
 * not know are ignored (aliases, buffers). A missing tensor or a shape
 * mismatch fails with a message naming the file and the tensor; on failure
 * the parameters may be partly overwritten. When st_out is non-NULL the
 * opened file is returned for reading metadata (close it with
 * sparq_safetensors_close). */
sparq_status sparq_checkpoint_load(const char *path, sparq_param_list *pl, sparq_adamw_state *adam,
                                   sparq_safetensors **st_out);

/* A per-parameter state laid out like the list's flat buffer (numel floats
 * at the parameters' offsets), stored as "<prefix><name>" for every
 * parameter: the AdamW moments ("optimizer.exp_avg." and
 * "optimizer.exp_avg_sq."), the EMA weights ("ema."). */
typedef struct sparq_ckpt_state {
  const char *prefix; /* non-empty, shorter than 64 bytes */
  float *data;        /* borrowed; written by the loader */
  size_t numel;       /* must equal the list's numel */
} sparq_ckpt_state;

/* sparq_checkpoint_save / _load with any set of states (at most 8) in
 * place of the AdamW moments; the same atomic write, the same checks
 * (a missing "<prefix><name>" fails naming it) and conversions. */
sparq_status sparq_checkpoint_save_states(const char *path, const sparq_param_list *pl,
                                          const sparq_ckpt_state *states, size_t nstates,
                                          const sparq_ckpt_alias *aliases, size_t alias_count,
                                          const sparq_metadata_entry *meta, size_t meta_count);
sparq_status sparq_checkpoint_load_states(const char *path, sparq_param_list *pl, const sparq_ckpt_state *states,
                                          size_t nstates, sparq_safetensors **st_out);

/* A tensor of any dtype stored under its full name, copied byte for byte
 * (never converted): the FP8 optimizer's codes (F8_E4M3 / F8_E5M2) and its
 * per-group FP32 scales, k and c. */
typedef struct sparq_ckpt_tensor {
  const char *name;               /* full tensor name, unique in the file; borrowed */
  sparq_dtype dtype;
  int ndim;                       /* 1..SPARQ_MAX_DIMS */
  int64_t shape[SPARQ_MAX_DIMS];  /* >= 0 each */
  void *data;                     /* numel * dtype size bytes, borrowed; written by the loader */
} sparq_ckpt_tensor;

/* sparq_checkpoint_save_states plus `ntensors` typed tensors (after the
 * states, in the given order). Bad descriptions fail with SPARQ_ERR_ARG. */
sparq_status sparq_checkpoint_save_ex(const char *path, const sparq_param_list *pl, const sparq_ckpt_state *states,
                                      size_t nstates, const sparq_ckpt_tensor *tensors, size_t ntensors,
                                      const sparq_ckpt_alias *aliases, size_t alias_count,
                                      const sparq_metadata_entry *meta, size_t meta_count);
/* sparq_checkpoint_load_states plus typed tensors: each must be present
 * with exactly its dtype and shape (and the bytes they make), else
 * SPARQ_ERR_NOT_FOUND / SPARQ_ERR_FORMAT naming the file and the tensor.
 * Everything is checked before anything is written. */
sparq_status sparq_checkpoint_load_ex(const char *path, sparq_param_list *pl, const sparq_ckpt_state *states,
                                      size_t nstates, const sparq_ckpt_tensor *tensors, size_t ntensors,
                                      sparq_safetensors **st_out);
/* The same reading from an already opened file (st stays open). */
sparq_status sparq_checkpoint_read(const sparq_safetensors *st, sparq_param_list *pl, const sparq_ckpt_state *states,
                                   size_t nstates, const sparq_ckpt_tensor *tensors, size_t ntensors);

/* Writes the parameters alone (no optimizer state, no aliases) as F32, F16
 * or BF16 (round to nearest even), atomically, with `meta` plus "format" =
 * "parameters-f32|f16|bf16" as metadata: the shipped form of a model, which
 * sparq_checkpoint_load reads back (converting to FP32). */
sparq_status sparq_params_export(const char *path, const sparq_param_list *pl, sparq_dtype dtype,
                                 const sparq_metadata_entry *meta, size_t meta_count);

/* --------------------------------------------------------------- EMA */

/* ema = decay * ema + (1 - decay) * param over the list's flat layout
 * (facebookresearch/DiT's update_ema; frozen parameters are copied, the
 * padding stays 0). decay 0 copies the parameters. Elementwise, so the
 * result does not depend on the thread count. */
void sparq_ema_update(float *ema, const sparq_param_list *pl, float decay);

/* ----------------------------------------------------- training loop */

typedef enum sparq_optim {
  SPARQ_OPTIM_ADAMW = 0,
  SPARQ_OPTIM_SIGNGD = 1,
  SPARQ_OPTIM_ADAMW_FP8 = 2,       /* COAT: FP8 m and v with Dynamic Range Expansion (coat.h) */
  SPARQ_OPTIM_ADAMW_FP8_NODRE = 3, /* FP8 m and v, plain per-group scaling (the spec's run (b)) */
} sparq_optim;

/* "adamw", "signgd", "adamw-fp8", "adamw-fp8-nodre" (the CLI's --optim and
 * the checkpoint's "optim" metadata); NULL for an unknown value. */
const char *sparq_optim_name(sparq_optim optim);

typedef struct sparq_train_config {
  int64_t steps;        /* optimizer steps in total: the schedule's horizon and the run's end */
  int64_t stop_at;      /* end this invocation after this step (0: at `steps`); a later
                           resume continues as if the run had not stopped */
  int64_t warmup;       /* warm-up steps of the schedule */
  int64_t accum;        /* micro-batches per step (gradient accumulation), >= 1 */
  int64_t eval_every;   /* held-out evaluation every N steps and at the end (0: only at the end) */
  int64_t ckpt_every;   /* checkpoint every N steps and at the end (0: only at the end) */
  float lr, min_lr;     /* peak and final learning rate of the cosine schedule */
  float clip;           /* global-norm clipping threshold (0: off) */
  sparq_optim optim;
  sparq_adamw_config adamw; /* its weight_decay is also SignGD's */
  float momentum;       /* SignGD only: 0 = sign of the gradient; in (0, 1) = Signum, the
                           sign of m = momentum m + (1 - momentum) g (m is checkpointed
                           as optimizer.exp_avg.<name>) */
  /* FP8 optimizers only (SPARQ_OPTIM_ADAMW_FP8 / _NODRE); zero = E4M3 / E4M3, no shadow */
  sparq_fp8_format fp8_m_format; /* first moment's codes */
  sparq_fp8_format fp8_v_format; /* second moment's codes */
  bool fp8_shadow;      /* also step FP32 moments on the same gradients and log the relative
                           errors against them in RUN_DIR/coat.jsonl (debug; slower, more memory) */
  float ema;            /* EMA decay of the weights (0: no EMA). The average starts as a copy
                           of the weights, is updated after every optimizer step, is stored in
                           ckpt.safetensors as "ema.<name>" and alone, under the model's own
                           names, in RUN_DIR/ema.safetensors (the weights to sample with) */
  uint64_t seed;        /* the data stream's seed */
  const char *out_dir;  /* RUN_DIR: log.jsonl and ckpt.safetensors go here (created if missing) */
  bool resume;          /* continue from RUN_DIR/ckpt.safetensors */
  bool quiet;           /* no progress line */
} sparq_train_config;

/* A model as the trainer sees it. */
typedef struct sparq_trainable {
  void *self;
  sparq_param_list *params;
  /* One micro-batch: draw it from `data_rng` (the trainer's data stream,
   * saved in checkpoints), run forward and backward, and add
   * dloss * d(mean loss)/d(param) into the gradients. *loss = the mean loss. */
  sparq_status (*train_micro)(void *self, sparq_rng *data_rng, float dloss, float *loss);
  /* The held-out loss; must be deterministic (same value every call for the
   * same parameters). */
  sparq_status (*eval)(void *self, float *loss);
  /* Optional (may be NULL): the model's own fields for the step record,
   * written into buf as ',"key":value' pairs (e.g. GFT's two extra
   * losses), called once per step after the optimizer; it may reset what it
   * accumulated over the step's micro-batches. */
  void (*log_extra)(void *self, char *buf, size_t size);
  int64_t tokens_per_micro; /* for the tokens/s figure (0: not shown) */
  const sparq_ckpt_alias *aliases; /* written into every checkpoint */
  size_t alias_count;
  const sparq_metadata_entry *meta; /* the model's config, stored in every checkpoint */
  size_t meta_count;
  /* Optional (may be NULL: 0): bytes the model keeps for backward after its
   * last training forward (saved activations), for the memory ledger. The
   * trainer calls it after every micro-batch and keeps the largest value. */
  size_t (*activation_bytes)(void *self);
} sparq_trainable;

/* The memory ledger of a run (spec coat-fp8.md section 7), in bytes. */
typedef struct sparq_memory_ledger {
  size_t params_bytes;          /* 4 x parameter elements (padding excluded) */
  size_t grads_bytes;           /* 4 x parameter elements */
  size_t optimizer_state_bytes; /* AdamW 8 x elements; SignGD 4 x elements with momentum, else 0;
                                   FP8 AdamW sparq_adamw_fp8_state_bytes (no shadow) */
  size_t activation_bytes;      /* the model's saved activations (largest seen; 0 when not reported) */
  size_t total_bytes;           /* the sum of the four */
  bool activations_reported;    /* the model reports its saved activations (sparq_trainable's
                                   activation_bytes is set); false: activation_bytes is unknown,
                                   written as null in memory.json, and total_bytes leaves it out */
} sparq_memory_ledger;

/* The ledger of training `pl` with `optim` (momentum > 0: SignGD keeps a
 * momentum buffer) and `activation_bytes` of saved activations (reported:
 * activations_reported is set true). Pure. */
sparq_memory_ledger sparq_memory_ledger_make(const sparq_param_list *pl, sparq_optim optim, float momentum,
                                             size_t activation_bytes);

/* What a finished run reports. */
typedef struct sparq_train_result {
  int64_t steps_done;    /* the step the run ended at */
  float last_loss;       /* training loss of the last step */
  float last_eval;       /* held-out loss of the last evaluation (NaN if none) */
  double tokens_per_s;   /* over the steps of this invocation */
  double seconds;        /* wall time of this invocation */
  sparq_memory_ledger memory; /* as written to RUN_DIR/memory.json */
  size_t peak_rss_bytes;  /* getrusage's maximum resident set size */
  size_t rss_start_bytes; /* resident set size when the run started (0 if unknown) */
  sparq_adamw_fp8_counters fp8; /* FP8 optimizers: the last step's counters */
} sparq_train_result;

/* Runs the loop: for each step, accum micro-batches (dloss = 1/accum), grad
 * clipping, the optimizer with the scheduled lr; a JSONL record per step to
 * RUN_DIR/log.jsonl ({"step","loss","lr","grad_norm","tokens_per_s",
 * "elapsed"}, plus "activation_bytes" (the step's saved activations) when
 * the model reports them and "nan_params","nan_m","nan_v","v_flush" with
 * an FP8 optimizer) and per evaluation ({"step","eval_loss"}); checkpoints
 * (atomic) with the step, config, data-stream position and optimizer
 * moments. The FP8 optimizers store, per trainable parameter <name>, COAT's
 * state tensors "optimizer.exp_avg.<name>" (codes, F8_E4M3 or F8_E5M2, the
 * parameter's shape), "optimizer.scale_exp_avg.<name>",
 * "optimizer.expand_exp_avg.<name>" (k) and
 * "optimizer.sqrtminmax_exp_avg.<name>" (c) (F32, [ceil(N/128)]), the same
 * with exp_avg_sq, the metadata "optim", "fp8_m_format", "fp8_v_format",
 * "fp8_group", and with fp8_shadow the FP32 shadow as
 * "fp8_shadow.exp_avg.<name>" / "fp8_shadow.exp_avg_sq.<name>" (a resume
 * without them starts the shadow from the dequantised state). Every 50
 * steps and at the run's last step (`steps`, so a stopped and resumed run
 * logs the same lines) one JSON line per trainable tensor goes to
 * RUN_DIR/coat.jsonl: {"step","name","k_bin_width","k_hist_m","k_hist_v",
 * "frac_k_lt1_m","frac_k_lt1_v","zero_frac_m","zero_frac_v"} and with the
 * shadow "relmse_m","relmse_v","relmse_update".
 * The memory ledger (sparq_memory_ledger_make with the largest
 * activation_bytes seen) is printed to stderr after the first step of the
 * invocation (unless quiet), when the saved activations are known, and the
 * run's end writes RUN_DIR/memory.json atomically as one JSON line with
 * "params_bytes","grads_bytes","optimizer_state_bytes","activation_bytes",
 * "total_bytes","peak_rss_bytes" (getrusage) and "rss_start_bytes" (VmRSS
 * at the start, 0 if unreadable). A NaN or Inf loss or gradient norm stops the run with
 * SPARQ_ERR_FORMAT and a message naming the step, without taking that step
 * or writing a checkpoint. With resume, the checkpoint's step, moments and
 * data position are restored (the model's tensors too), log records past
 * that step are dropped, and the run continues bit-exactly as if it had not
 * stopped (same thread count). Resuming with another optimizer or other
 * FP8 formats than the checkpoint's fails with SPARQ_ERR_ARG naming both. */
sparq_status sparq_train_run(const sparq_train_config *cfg, sparq_trainable *model, sparq_train_result *result);

#ifdef __cplusplus
}
#endif
#endif
