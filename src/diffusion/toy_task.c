/* Training glue of the 2-D toy: mixture samples + diffusion formulation +
 * toy MLP -> sparq_trainable, with CFG's label dropout or the GFT
 * objective (spec gft.md sections 3 and 8.1). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sparq/gft.h"
#include "sparq/toy_mlp.h"

/* The held-out batch comes from its own stream of eval_seed. */
#define EVAL_STREAM 0x6576616cu /* "eval" */
#define TOY_MAX_ROWS (1 << 20)

sparq_toy_task_config sparq_toy_task_config_default(void) {
  sparq_toy_task_config c = {.batch = 512, .p_uncond = 0.1f, .objective = SPARQ_TOY_OBJ_CFG, .eval_rows = 4096,
                             .eval_seed = 1234};
  return c;
}

sparq_train_config sparq_toy_train_config_default(void) {
  sparq_adamw_config adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
  sparq_train_config c = {.steps = 20000, .warmup = 0, .accum = 1, .eval_every = 1000, .ckpt_every = 0,
                          .lr = 1e-3f, .min_lr = 1e-3f, .clip = 0.0f, .optim = SPARQ_OPTIM_ADAMW, .adamw = adam,
                          .ema = 0.999f};
  return c;
}

static void task_meta(sparq_toy_task *t, const char *key, const char *value) {
  const size_t i = t->meta_count++;
  snprintf(t->meta_values[i], sizeof t->meta_values[i], "%s", value);
  t->meta[i] = (sparq_metadata_entry){key, t->meta_values[i]};
}

void sparq_toy_task_free(sparq_toy_task *t) {
  if (!t) return;
  void *bufs[] = {t->y,     t->beta,   t->beta_in, t->x0,   t->net_x,     t->net_t,     t->target,
                  t->weight, t->out,   t->out_u,   t->dout, t->ev_y,      t->ev_beta,   t->ev_x,
                  t->ev_t,  t->ev_target, t->ev_weight, t->null_y};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sparq_free(bufs[i]);
  memset(t, 0, sizeof *t);
}

/* Labels uniform over the K classes, then x0 from the mixture. */
static void draw_data(const sparq_toy_task *t, sparq_rng *rng, int64_t n, int32_t *y, float *x0) {
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)sparq_rng_below(rng, SPARQ_TOY2D_CLASSES);
  sparq_toy2d_sample(t->toy, y, n, rng, x0);
}

