/* sparq train lm: train a nanoGPT-architecture byte-level language model. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

int cli_load_text(const char *data, sparq_text_corpus *out) {
  sparq_status s = (!data || !strcmp(data, "fortunes")) ? sparq_fortunes_load(NULL, out)
                                                        : sparq_text_file_load(data, out);
  return s ? cli_fail_last_error() : CLI_OK;
}

cli_lm_flags cli_lm_flags_default(void) {
  sparq_adamw_config a = sparq_adamw_config_default();
  /* A default run takes about 7 minutes on 2 Zen 4 cores and ends near 1.74
   * nats/byte on the fortunes held-out split (README). beta2 0.99 as in
   * nanoGPT's small character-level config. */
  return (cli_lm_flags){
      .data = "fortunes", .layers = 4, .heads = 4, .dim = 256, .seq = 128, .batch = 16, .steps = 1500,
      .lr = 2e-3, .min_lr = -1, .warmup = 100, .wd = a.weight_decay, .clip = 1.0, .beta1 = a.beta1,
      .beta2 = 0.99, .eps = a.eps, .accum = 1, .eval_every = 250, .eval_batches = 16, .ckpt_every = 500,
      .seed = 1337, .optim = "adamw", .bias = "on", .p_uncond = 0.1};
}

/* GFT's beta input: the sinusoidal embedding of 1000 beta at LlamaGen's
 * frequency width (its t_embedder's frequency_embedding_size). */
#define GFT_BETA_DIM 256

/* On resume the guidance comes from the checkpoint, whatever the flags say. */
static int resume_guidance(cli_lm_flags *f) {
  char path[4200];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", f->out);
  sparq_safetensors *st = NULL;
  if (sparq_safetensors_open(path, &st)) return cli_fail_last_error();
  const char *guidance = sparq_safetensors_metadata(st, "guidance");
  float p = (float)f->p_uncond;
  int rc = CLI_OK;
  if (guidance && sparq_safetensors_metadata_float(st, "class_dropout_prob", true, &p)) rc = cli_fail_last_error();
  f->cond = guidance && !strcmp(guidance, "cfg");
  f->gft = guidance && !strcmp(guidance, "gft");
  f->p_uncond = p;
  sparq_safetensors_close(st);
  return rc;
}

/* The class names of a checkpoint must be the data's, or its labels would
 * mean other classes. */
static int check_classes(const char *path, const sparq_safetensors *st, const char *names) {
  const char *have = sparq_safetensors_metadata(st, "classes");
  if (!have || strcmp(have, names) != 0)
    return cli_fail("%s: its classes are not the fortunes classes of this corpus (metadata 'classes' is %s)", path,
                    have ? "different" : "missing");
  return CLI_OK;
}

/* --init: a GFT model starting from a conditional checkpoint's weights and
 * architecture; the beta projection it lacks starts at zero, so at step 0
 * the model is exactly the checkpoint (spec gft.md section 9.5). */
static int init_from(const cli_lm_flags *f, int64_t n_classes, const char *names, sparq_gpt **out) {
  sparq_safetensors *st = NULL;
  sparq_gpt_config cfg;
  if (sparq_safetensors_open(f->init, &st) || sparq_gpt_config_from_metadata(st, &cfg)) {
    sparq_safetensors_close(st);
    return cli_fail_last_error();
  }
  int rc = CLI_OK;
  if (cfg.num_classes != n_classes)
    rc = cli_fail("%s: --init needs a conditional checkpoint (train lm --cond) of the %" PRId64
                  " fortunes classes; it has %" PRId64,
                  f->init, n_classes, cfg.num_classes);
  if (!rc) rc = check_classes(f->init, st, names);
  sparq_safetensors_close(st);
  if (rc) return rc;
  sparq_gpt *src = NULL;
  if (sparq_gpt_create(&cfg, 0, &src) || sparq_checkpoint_load(f->init, sparq_gpt_params(src), NULL, NULL)) {
    sparq_gpt_free(src);
    return cli_fail_last_error();
  }
  if (cfg.gft_beta_dim == 0) cfg.gft_beta_dim = GFT_BETA_DIM;
  if (sparq_gpt_create(&cfg, (uint64_t)f->seed, out)) {
    sparq_gpt_free(src);
    return cli_fail_last_error();
  }
  sparq_param_list *dst = sparq_gpt_params(*out);
  const size_t fresh = dst->count - sparq_params_copy_matching(dst, sparq_gpt_params(src));
  sparq_gpt_free(src);
  if (fresh > 1 || (fresh == 1 && !sparq_params_find(dst, "t_embedder.cond_proj.weight"))) {
    sparq_gpt_free(*out);
    *out = NULL;
    return cli_fail("%s: %zu of the model's tensors are not in the checkpoint", f->init, fresh);
  }
  if (fresh == 1) sparq_gpt_zero_beta_proj(*out);
  return CLI_OK;
}

