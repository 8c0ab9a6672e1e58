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
      .seed = 1337, .optim = "adamw", .bias = "on"};
}

/* Opens (resume) or creates the GPT of a run. */
static int make_model(const cli_lm_flags *f, sparq_gpt **out) {
  sparq_gpt_config cfg = sparq_gpt_config_default();
  if (f->resume) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", f->out);
    sparq_safetensors *st = NULL;
    if (sparq_safetensors_open(path, &st) || sparq_gpt_config_from_metadata(st, &cfg)) {
      sparq_safetensors_close(st);
      return cli_fail_last_error();
    }
    sparq_safetensors_close(st);
  } else {
    cfg.n_layer = f->layers;
    cfg.n_head = f->heads;
    cfg.n_embd = f->dim;
    cfg.block_size = f->seq;
    cfg.vocab_size = 256;
    cfg.bias = !strcmp(f->bias, "on");
  }
  if (sparq_gpt_create(&cfg, (uint64_t)f->seed, out)) return cli_fail_last_error();
  return CLI_OK;
}

int cli_train_lm_run(const cli_lm_flags *f, sparq_train_result *result, bool quiet) {
  sparq_text_corpus corpus;
  int rc = cli_load_text(f->data, &corpus);
  if (rc) return rc;
  sparq_gpt *gpt = NULL;
  if ((rc = make_model(f, &gpt))) {
    sparq_text_corpus_free(&corpus);
    return rc;
  }
  const sparq_gpt_config *cfg = sparq_gpt_get_config(gpt);
  int64_t seq = f->resume ? cfg->block_size : f->seq;
  sparq_lm_task task;
  if (sparq_lm_task_init(&task, gpt, corpus.train, corpus.train_size, corpus.val, corpus.val_size, f->batch, seq,
                         f->eval_batches, (uint64_t)f->seed)) {
    rc = cli_fail_last_error();
    sparq_gpt_free(gpt);
    sparq_text_corpus_free(&corpus);
    return rc;
  }
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
  if (!quiet)
    printf("train lm: %zu bytes (%zu train, %zu held-out), GPT %" PRId64 " layers, %" PRId64 " heads, dim %" PRId64
           ", context %" PRId64 ", %.2fM parameters, batch %" PRId64 " x %" PRId64 " x accum %" PRId64
           ", %s, %d threads\n",
           corpus.size, corpus.train_size, corpus.val_size, cfg->n_layer, cfg->n_head, cfg->n_embd, cfg->block_size,
           (double)sparq_params_count(model.params) / 1e6, f->batch, seq, f->accum, f->optim, sparq_threads());
  sparq_train_result res;
  sparq_status s = sparq_train_run(&tc, &model, &res);
  if (s) rc = cli_fail_last_error();
  else if (!quiet)
    printf("done: step %" PRId64 ", train loss %.4f, held-out loss %.4f nats/byte (%.4f bits/byte), %.0f tokens/s, "
           "%.1f s\ncheckpoint: %s/ckpt.safetensors  log: %s/log.jsonl\n",
           res.steps_done, res.last_loss, res.last_eval, res.last_eval / log(2.0), res.tokens_per_s, res.seconds,
           f->out, f->out);
  if (result) *result = res;
  sparq_lm_task_free(&task);
  sparq_gpt_free(gpt);
  sparq_text_corpus_free(&corpus);
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
