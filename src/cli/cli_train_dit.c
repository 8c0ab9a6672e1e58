/* sparq train dit: a class-conditional DiT diffusion model on Fashion-MNIST
 * (VP or EDM, eps/x0/v head, CFG label dropout, EMA). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

cli_dit_flags cli_dit_flags_default(void) {
  /* The Fashion-MNIST setting of spec gft.md 8.2: patch 4 (49 tokens),
   * width 128, depth 4, 4 heads, DDPM linear schedule, eps-prediction,
   * p_uncond 0.1, EMA 0.999. */
  return (cli_dit_flags){.data = "fashion-mnist", .schedule = "vp", .pred = "eps", .guidance = "cfg", .patch = 4,
                         .dim = 128,
                         .depth = 4, .heads = 4, .steps = 8000, .batch = 128, .lr = 1e-3, .min_lr = -1,
                         .warmup = 200, .wd = 0.0, .clip = 1.0, .ema = 0.999, .p_uncond = 0.1, .eval_every = 500,
                         .eval_batches = 4, .ckpt_every = 500, .seed = 0};
}

/* GFT's beta input (spec gft.md section 4): the sinusoidal embedding of
 * 1000 beta at width 512. */
#define GFT_EXTRA_DIM 512
#define GFT_EXTRA_SCALE 1000.0f

/* --init: the new model starts from a checkpoint's (EMA) weights, taking
 * its architecture and formulation; a GFT model gets a zero beta
 * projection, so at step 0 it is exactly the CFG model (spec 9.5). */
static int init_from(const cli_dit_flags *f, bool gft, sparq_dit **out, sparq_diffusion *diff) {
  sparq_dit *src = NULL;
  int rc = cli_load_dit(f->init, false, &src, diff, NULL);
  if (rc) return rc;
  sparq_dit_config cfg = *sparq_dit_get_config(src);
  if (gft && cfg.extra_dim == 0) cfg.extra_dim = GFT_EXTRA_DIM, cfg.extra_scale = GFT_EXTRA_SCALE;
  if (sparq_dit_create(&cfg, (uint64_t)f->seed, out)) {
    sparq_dit_free(src);
    return cli_fail_last_error();
  }
  sparq_param_list *dst = sparq_dit_params(*out);
  const size_t copied = sparq_params_copy_matching(dst, sparq_dit_params(src));
  const size_t fresh = dst->count - copied;
  sparq_dit_free(src);
  if (fresh > 1 || (fresh == 1 && !sparq_params_find(dst, "t_embedder.cond_proj.weight")))
    return cli_fail("%s: %zu of the model's tensors are not in the checkpoint", f->init, fresh);
  if (fresh == 1) sparq_dit_zero_extra(*out);
  return CLI_OK;
}

/* The DiT of a run: created from the flags, or from the checkpoint's
 * metadata on resume. */
static int make_dit(const cli_dit_flags *f, int64_t channels, int64_t side, sparq_dit **out) {
  sparq_dit_config cfg = sparq_dit_config_default();
  if (f->resume) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", f->out);
    sparq_safetensors *st = NULL;
    if (sparq_safetensors_open(path, &st) || sparq_dit_config_from_metadata(st, &cfg)) {
      sparq_safetensors_close(st);
      return cli_fail_last_error();
    }
    sparq_safetensors_close(st);
  } else {
    cfg.input_size = side;
    cfg.in_channels = channels;
    cfg.patch_size = f->patch;
    cfg.hidden_size = f->dim;
    cfg.depth = f->depth;
    cfg.num_heads = f->heads;
    cfg.num_classes = SPARQ_FASHION_MNIST_CLASSES;
    cfg.class_dropout_prob = (float)f->p_uncond;
    /* from scratch the beta projection keeps its N(0, 0.02) initialisation */
    if (!strcmp(f->guidance, "gft")) cfg.extra_dim = GFT_EXTRA_DIM, cfg.extra_scale = GFT_EXTRA_SCALE;
  }
  if (sparq_dit_create(&cfg, (uint64_t)f->seed, out)) return cli_fail_last_error();
  return CLI_OK;
}