/* Opens (resume) or creates the GPT of a run; n_classes > 0 for --cond/--gft. */
static int make_model(const cli_lm_flags *f, int64_t n_classes, const char *names, sparq_gpt **out) {
  sparq_gpt_config cfg = sparq_gpt_config_default();
  if (f->resume) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", f->out);
    sparq_safetensors *st = NULL;
    if (sparq_safetensors_open(path, &st) || sparq_gpt_config_from_metadata(st, &cfg)) {
      sparq_safetensors_close(st);
      return cli_fail_last_error();
    }
    int rc = n_classes > 0 ? check_classes(path, st, names) : CLI_OK;
    sparq_safetensors_close(st);
    if (rc) return rc;
  } else if (f->init) {
    return init_from(f, n_classes, names, out);
  } else {
    cfg.n_layer = f->layers;
    cfg.n_head = f->heads;
    cfg.n_embd = f->dim;
    cfg.block_size = f->seq;
    cfg.vocab_size = 256;
    cfg.bias = !strcmp(f->bias, "on");
    cfg.num_classes = n_classes;
    /* from scratch the beta projection keeps its N(0, 0.02) initialisation */
    cfg.gft_beta_dim = f->gft ? GFT_BETA_DIM : 0;
  }
  if (sparq_gpt_create(&cfg, (uint64_t)f->seed, out)) return cli_fail_last_error();
  return CLI_OK;
}

/* The class names joined by ',' as the checkpoints store them (lm.h). */
static char *join_names(const sparq_text_classes *tc) {
  size_t len = 1;
  for (int k = 0; k < tc->count; k++) len += strlen(tc->classes[k].name) + 1;
  char *names = sparq_alloc(len, "class names");
  char *p = names;
  for (int k = 0; names && k < tc->count; k++) p += sprintf(p, "%s%s", k ? "," : "", tc->classes[k].name);
  return names;
}

int cli_train_lm_run(const cli_lm_flags *flags, sparq_train_result *result, bool quiet) {
  cli_lm_flags fl = *flags, *f = &fl;
  int rc;
  if (f->resume && (rc = resume_guidance(f))) return rc;
  const bool cond = f->cond || f->gft;
  if (f->cond && f->gft) return cli_usage_error("train", "--cond and --gft exclude each other");
  if (cond && f->data && strcmp(f->data, "fortunes") != 0)
    return cli_usage_error("train", "--cond and --gft train on the labelled fortunes classes; --data %s has no "
                                    "class labels", f->data);
  if (f->init && !f->gft) return cli_usage_error("train", "--init CKPT starts a --gft run from a --cond checkpoint");
  sparq_text_classes classes = {0};
  sparq_text_corpus plain = {0};
  char *names = NULL;
  if (cond) {
    if (sparq_fortunes_classes_load(NULL, &classes)) return cli_fail_last_error();
    if (!(names = join_names(&classes))) {
      sparq_text_classes_free(&classes);
      return cli_fail_last_error();
    }
  } else if ((rc = cli_load_text(f->data, &plain))) {
    return rc;
  }
  const sparq_text_corpus *corpus = cond ? &classes.corpus : &plain;
  sparq_gpt *gpt = NULL;
  sparq_lm_task task = {0};
  rc = make_model(f, cond ? classes.count : 0, names, &gpt);
  const sparq_gpt_config *cfg = gpt ? sparq_gpt_get_config(gpt) : NULL;
  const int64_t seq = f->resume || f->init ? (cfg ? cfg->block_size : 0) : f->seq;
  if (!rc && (sparq_lm_task_init(&task, gpt, corpus->train, corpus->train_size, corpus->val, corpus->val_size,
                                 f->batch, seq, f->eval_batches, (uint64_t)f->seed) ||
              (cond && sparq_lm_task_set_classes(&task, classes.classes, classes.count, (float)f->p_uncond, f->gft))))
    rc = cli_fail_last_error();
  if (!rc) {
    sparq_trainable model;
    sparq_lm_task_trainable(&task, &model);
    sparq_train_config tc = {
        .steps = f->steps, .stop_at = f->stop_at, .warmup = f->warmup, .accum = f->accum,
        .eval_every = f->eval_every, .ckpt_every = f->ckpt_every, .lr = (float)f->lr,
        .min_lr = (float)(f->min_lr >= 0 ? f->min_lr : f->lr / 10), .clip = (float)f->clip,
        .optim = !strcmp(f->optim, "signgd") ? SPARQ_OPTIM_SIGNGD : SPARQ_OPTIM_ADAMW,
        .adamw = {.beta1 = (float)f->beta1, .beta2 = (float)f->beta2, .eps = (float)f->eps,
                  .weight_decay = (float)f->wd},
        .momentum = (float)f->momentum, .seed = (uint64_t)f->seed, .out_dir = f->out, .resume = f->resume,
        .quiet = quiet};
    if (!quiet) {
      printf("train lm: %zu bytes (%zu train, %zu held-out), GPT %" PRId64 " layers, %" PRId64 " heads, dim %" PRId64
             ", context %" PRId64 ", %.2fM parameters, batch %" PRId64 " x %" PRId64 " x accum %" PRId64
             ", %s, %d threads\n",
             corpus->size, corpus->train_size, corpus->val_size, cfg->n_layer, cfg->n_head, cfg->n_embd,
             cfg->block_size, (double)sparq_params_count(model.params) / 1e6, f->batch, seq, f->accum, f->optim,
             sparq_threads());
      if (cond)
        printf("train lm: %s on %d fortunes classes (%d small files left out), label dropout %g%s%s\n",
               f->gft ? "guidance-free training (GFT)" : "class-conditional (CFG baseline)", classes.count,
               classes.skipped, f->p_uncond, f->init && !f->resume ? ", from " : "",
               f->init && !f->resume ? f->init : "");
    }
    sparq_train_result res;
    sparq_status s = sparq_train_run(&tc, &model, &res);
    if (s) rc = cli_fail_last_error();
    else if (!quiet)
      printf("done: step %" PRId64 ", train loss %.4f, held-out loss %.4f nats/byte (%.4f bits/byte), %.0f tokens/s, "
             "%.1f s\ncheckpoint: %s/ckpt.safetensors  log: %s/log.jsonl\n",
             res.steps_done, res.last_loss, res.last_eval, res.last_eval / log(2.0), res.tokens_per_s, res.seconds,
             f->out, f->out);
    if (result) *result = res;
  }
  sparq_lm_task_free(&task);
  sparq_gpt_free(gpt);
  sparq_free(names);
  sparq_text_classes_free(&classes);
  sparq_text_corpus_free(&plain);
  return rc;
}

