/* sparq train lm: train a nanoGPT-architecture byte-level language model. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
      .seed = 1337, .optim = "adamw", .bias = "on", .p_uncond = 0.1, .aux = -1,
      .fp8_m = "e4m3", .fp8_v = "e4m3"};
}

/* GFT's beta input: the sinusoidal embedding of 1000 beta at LlamaGen's
 * frequency width (its t_embedder's frequency_embedding_size). */
#define GFT_BETA_DIM 256

/* On resume the MoE training settings and lambda come from the checkpoint. */
static int resume_moe(const sparq_safetensors *st, cli_lm_flags *f, float *lambda, int64_t *step) {
  const char *router = sparq_safetensors_metadata(st, "moe_router");
  if (router && sparq_safetensors_metadata_int(st, "step", true, step)) return cli_fail_last_error();
  f->moe = router && !strcmp(router, "relu") ? "relu" : router && !strcmp(router, "topk") ? "topk" : NULL;
  if (!f->moe) return CLI_OK;
  const char *l1 = sparq_safetensors_metadata(st, "moe_l1");
  float l0 = (float)f->lambda0, al = (float)f->alpha, aux = (float)f->aux;
  if (sparq_safetensors_metadata_float(st, "moe_lambda", true, lambda) ||
      sparq_safetensors_metadata_float(st, "moe_lambda0", true, &l0) ||
      sparq_safetensors_metadata_float(st, "moe_alpha", true, &al) ||
      sparq_safetensors_metadata_float(st, "moe_aux", true, &aux))
    return cli_fail_last_error();
  if (!l1 || (strcmp(l1, "lb") && strcmp(l1, "plain")))
    return cli_fail("%s: metadata 'moe_l1' is missing or not lb|plain", st->path);
  f->l1 = !strcmp(l1, "plain") ? "plain" : "lb";
  f->lambda0 = l0, f->alpha = al, f->aux = aux;
  return CLI_OK;
}

/* On resume the guidance comes from the checkpoint, whatever the flags say,
 * and so do FP8 activations (a run that saved in FP8 goes on doing so). */
static int resume_guidance(cli_lm_flags *f, float *moe_lambda, int64_t *moe_step) {
  char path[4200];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", f->out);
  sparq_safetensors *st = NULL;
  if (sparq_safetensors_open(path, &st)) return cli_fail_last_error();
  int mrc = resume_moe(st, f, moe_lambda, moe_step);
  if (mrc) {
    sparq_safetensors_close(st);
    return mrc;
  }
  const char *guidance = sparq_safetensors_metadata(st, "guidance");
  float p = (float)f->p_uncond;
  int rc = CLI_OK;
  if (guidance && sparq_safetensors_metadata_float(st, "class_dropout_prob", true, &p)) rc = cli_fail_last_error();
  const char *fp8_act = sparq_safetensors_metadata(st, "fp8_activations");
  f->fp8_act = f->fp8_act || (fp8_act && !strcmp(fp8_act, "true"));
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

/* --moe-layers: "all" or a comma list of block indices below n_layer. */
static int parse_moe_layers(const char *text, int64_t n_layer, uint64_t *mask) {
  if (!strcmp(text, "all")) {
    *mask = n_layer >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n_layer) - 1;
    return CLI_OK;
  }
  uint64_t m = 0;
  const char *p = text;
  while (*p) {
    char *end = NULL;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v >= n_layer || v > 63 || (*end && *end != ','))
      return cli_usage_error("train", "--moe-layers '%s' is not 'all' or a comma list of layers 0..%" PRId64, text,
                             (n_layer < 64 ? n_layer : 64) - 1);
    m |= (uint64_t)1 << v;
    p = *end ? end + 1 : end;
  }
  if (!m) return cli_usage_error("train", "--moe-layers '%s' names no layer", text);
  *mask = m;
  return CLI_OK;
}

/* The MoE flags that were not given get the spec's defaults (E 8, k 1, every
 * block, LB-L1, lambda0 1e-8, alpha 1.2, aux 1e-2); flags of the other
 * router, or without --moe, are usage errors. */
