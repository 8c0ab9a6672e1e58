/* sparq train dit --data toy2d: the 2-D class-conditional mixture of spec
 * gft.md 8.1 with the MLP denoiser, and its exact evaluation at the end:
 * the epsilon error against the exact CFG target at a few scales, and
 * DDIM samples scored against the exact-CFG reference sampler. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

/* The guidance scales the end-of-run table reports. */
static const float kScales[] = {1.0f, 2.0f, 4.0f};
#define N_SCALES (sizeof kScales / sizeof kScales[0])
#define EVAL_SAMPLES 2000

/* Scores the learned model's DDIM samples of class 0 at scale w against the
 * exact-CFG DDIM reference from the same noise (spec 8.1 metrics ii-vii). */
static sparq_status sample_metrics(const sparq_toy2d *toy, const sparq_diffusion *d, sparq_denoiser *net,
                                   sparq_denoiser *exact, float w, bool gft, sparq_toy_sample_metrics *out) {
  float x[2 * EVAL_SAMPLES], ref[2 * EVAL_SAMPLES], beta[EVAL_SAMPLES];
  int32_t y[EVAL_SAMPLES];
  for (int i = 0; i < EVAL_SAMPLES; i++) y[i] = 0, beta[i] = 1.0f / w;
  sparq_rng rng = sparq_rng_make(7, 0x6e6f697365u);
  sparq_rng_fill_normal(&rng, x, 2 * EVAL_SAMPLES, 0.0f, 1.0f);
  memcpy(ref, x, sizeof x);
  sparq_sample_config sc = sparq_sample_config_default();
  /* GFT guides through its temperature input, beta = 1 / w, one NFE per step */
  sc.cfg_scale = gft ? 1.0f : w;
  sc.extra = gft ? beta : NULL;
  sparq_sample_stats st;
  sparq_status s = sparq_diffusion_sample(d, net, &sc, y, EVAL_SAMPLES, x, &st);
  sc.cfg_scale = w, sc.extra = NULL;
  sc.steps = 500; /* the spec's reference: exact eps, DDIM 500 steps */
  if (!s) s = sparq_diffusion_sample(d, exact, &sc, y, EVAL_SAMPLES, ref, NULL);
  if (!s) s = sparq_toy_sample_metrics_eval(toy, 0, x, EVAL_SAMPLES, ref, EVAL_SAMPLES, &st, out);
  return s;
}