int cli_train(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "classifier")) return cli_train_classifier(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "dit")) return cli_train_dit(argc, argv);
  if (argc < 2 || strcmp(argv[1], "lm") != 0) {
    fprintf(stderr, "sparq train: expected a model kind: lm, dit or classifier\n");
    cli_usage("train", false);
    return CLI_USAGE;
  }
  cli_lm_flags f = cli_lm_flags_default();
  const cli_opt opts[] = {
      {"data", CLI_STRING, &f.data, 0, 0, NULL},
      {"layers", CLI_INT, &f.layers, 1, 1024, NULL},
      {"heads", CLI_INT, &f.heads, 1, 4096, NULL},
      {"dim", CLI_INT, &f.dim, 1, 65536, NULL},
      {"seq", CLI_INT, &f.seq, 1, 65536, NULL},
      {"batch", CLI_INT, &f.batch, 1, 65536, NULL},
      {"steps", CLI_INT, &f.steps, 1, 1e12, NULL},
      {"stop-at", CLI_INT, &f.stop_at, 0, 1e12, NULL},
      {"lr", CLI_DOUBLE, &f.lr, 1e-12, 10, NULL},
      {"min-lr", CLI_DOUBLE, &f.min_lr, 0, 10, NULL},
      {"warmup", CLI_INT, &f.warmup, 0, 1e12, NULL},
      {"wd", CLI_DOUBLE, &f.wd, 0, 10, NULL},
      {"clip", CLI_DOUBLE, &f.clip, 0, 1e9, NULL},
      {"beta1", CLI_DOUBLE, &f.beta1, 0, 0.999999, NULL},
      {"beta2", CLI_DOUBLE, &f.beta2, 0, 0.999999, NULL},
      {"eps", CLI_DOUBLE, &f.eps, 0, 1, NULL},
      {"accum", CLI_INT, &f.accum, 1, 1e6, NULL},
      {"eval-every", CLI_INT, &f.eval_every, 0, 1e12, NULL},
      {"eval-batches", CLI_INT, &f.eval_batches, 1, 1e6, NULL},
      {"ckpt-every", CLI_INT, &f.ckpt_every, 0, 1e12, NULL},
      {"seed", CLI_INT, &f.seed, 0, 9.2e18, NULL},
      {"optim", CLI_CHOICE, &f.optim, 0, 0, "adamw|signgd"},
      {"momentum", CLI_DOUBLE, &f.momentum, 0, 0.999999, NULL},
      {"bias", CLI_CHOICE, &f.bias, 0, 0, "on|off"},
      {"out", CLI_STRING, &f.out, 0, 0, NULL},
      {"resume", CLI_BOOL, &f.resume, 0, 0, NULL},
      {"cond", CLI_BOOL, &f.cond, 0, 0, NULL},
      {"gft", CLI_BOOL, &f.gft, 0, 0, NULL},
      {"init", CLI_STRING, &f.init, 0, 0, NULL},
      {"p-uncond", CLI_DOUBLE, &f.p_uncond, 0, 1, NULL},
  };
  int rc = cli_parse("train", argc, argv, 2, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  if (!f.out) {
    fprintf(stderr, "sparq train: --out RUN_DIR is required\n");
    cli_usage("train", false);
    return CLI_USAGE;
  }
  return cli_train_lm_run(&f, NULL, false);
}