int cli_train_dit_run(const cli_dit_flags *f, sparq_train_result *result, bool quiet) {
  sparq_diff_kind kind;
  sparq_diff_pred pred;
  if (!sparq_diff_kind_from_name(f->schedule, &kind) || !sparq_diff_pred_from_name(f->pred, &pred))
    return cli_usage_error("train", "--schedule must be vp or edm and --pred eps, x0 or v");
  sparq_fashion_mnist train = {0}, test = {0};
  const char *dir = f->data_dir ? f->data_dir : SPARQ_FASHION_MNIST_DEFAULT_DIR;
  if (sparq_fashion_mnist_load(dir, SPARQ_SPLIT_TRAIN, false, 0, &train) ||
      sparq_fashion_mnist_load(dir, SPARQ_SPLIT_TEST, false, 0, &test)) {
    int rc = cli_fail_last_error();
    sparq_fashion_mnist_free(&train);
    return rc;
  }
  sparq_dit *dit = NULL;
  sparq_diffusion diff = {0};
  sparq_dit_task task = {0};
  const bool gft = !strcmp(f->guidance, "gft");
  int rc;
  if (f->init && !f->resume) {
    rc = init_from(f, gft, &dit, &diff);
  } else {
    rc = make_dit(f, 1, train.side, &dit);
    if (!rc && sparq_diffusion_init(&diff, kind, pred)) rc = cli_fail_last_error();
  }
  if (!rc && sparq_dit_task_init(&task, dit, &diff, train.images, train.labels, train.n, test.images, test.labels,
                                 test.n, f->batch, (float)f->p_uncond, f->eval_batches, (uint64_t)f->seed + 1))
    rc = cli_fail_last_error();
  if (!rc && gft && sparq_dit_task_set_gft(&task)) rc = cli_fail_last_error();
  if (!rc) {
    sparq_trainable model;
    sparq_dit_task_trainable(&task, &model);
    sparq_train_config tc = {
        .steps = f->steps, .stop_at = f->stop_at, .warmup = f->warmup, .accum = 1, .eval_every = f->eval_every,
        .ckpt_every = f->ckpt_every, .lr = (float)f->lr,
        .min_lr = (float)(f->min_lr >= 0 ? f->min_lr : f->lr / 10), .clip = (float)f->clip,
        .optim = SPARQ_OPTIM_ADAMW, .adamw = sparq_adamw_config_default(), .ema = (float)f->ema,
        .seed = (uint64_t)f->seed, .out_dir = f->out, .resume = f->resume, .quiet = quiet};
    tc.adamw.beta2 = 0.999f; /* PyTorch's default, as DiT trains */
    tc.adamw.weight_decay = (float)f->wd;
    const sparq_dit_config *c = sparq_dit_get_config(dit);
    if (!quiet)
      printf("train dit: Fashion-MNIST %" PRId64 " train / %" PRId64 " held-out images, DiT patch %" PRId64
             " (%" PRId64 " tokens), dim %" PRId64 ", depth %" PRId64 ", %" PRId64 " heads, %.2fM parameters, "
             "%s %s, %s, batch %" PRId64 ", p_uncond %.2f, EMA %.4g, %d threads%s%s\n",
             train.n, test.n, c->patch_size, (c->input_size / c->patch_size) * (c->input_size / c->patch_size),
             c->hidden_size, c->depth, c->num_heads, (double)sparq_params_count(model.params) / 1e6,
             sparq_diff_kind_name(diff.kind), sparq_diff_pred_name(diff.pred), gft ? "GFT" : "CFG", f->batch,
             f->p_uncond, f->ema, sparq_threads(), f->init && !f->resume ? ", from " : "",
             f->init && !f->resume ? f->init : "");
    sparq_train_result res;
    if (sparq_train_run(&tc, &model, &res)) {
      rc = cli_fail_last_error();
    } else {
      if (!quiet)
        printf("done: step %" PRId64 ", train loss %.4f, held-out loss %.4f, %.1f images/s, %.1f s\n"
               "checkpoint: %s/ckpt.safetensors  EMA weights (sample with these): %s/ema.safetensors  log: "
               "%s/log.jsonl\n",
               res.steps_done, res.last_loss, res.last_eval, res.tokens_per_s, res.seconds, f->out, f->out, f->out);
      if (result) *result = res;
    }
  }
  sparq_dit_task_free(&task);
  sparq_diffusion_free(&diff);
  sparq_dit_free(dit);
  sparq_fashion_mnist_free(&train);
  sparq_fashion_mnist_free(&test);
  return rc;
}