static int moe_flag_defaults(cli_lm_flags *f) {
  const bool remoe_flags = f->l1 || f->lambda0 > 0 || f->alpha > 0, aux_flag = f->aux >= 0;
  if (!f->moe) {
    if (f->experts || f->topk || f->moe_layers || remoe_flags || aux_flag)
      return cli_usage_error("train", "--experts, --topk, --moe-layers, --l1, --lambda0, --alpha and --aux need "
                                      "--moe relu|topk");
    return CLI_OK;
  }
  const bool relu = !strcmp(f->moe, "relu");
  if (!f->resume && relu && aux_flag) return cli_usage_error("train", "--aux is TopK's aux-loss coefficient (--moe topk)");
  if (!f->resume && !relu && remoe_flags)
    return cli_usage_error("train", "--l1, --lambda0 and --alpha set ReMoE's regulariser (--moe relu)");
  if (!f->experts) f->experts = 8;
  if (!f->topk) f->topk = 1;
  if (!f->moe_layers) f->moe_layers = "all";
  if (!f->l1) f->l1 = "lb";
  if (!(f->lambda0 > 0)) f->lambda0 = 1e-8;
  if (!(f->alpha > 0)) f->alpha = 1.2;
  if (!aux_flag) f->aux = relu ? 0.0 : 1e-2;
  return CLI_OK;
}

/* The MoE flags against each other and the rest (usage errors). */
static int check_moe_flags(const cli_lm_flags *f, bool cond, sparq_gpt_config *cfg) {
  if (!f->moe) return CLI_OK;
  if (cond) return cli_usage_error("train", "--moe does not combine with --cond or --gft");
  if (!strcmp(f->moe, "relu")) cfg->moe_router = SPARQ_MOE_RELU;
  else cfg->moe_router = SPARQ_MOE_TOPK;
  if (f->topk > f->experts)
    return cli_usage_error("train", "--topk %" PRId64 " is more than --experts %" PRId64, f->topk, f->experts);
  if (cfg->n_layer > 64) return cli_usage_error("train", "an MoE model has at most 64 layers (--layers %" PRId64 ")",
                                                cfg->n_layer);
  cfg->moe_experts = f->experts;
  cfg->moe_topk = f->topk;
  return parse_moe_layers(f->moe_layers, cfg->n_layer, &cfg->moe_layers);
}

/* The end-of-run table of spec section 7: mean active experts per byte
 * value next to its frequency, as RUN_DIR/moe_bytes.tsv, plus a summary
 * line of the frequent against the rare bytes. */
static int write_byte_table(const sparq_lm_task *task, const char *out, bool quiet) {
  double act[256];
  int64_t freq[256];
  if (sparq_lm_task_moe_bytes(task, act, freq)) return cli_fail_last_error();
  char path[4200];
  snprintf(path, sizeof path, "%s/moe_bytes.tsv", out);
  FILE *fp = fopen(path, "w");
  if (!fp) return cli_fail("%s: cannot write: %s", path, strerror(errno));
  fprintf(fp, "byte\tchar\tfrequency\tmean_active_experts\n");
  for (int b = 0; b < 256; b++) {
    if (freq[b] == 0) continue;
    char shown[8];
    if (b == '\n') snprintf(shown, sizeof shown, "\\n");
    else if (b == ' ') snprintf(shown, sizeof shown, "space");
    else if (b == '\t') snprintf(shown, sizeof shown, "\\t");
    else if (b > 32 && b < 127) snprintf(shown, sizeof shown, "%c", b);
    else snprintf(shown, sizeof shown, "0x%02x", b);
    fprintf(fp, "%d\t%s\t%" PRId64 "\t%.4f\n", b, shown, freq[b], act[b]);
  }
  if (fclose(fp)) return cli_fail("%s: cannot write", path);
  if (quiet) return CLI_OK;
  double top, rare, top_share, rare_share;
  int rc = cli_moe_byte_summary(out, &top, &top_share, &rare, &rare_share);
  if (!rc)
    printf("active experts per byte: %.3f for the 8 most frequent bytes (%.1f%% of tokens), %.3f for bytes under "
           "0.1%% (%.2f%% of tokens); table: %s\n",
           top, 100.0 * top_share, rare, 100.0 * rare_share, path);
  return rc;
}

