/* Byte-level language modelling: a GPT (gpt.h) trained by the generic loop
 * (train.h) on a byte corpus (data.h). This is the glue the `sparq train lm`
 * command, its benchmark and the demo share. */
#ifndef SPARQ_LM_H
#define SPARQ_LM_H

#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/data.h"
#include "sparq/gpt.h"
#include "sparq/status.h"
#include "sparq/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sparq_lm_task {
  sparq_gpt *gpt;        /* borrowed */
  const uint8_t *train;  /* borrowed: training bytes */
  size_t train_size;
  const uint8_t *val;    /* borrowed: held-out bytes */
  size_t val_size;
  int64_t batch, seq;    /* micro-batch: batch windows of seq tokens */
  int64_t eval_batches;  /* held-out batches per evaluation */
  uint64_t eval_seed;    /* the held-out windows are drawn from this seed, the same every time */
  int32_t *x, *y;        /* batch x seq, owned */

  /* Class-conditional training (sparq_lm_task_set_classes); n_classes 0 otherwise. */
  const sparq_text_class *classes; /* borrowed */
  int n_classes;
  float p_uncond;        /* label dropout: a row's class becomes the null class with this probability */
  bool gft;              /* Guidance-Free Training instead of the plain conditional (CFG) objective */
  int32_t *labels, *null_labels;         /* [batch], owned */
  float *beta, *beta_in;                 /* GFT's drawn beta and the beta fed to the network [batch] */
  int32_t *targets;                      /* [batch, seq + 1]: the prefix row ignored */
  float *logits_u, *dlogits, *work;      /* [batch, seq + 1, V] (work twice that) */
  double gft_loss_s, gft_loss_u;         /* sums of the two extra losses over the step's micro-batches */
  int64_t gft_micros;
  /* Checkpoint metadata: the GPT's config, then "guidance" (cfg or gft),
   * "class_dropout_prob", "data" ("fortunes-classes") and "classes" (the
   * class names joined by ','). */
  sparq_metadata_entry meta[16];
  size_t meta_count;
  char p_uncond_text[32];
  char *class_names;                     /* owned */

  struct sparq_lm_moe *moe;              /* MoE training (sparq_lm_task_set_moe), owned; NULL otherwise */

  /* FP8 activations (sparq_lm_task_set_fp8_act): the step records' statistics. */
  bool fp8_act;
  int64_t fp8_steps;                     /* steps logged by this invocation */
  void (*fp8_inner_log)(void *self, char *buf, size_t size); /* the task's own log_extra */
  sparq_metadata_entry fp8_meta[24];     /* the task's checkpoint metadata plus "fp8_activations" */
} sparq_lm_task;

/* Checks sizes (seq <= block_size; both splits longer than seq + 1) and
 * allocates the batch buffers. */
sparq_status sparq_lm_task_init(sparq_lm_task *task, sparq_gpt *gpt, const uint8_t *train, size_t train_size,
                                const uint8_t *val, size_t val_size, int64_t batch, int64_t seq,
                                int64_t eval_batches, uint64_t eval_seed);
void sparq_lm_task_free(sparq_lm_task *task);

/* Makes the task class-conditional (after sparq_lm_task_init, whose byte
 * splits it then leaves unused): windows are drawn inside the classes
 * (sparq_text_class_batch), each row's class is dropped to the null class
 * with probability p_uncond, and the GPT (num_classes = count, and
 * gft_beta_dim > 0 when gft) gets the labels. Without gft the objective is
 * the plain conditional cross-entropy, the CFG baseline. With gft it is
 * GFT's (spec gft.md section 3 "Autoregressive", sparq_gpt_gft_loss):
 * beta ~ U(0, 1) per row, dropped rows fed beta 1 but combined with their
 * drawn beta (sparq_gft_draw_beta), l_u from sparq_gpt_infer with the null
 * class and beta 1; the step records then carry "loss_s" and "loss_u", the
 * cross-entropies of l_s and l_u alone. The held-out loss is the same
 * objective without label dropout on fixed held-out windows (GFT: with
 * beta drawn from the evaluation stream). Every class needs seq + 1 bytes in
 * both splits (SPARQ_ERR_ARG naming the class). */