int cli_train_dit(int argc, char **argv) {
  cli_dit_flags f = cli_dit_flags_default();
  const cli_opt opts[] = {
      {"data", CLI_CHOICE, &f.data, 0, 0, "fashion-mnist|toy2d"},
      {"data-dir", CLI_STRING, &f.data_dir, 0, 0, NULL},
      {"schedule", CLI_CHOICE, &f.schedule, 0, 0, "vp|edm"},
      {"guidance", CLI_CHOICE, &f.guidance, 0, 0, "cfg|gft"},
      {"init", CLI_STRING, &f.init, 0, 0, NULL},
      {"pred", CLI_CHOICE, &f.pred, 0, 0, "eps|x0|v"},
      {"patch", CLI_INT, &f.patch, 1, 28, NULL},
      {"dim", CLI_INT, &f.dim, 1, 4096, NULL},
      {"depth", CLI_INT, &f.depth, 1, 256, NULL},
      {"heads", CLI_INT, &f.heads, 1, 256, NULL},
      {"steps", CLI_INT, &f.steps, 1, 1e12, NULL},
      {"stop-at", CLI_INT, &f.stop_at, 0, 1e12, NULL},
      {"batch", CLI_INT, &f.batch, 1, 65536, NULL},
      {"lr", CLI_DOUBLE, &f.lr, 1e-12, 10, NULL},
      {"min-lr", CLI_DOUBLE, &f.min_lr, 0, 10, NULL},
      {"warmup", CLI_INT, &f.warmup, 0, 1e12, NULL},
      {"wd", CLI_DOUBLE, &f.wd, 0, 10, NULL},
      {"clip", CLI_DOUBLE, &f.clip, 0, 1e9, NULL},
      {"ema", CLI_DOUBLE, &f.ema, 0, 0.999999, NULL},
      {"p-uncond", CLI_DOUBLE, &f.p_uncond, 0, 1, NULL},
      {"eval-every", CLI_INT, &f.eval_every, 0, 1e12, NULL},
      {"eval-batches", CLI_INT, &f.eval_batches, 1, 1e6, NULL},
      {"ckpt-every", CLI_INT, &f.ckpt_every, 0, 1e12, NULL},
      {"seed", CLI_INT, &f.seed, 0, 9.2e18, NULL},
      {"out", CLI_STRING, &f.out, 0, 0, NULL},
      {"resume", CLI_BOOL, &f.resume, 0, 0, NULL},
  };
  /* -1: the data set's own default (the toy trains by spec gft.md 8.1) */
  f.steps = f.batch = f.warmup = f.eval_every = f.ckpt_every = -1;
  f.lr = f.ema = -1;
  int rc = cli_parse("train", argc, argv, 2, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  if (!f.out) return cli_usage_error("train", "--out RUN_DIR is required");
  const bool toy = !strcmp(f.data, "toy2d");
  const cli_dit_flags def = cli_dit_flags_default();
  if (f.steps < 0) f.steps = toy ? 20000 : def.steps;
  if (f.batch < 0) f.batch = toy ? 512 : def.batch;
  if (f.warmup < 0) f.warmup = toy ? 0 : def.warmup;
  if (f.eval_every < 0) f.eval_every = toy ? 1000 : def.eval_every;
  if (f.ckpt_every < 0) f.ckpt_every = toy ? 0 : def.ckpt_every;
  if (f.lr < 0) f.lr = def.lr;
  if (f.ema < 0) f.ema = def.ema;
  if (toy) {
    if (f.clip == def.clip) f.clip = 0; /* the toy recipe does not clip */
    return cli_train_toy2d(&f);
  }
  return cli_train_dit_run(&f, NULL, false);
}