int cli_moe_byte_summary(const char *run_dir, double *top, double *top_share, double *rare, double *rare_share) {
  char path[4200];
  snprintf(path, sizeof path, "%.4100s/moe_bytes.tsv", run_dir);
  FILE *fp = fopen(path, "r");
  if (!fp) return cli_fail("%s: %s", path, strerror(errno));
  double act[256] = {0};
  int64_t freq[256] = {0}, total = 0;
  char line[256];
  while (fgets(line, sizeof line, fp)) {
    int b;
    char shown[16];
    long long n;
    double a;
    if (sscanf(line, "%d\t%15s\t%lld\t%lf", &b, shown, &n, &a) != 4 || b < 0 || b > 255 || n < 0) continue;
    freq[b] = n, act[b] = a, total += n;
  }
  fclose(fp);
  /* the 8 most frequent bytes against those seen fewer than 1 in 1000 times */
  int order[256];
  for (int b = 0; b < 256; b++) order[b] = b;
  for (int i = 0; i < 8; i++)
    for (int j = i + 1; j < 256; j++)
      if (freq[order[j]] > freq[order[i]]) {
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
  double top_sum = 0, rare_sum = 0;
  int64_t ntop = 0, nrare = 0;
  for (int i = 0; i < 8; i++) top_sum += act[order[i]] * (double)freq[order[i]], ntop += freq[order[i]];
  for (int b = 0; b < 256; b++)
    if (freq[b] > 0 && freq[b] * 1000 < total) rare_sum += act[b] * (double)freq[b], nrare += freq[b];
  *top = ntop ? top_sum / (double)ntop : 0.0;
  *top_share = total ? (double)ntop / (double)total : 0.0;
  *rare = nrare ? rare_sum / (double)nrare : 0.0;
  *rare_share = total ? (double)nrare / (double)total : 0.0;
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
    int rc = check_moe_flags(f, n_classes > 0, &cfg);
    if (rc) return rc;
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
  float moe_lambda = 0.0f;
  int64_t moe_step = 0;
  if (f->resume && (rc = resume_guidance(f, &moe_lambda, &moe_step))) return rc;
  const bool cond = f->cond || f->gft;
  if ((rc = moe_flag_defaults(f))) return rc;
  if (f->cond && f->gft) return cli_usage_error("train", "--cond and --gft exclude each other");
  if (cond && f->data && strcmp(f->data, "fortunes") != 0)
    return cli_usage_error("train", "--cond and --gft train on the labelled fortunes classes; --data %s has no "
                                    "class labels", f->data);
  if (f->init && !f->gft) return cli_usage_error("train", "--init CKPT starts a --gft run from a --cond checkpoint");
  sparq_optim optim = SPARQ_OPTIM_ADAMW;
  for (int o = SPARQ_OPTIM_ADAMW; o <= SPARQ_OPTIM_ADAMW_FP8_NODRE; o++)
    if (!strcmp(f->optim, sparq_optim_name((sparq_optim)o))) optim = (sparq_optim)o;
  const bool fp8_optim = optim == SPARQ_OPTIM_ADAMW_FP8 || optim == SPARQ_OPTIM_ADAMW_FP8_NODRE;
  sparq_fp8_format fp8_m = SPARQ_FP8_E4M3, fp8_v = SPARQ_FP8_E4M3; /* --fp8-m/-v are CLI_CHOICEs: they parse */
  sparq_fp8_format_parse(f->fp8_m, &fp8_m);
  sparq_fp8_format_parse(f->fp8_v, &fp8_v);
  if (!fp8_optim && (f->fp8_shadow || fp8_m != SPARQ_FP8_E4M3 || fp8_v != SPARQ_FP8_E4M3))
    return cli_usage_error("train", "--fp8-shadow, --fp8-m and --fp8-v apply to --optim adamw-fp8|adamw-fp8-nodre");
  if (f->fp8_act && f->moe) return cli_usage_error("train", "--fp8-act does not cover MoE blocks (--moe)");
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
  char moe_log[4200];
  snprintf(moe_log, sizeof moe_log, "%s/moe.jsonl", f->out);
  if (!rc && cfg->moe_router != SPARQ_MOE_NONE) {
    const sparq_lm_moe_config mc = {
        .l1 = !strcmp(f->l1, "plain") ? SPARQ_MOE_L1_PLAIN : SPARQ_MOE_L1_LB, .lambda0 = (float)f->lambda0,
        .alpha = (float)f->alpha, .lambda_start = moe_lambda, .aux = (float)f->aux, .log_path = moe_log,
        .first_step = moe_step};
    if ((rc = cli_mkdirs(f->out)) == CLI_OK && sparq_lm_task_set_moe(&task, &mc)) rc = cli_fail_last_error();
  }
  if (!rc && f->fp8_act && sparq_lm_task_set_fp8_act(&task, true)) rc = cli_fail_last_error();
  if (!rc) {
    sparq_trainable model;
    sparq_lm_task_trainable(&task, &model);
    sparq_train_config tc = {
        .steps = f->steps, .stop_at = f->stop_at, .warmup = f->warmup, .accum = f->accum,
        .eval_every = f->eval_every, .ckpt_every = f->ckpt_every, .lr = (float)f->lr,
        .min_lr = (float)(f->min_lr >= 0 ? f->min_lr : f->lr / 10), .clip = (float)f->clip,
        .optim = optim,
        .fp8_m_format = fp8_m,
        .fp8_v_format = fp8_v,
        .fp8_shadow = f->fp8_shadow,
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
      if (fp8_optim)
        printf("train lm: FP8 moments m %s, v %s in groups of 128, %s%s\n", f->fp8_m, f->fp8_v,
               optim == SPARQ_OPTIM_ADAMW_FP8 ? "dynamic range expansion" : "plain per-group scaling (no DRE)",
               f->fp8_shadow ? ", FP32 shadow (coat.jsonl)" : "");
      if (f->fp8_act)
        printf("train lm: FP8 activations saved for backward (E4M3: per tensor for linear inputs, 1x16 groups "
               "for LayerNorm and GELU inputs; q, k, v and attention output in BF16; E5M2 gradients into the "
               "linear layers)\n");
      if (cfg->moe_router != SPARQ_MOE_NONE)
        printf("train lm: MoE (%s router) in %" PRId64 " of %" PRId64 " blocks, %" PRId64 " experts, top-k %" PRId64
               "%s\n",
               sparq_moe_router_name(cfg->moe_router), sparq_gpt_moe_count(gpt), cfg->n_layer, cfg->moe_experts,
               cfg->moe_topk, "");
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
    if (!s && !quiet)
      printf("memory: parameters %zu B, gradients %zu B, optimizer state %zu B, saved activations %zu B, total %zu B; "
             "peak RSS %zu B (%zu B at the start); %s/memory.json\n",
             res.memory.params_bytes, res.memory.grads_bytes, res.memory.optimizer_state_bytes,
             res.memory.activation_bytes, res.memory.total_bytes, res.peak_rss_bytes, res.rss_start_bytes, f->out);
    if (result) *result = res;
    if (!s && cfg->moe_router != SPARQ_MOE_NONE) rc = write_byte_table(&task, f->out, quiet);
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
      {"optim", CLI_CHOICE, &f.optim, 0, 0, "adamw|signgd|adamw-fp8|adamw-fp8-nodre"},
      {"fp8-m", CLI_CHOICE, &f.fp8_m, 0, 0, "e4m3|e5m2"},
      {"fp8-v", CLI_CHOICE, &f.fp8_v, 0, 0, "e4m3|e5m2"},
      {"fp8-shadow", CLI_BOOL, &f.fp8_shadow, 0, 0, NULL},
      {"fp8-act", CLI_BOOL, &f.fp8_act, 0, 0, NULL},
      {"momentum", CLI_DOUBLE, &f.momentum, 0, 0.999999, NULL},
      {"bias", CLI_CHOICE, &f.bias, 0, 0, "on|off"},
      {"out", CLI_STRING, &f.out, 0, 0, NULL},
      {"resume", CLI_BOOL, &f.resume, 0, 0, NULL},
      {"cond", CLI_BOOL, &f.cond, 0, 0, NULL},
      {"gft", CLI_BOOL, &f.gft, 0, 0, NULL},
      {"init", CLI_STRING, &f.init, 0, 0, NULL},
      {"p-uncond", CLI_DOUBLE, &f.p_uncond, 0, 1, NULL},
      {"moe", CLI_CHOICE, &f.moe, 0, 0, "relu|topk"},
      {"experts", CLI_INT, &f.experts, 1, SPARQ_MOE_MAX_EXPERTS, NULL},
      {"topk", CLI_INT, &f.topk, 1, SPARQ_MOE_MAX_EXPERTS, NULL},
      {"moe-layers", CLI_STRING, &f.moe_layers, 0, 0, NULL},
      {"l1", CLI_CHOICE, &f.l1, 0, 0, "lb|plain"},
      {"lambda0", CLI_DOUBLE, &f.lambda0, 1e-30, 1e30, NULL},
      {"alpha", CLI_DOUBLE, &f.alpha, 1.000001, 100, NULL},
      {"aux", CLI_DOUBLE, &f.aux, 0, 1e6, NULL},
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