sparq_status sparq_lm_task_set_classes(sparq_lm_task *task, const sparq_text_class *classes, int count,
                                       float p_uncond, bool gft);

/* Mixture-of-experts training (spec remoe.md) for a GPT with MoE blocks. */
typedef struct sparq_lm_moe_config {
  sparq_moe_l1 l1;       /* ReMoE's regulariser kind (relu router) */
  float lambda0, alpha;  /* the adaptive lambda (relu router; spec defaults 1e-8, 1.2) */
  float lambda_start;    /* > 0: start at this lambda (a resumed run's checkpointed value), else lambda0 */
  float aux;             /* TopK's aux-loss coefficient (topk router; spec 1e-2) */
  const char *log_path;  /* the per-step detail log (JSONL; NULL: none). A fresh run empties it; a
                            resumed one keeps the records of steps <= first_step */
  int64_t first_step;    /* the step the run starts after (0, or the resumed checkpoint's) */
} sparq_lm_moe_config;

/* Makes the task train the GPT's MoE blocks (after sparq_lm_task_init; the
 * plain byte task only). Every micro-batch runs with the objective
 *   loss = CE + lambda L_reg (relu) or CE + aux sum_l aux_l (topk)
 * (sparq_gpt_set_moe_objective; its value is the step record's "loss"),
 * and after every optimizer step lambda is updated from the step's
 * sparsity (the mean over micro-batches and MoE blocks of the training
 * forwards; sparq_moe_lambda). Each step record of log.jsonl adds
 * "loss_lm", "loss_reg" (L_reg, averaged over blocks), "lambda" (the value
 * the step used), "lambda_reg", "sparsity", "active_mean", "active_zero"
 * (share of (block, token) pairs with no expert), "load_max_mean" (the
 * largest max/mean expert-load ratio over blocks) and "aux_loss" (the
 * coefficient times the sum over blocks). The detail log adds per step the
 * per-block sparsity, the active-expert percentiles (p50, p99, max), every
 * block's per-expert load (share of tokens routed), max/mean ratio and the
 * count of experts under 1/64 of the uniform share. Checkpoints carry
 * "moe_l1", "moe_lambda" (after the step's update, "%.9g", so a resume is
 * bit-exact), "moe_lambda0", "moe_alpha" and "moe_aux". */
sparq_status sparq_lm_task_set_moe(sparq_lm_task *task, const sparq_lm_moe_config *cfg);
/* COAT's FP8 activations (spec coat-fp8.md section 4, sparq_gpt_set_fp8_activations)
 * for the task's GPT; fails (SPARQ_ERR_ARG) for an MoE model. With them on,
 * the first step of an invocation and every 50th after it run with
 * sparq_gpt_set_fp8_act_stats, and their step records gain, per saved
 * tensor kind K of gpt.h ("ln_1.in", "c_attn.in", ...),
 * "act_relmse.K" (relative MSE against the FP32 value) and "act_sat.K"
 * (share of entries at +-max), and checkpoints carry the metadata
 * "fp8_activations" = "true". Call after sparq_lm_task_set_classes/_moe and
 * before sparq_lm_task_trainable. */
sparq_status sparq_lm_task_set_fp8_act(sparq_lm_task *task, bool on);

/* Over the training forwards of this invocation: for every input byte
 * value, the mean number of active experts (per MoE block, averaged over
 * the blocks) and how often the byte was seen. */
sparq_status sparq_lm_task_moe_bytes(const sparq_lm_task *task, double mean_active[256], int64_t freq[256]);
/* The current lambda (0 without MoE training). */
float sparq_lm_task_moe_lambda(const sparq_lm_task *task);

/* The trainable view: train_micro draws a batch of random windows of the
 * training bytes from the trainer's data stream (sparq_text_batch), runs the
 * GPT forward and backward; eval is the mean loss over eval_batches fixed
 * random windows of the held-out bytes. Checkpoints get the GPT's config and
 * the lm_head alias. */
void sparq_lm_task_trainable(sparq_lm_task *task, sparq_trainable *out);

#ifdef __cplusplus
}
#endif
#endif