sparq_status sparq_toy_task_init(sparq_toy_task *t, sparq_toy_mlp *mlp, const sparq_toy2d *toy,
                                 const sparq_diffusion *diff, const sparq_toy_task_config *cfg) {
  static const char who[] = "toy task";
  if (!t || !mlp || !toy || !diff || !cfg) return sparq_fail(SPARQ_ERR_ARG, "sparq_toy_task_init: NULL argument");
  memset(t, 0, sizeof *t);
  const sparq_toy_mlp_config *mc = sparq_toy_mlp_get_config(mlp);
  if (cfg->batch < 1 || cfg->batch > TOY_MAX_ROWS)
    return sparq_fail(SPARQ_ERR_ARG, "%s: batch %" PRId64 " is outside 1..%d", who, cfg->batch, TOY_MAX_ROWS);
  if (cfg->eval_rows < 1 || cfg->eval_rows > TOY_MAX_ROWS)
    return sparq_fail(SPARQ_ERR_ARG, "%s: eval_rows %" PRId64 " is outside 1..%d", who, cfg->eval_rows,
                      TOY_MAX_ROWS);
  if (!(cfg->p_uncond >= 0.0f && cfg->p_uncond <= 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: p_uncond %g is outside [0, 1]", who, (double)cfg->p_uncond);
  if (cfg->objective != SPARQ_TOY_OBJ_CFG && cfg->objective != SPARQ_TOY_OBJ_GFT)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown objective %d", who, (int)cfg->objective);
  if (cfg->objective == SPARQ_TOY_OBJ_GFT && !mc->gft)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the GFT objective needs a model with the gft_beta input", who);
  if (mc->dim != 2 || mc->num_classes != SPARQ_TOY2D_CLASSES)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the model has dim %" PRId64 " and %" PRId64 " classes; the toy has 2 and %d",
                      who, mc->dim, mc->num_classes, SPARQ_TOY2D_CLASSES);
  const size_t b = (size_t)cfg->batch, e = (size_t)cfg->eval_rows, big = b > e ? b : e;
  t->y = sparq_alloc(b * sizeof(int32_t), "toy batch");
  t->beta = sparq_alloc(b * sizeof(float), "toy batch");
  t->beta_in = sparq_alloc(b * sizeof(float), "toy batch");
  t->x0 = sparq_alloc(2 * big * sizeof(float), "toy batch"); /* also the held-out x0 at init */
  t->net_x = sparq_alloc(2 * b * sizeof(float), "toy batch");
  t->net_t = sparq_alloc(b * sizeof(float), "toy batch");
  t->target = sparq_alloc(2 * b * sizeof(float), "toy batch");
  t->weight = sparq_alloc(b * sizeof(float), "toy batch");
  t->out = sparq_alloc(2 * big * sizeof(float), "toy batch");
  t->out_u = sparq_alloc(2 * big * sizeof(float), "toy batch");
  t->dout = sparq_alloc(2 * b * sizeof(float), "toy batch");
  t->ev_y = sparq_alloc(e * sizeof(int32_t), "toy held-out batch");
  t->ev_beta = sparq_alloc(e * sizeof(float), "toy held-out batch");
  t->ev_x = sparq_alloc(2 * e * sizeof(float), "toy held-out batch");
  t->ev_t = sparq_alloc(e * sizeof(float), "toy held-out batch");
  t->ev_target = sparq_alloc(2 * e * sizeof(float), "toy held-out batch");
  t->ev_weight = sparq_alloc(e * sizeof(float), "toy held-out batch");
  t->null_y = sparq_alloc(big * sizeof(int32_t), "toy batch");
  if (!t->y || !t->beta || !t->beta_in || !t->x0 || !t->net_x || !t->net_t || !t->target || !t->weight ||
      !t->out || !t->out_u || !t->dout || !t->ev_y || !t->ev_beta || !t->ev_x || !t->ev_t || !t->ev_target ||
      !t->ev_weight || !t->null_y) {
    sparq_toy_task_free(t);
    return SPARQ_ERR_NOMEM;
  }
  t->mlp = mlp, t->toy = toy, t->diff = diff, t->cfg = *cfg, t->ev_rows = cfg->eval_rows;
  for (size_t i = 0; i < big; i++) t->null_y[i] = (int32_t)mc->num_classes;

  /* the held-out batch, once: no label dropout, so beta is fed as drawn */
  sparq_rng rng = sparq_rng_make(cfg->eval_seed, EVAL_STREAM);
  draw_data(t, &rng, cfg->eval_rows, t->ev_y, t->x0);
  for (int64_t i = 0; i < cfg->eval_rows; i++) t->ev_beta[i] = sparq_rng_uniform(&rng);
  sparq_status s = sparq_diffusion_training_batch(diff, t->x0, cfg->eval_rows, 2, &rng, t->ev_x, t->ev_t,
                                                  t->ev_target, t->ev_weight);
  if (s) {
    sparq_toy_task_free(t);
    return s;
  }

  const sparq_metadata_entry *mm = NULL;
  size_t mn = 0;
  sparq_toy_mlp_checkpoint_info(mlp, NULL, NULL, &mm, &mn);
  for (size_t i = 0; i < mn && t->meta_count < 12; i++) t->meta[t->meta_count++] = mm[i];
  task_meta(t, "schedule", sparq_diff_kind_name(diff->kind));
  task_meta(t, "pred", sparq_diff_pred_name(diff->pred));
  task_meta(t, "objective", cfg->objective == SPARQ_TOY_OBJ_GFT ? "gft" : "cfg");
  return SPARQ_OK;
}

/* The detached unconditional pass of GFT: null label, gft_beta 1. */
static sparq_status uncond_pass(sparq_toy_task *t, const float *x, const float *tt, int64_t n) {
  return sparq_toy_mlp_infer(t->mlp, x, tt, t->null_y, NULL, n, t->out_u);
}

static sparq_status toy_train_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  sparq_toy_task *t = self;
  const int64_t n = t->cfg.batch;
  const int32_t null_class = (int32_t)sparq_toy_mlp_get_config(t->mlp)->num_classes;
  const bool gft = t->cfg.objective == SPARQ_TOY_OBJ_GFT;
  draw_data(t, rng, n, t->y, t->x0);
  /* drawn after the data so x0 does not depend on p_uncond */
  for (int64_t i = 0; i < n; i++)
    if (sparq_rng_uniform(rng) < t->cfg.p_uncond) t->y[i] = null_class;
  if (gft) sparq_gft_draw_beta(rng, n, t->y, null_class, t->beta, t->beta_in);
  sparq_status s =
      sparq_diffusion_training_batch(t->diff, t->x0, n, 2, rng, t->net_x, t->net_t, t->target, t->weight);
  if (!s) s = sparq_toy_mlp_forward(t->mlp, t->net_x, t->net_t, t->y, gft ? t->beta_in : NULL, n, t->out);
  if (!s && gft) s = uncond_pass(t, t->net_x, t->net_t, n);
  if (s) return s;
  *loss = (float)sparq_gft_loss(n, 2, gft ? t->beta : NULL, t->out, t->out_u, t->target, t->weight, dloss,
                                t->dout);
  return sparq_toy_mlp_backward(t->mlp, t->dout);
}

static sparq_status toy_eval(void *self, float *loss) {
  sparq_toy_task *t = self;
  const int64_t n = t->ev_rows;
  const bool gft = t->cfg.objective == SPARQ_TOY_OBJ_GFT;
  sparq_status s = sparq_toy_mlp_infer(t->mlp, t->ev_x, t->ev_t, t->ev_y, gft ? t->ev_beta : NULL, n, t->out);
  if (!s && gft) s = uncond_pass(t, t->ev_x, t->ev_t, n);
  if (s) return s;
  *loss = (float)sparq_gft_loss(n, 2, gft ? t->ev_beta : NULL, t->out, t->out_u, t->ev_target, t->ev_weight, 0.0f,
                                NULL);
  return SPARQ_OK;
}

void sparq_toy_task_trainable(sparq_toy_task *t, sparq_trainable *out) {
  memset(out, 0, sizeof *out);
  out->self = t;
  out->params = sparq_toy_mlp_params(t->mlp);
  out->train_micro = toy_train_micro;
  out->eval = toy_eval;
  out->tokens_per_micro = t->cfg.batch; /* samples/s on the progress line */
  out->meta = t->meta;
  out->meta_count = t->meta_count;
}