int cli_train_toy2d(const cli_dit_flags *f) {
  sparq_diff_kind kind;
  sparq_diff_pred pred;
  if (!sparq_diff_kind_from_name(f->schedule, &kind) || !sparq_diff_pred_from_name(f->pred, &pred))
    return cli_usage_error("train", "--schedule must be vp or edm and --pred eps, x0 or v");
  sparq_toy2d toy;
  sparq_toy2d_default(&toy);
  sparq_diffusion diff = {0};
  sparq_toy_mlp *mlp = NULL;
  sparq_toy_task task = {0};
  sparq_toy_mlp_config mc = sparq_toy_mlp_config_default();
  sparq_toy_task_config tcfg = sparq_toy_task_config_default();
  tcfg.batch = f->batch, tcfg.p_uncond = (float)f->p_uncond;
  const bool gft = !strcmp(f->guidance, "gft");
  if (f->init) return cli_usage_error("train", "--init is for --data fashion-mnist");
  if (gft) mc.gft = true, tcfg.objective = SPARQ_TOY_OBJ_GFT;
  int rc = CLI_OK;
  if (f->resume) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", f->out);
    sparq_safetensors *st = NULL;
    if (sparq_safetensors_open(path, &st) || sparq_toy_mlp_config_from_metadata(st, &mc)) rc = cli_fail_last_error();
    sparq_safetensors_close(st);
  }
  if (!rc && sparq_diffusion_init(&diff, kind, pred)) rc = cli_fail_last_error();
  if (!rc && sparq_toy_mlp_create(&mc, (uint64_t)f->seed, &mlp)) rc = cli_fail_last_error();
  if (!rc && sparq_toy_task_init(&task, mlp, &toy, &diff, &tcfg)) rc = cli_fail_last_error();
  if (!rc) {
    sparq_trainable model;
    sparq_toy_task_trainable(&task, &model);
    sparq_train_config tc = sparq_toy_train_config_default();
    tc.steps = f->steps, tc.stop_at = f->stop_at, tc.warmup = f->warmup, tc.lr = (float)f->lr;
    tc.min_lr = (float)(f->min_lr >= 0 ? f->min_lr : f->lr);
    tc.ema = (float)f->ema, tc.clip = (float)f->clip, tc.adamw.weight_decay = (float)f->wd;
    tc.eval_every = f->eval_every, tc.ckpt_every = f->ckpt_every;
    tc.seed = (uint64_t)f->seed, tc.out_dir = f->out, tc.resume = f->resume;
    printf("train dit --data toy2d: %d classes, %d components, MLP %" PRId64 " x %" PRId64 " SiLU (%.1fk "
           "parameters), %s %s, %s, batch %" PRId64 ", p_uncond %.2f, %" PRId64 " steps, lr %.3g, EMA %.4g\n",
           SPARQ_TOY2D_CLASSES, toy.ncomp, mc.depth, mc.hidden, (double)sparq_params_count(model.params) / 1e3,
           sparq_diff_kind_name(kind), sparq_diff_pred_name(pred), mc.gft ? "GFT" : "CFG", tcfg.batch,
           tcfg.p_uncond, tc.steps, tc.lr, tc.ema);
    sparq_train_result res;
    if (sparq_train_run(&tc, &model, &res)) rc = cli_fail_last_error();
    else
      printf("done: step %" PRId64 ", train loss %.4f, held-out loss %.4f, %.1f s\n", res.steps_done, res.last_loss,
             res.last_eval, res.seconds);
  }
  if (!rc && !f->stop_at) {
    /* the exact evaluation, on the EMA weights when there are any */
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", f->out, f->ema > 0 ? "ema.safetensors" : "ckpt.safetensors");
    if (sparq_checkpoint_load(path, sparq_toy_mlp_params(mlp), NULL, NULL)) rc = cli_fail_last_error();
    sparq_denoiser net, exact;
    sparq_toy2d_exact bind;
    sparq_toy_mlp_denoiser(mlp, &net);
    sparq_toy2d_exact_denoiser(&bind, &toy, &diff, &exact);
    if (!rc) printf("exact evaluation (%s weights; DDIM 50 steps vs exact-CFG DDIM 500, class 0, %d samples):\n"
                    "  %4s %12s %10s %10s %9s %9s %8s %4s\n",
                    f->ema > 0 ? "EMA" : "final", EVAL_SAMPLES, "w", "eps-error", "/E|eps*|^2", "endpoint",
                    "energy", "log p", "Bayes", "NFE");
    for (size_t i = 0; i < N_SCALES && !rc; i++) {
      sparq_toy_eps_config ec = sparq_toy_eps_config_default();
      ec.w = kScales[i];
      ec.gft = mc.gft;
      sparq_toy_eps_error err;
      sparq_toy_sample_metrics sm;
      if (sparq_toy_eps_error_eval(&toy, &diff, &net, -1, &ec, &err) ||
          sample_metrics(&toy, &diff, &net, &exact, kScales[i], mc.gft, &sm)) {
        rc = cli_fail_last_error();
        break;
      }
      printf("  %4.1f %12.5f %10.4f %10.4f %9.5f %9.3f %8.4f %4" PRId64 "\n", kScales[i], err.err,
             err.err / err.ref_sq, sm.endpoint_dist, sm.energy_dist, sm.log_density, sm.bayes_acc, sm.nfe);
    }
  }
  sparq_toy_task_free(&task);
  sparq_toy_mlp_free(mlp);
  sparq_diffusion_free(&diff);
  return rc;
}
