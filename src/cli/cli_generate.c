/* sparq generate and sparq eval lm: use a trained GPT checkpoint. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

int cli_load_gpt(const char *path, sparq_gpt **out) {
  *out = NULL;
  sparq_safetensors *st = NULL;
  sparq_gpt_config cfg;
  if (sparq_safetensors_open(path, &st) || sparq_gpt_config_from_metadata(st, &cfg)) {
    sparq_safetensors_close(st);
    return cli_fail_last_error();
  }
  sparq_safetensors_close(st);
  sparq_gpt *g = NULL;
  if (sparq_gpt_create(&cfg, 0, &g) || sparq_checkpoint_load(path, sparq_gpt_params(g), NULL, NULL)) {
    sparq_gpt_free(g);
    return cli_fail_last_error();
  }
  *out = g;
  return CLI_OK;
}

/* --class NAME|INDEX against the checkpoint's class names (metadata
 * "classes", the names joined by ','). */
static int resolve_class(const char *ckpt, const char *want, int64_t n_classes, int32_t *out) {
  sparq_safetensors *st = NULL;
  if (sparq_safetensors_open(ckpt, &st)) return cli_fail_last_error();
  const char *names = sparq_safetensors_metadata(st, "classes");
  int rc = CLI_OK;
  int64_t found = -1;
  for (int64_t k = 0; names && found < 0 && k < n_classes; k++) {
    const size_t n = strcspn(names, ",");
    if (n == strlen(want) && !strncmp(names, want, n)) found = k;
    names += n + (names[n] == ',');
  }
  if (found < 0) {
    char *end = NULL;
    const long long v = strtoll(want, &end, 10);
    if (end != want && *end == '\0') {
      if (v < 0 || v >= n_classes)
        rc = cli_usage_error("generate", "--class %s is outside 0..%" PRId64 " (the checkpoint has %" PRId64
                                         " classes)", want, n_classes - 1, n_classes);
      found = v;
    } else {
      rc = cli_usage_error("generate", "--class '%s' is not one of the checkpoint's classes (%s)", want,
                           sparq_safetensors_metadata(st, "classes") ? sparq_safetensors_metadata(st, "classes")
                                                                     : "it stores no names; use an index");
    }
  }
  if (!rc) *out = (int32_t)found;
  sparq_safetensors_close(st);
  return rc;
}

/* The conditional options against the model: what generate_cond is given. */
static int conditional_options(const char *ckpt, const sparq_gpt_config *c, const char *cls, double beta, double cfg,
                               sparq_gpt_sampling *opt) {
  const bool has_beta = !isnan(beta), has_cfg = !isnan(cfg);
  if (c->num_classes == 0) {
    if (cls || has_beta || has_cfg)
      return cli_usage_error("generate", "--class, --beta and --cfg need a class-conditional checkpoint (train lm "
                                         "--cond or --gft); %s is unconditional", ckpt);
    return CLI_OK;
  }
  if (has_beta && has_cfg) return cli_usage_error("generate", "--beta and --cfg exclude each other");
  if ((has_beta || has_cfg) && !cls) return cli_usage_error("generate", "--beta and --cfg need --class");
  if (has_beta && c->gft_beta_dim == 0)
    return cli_usage_error("generate", "--beta needs a GFT checkpoint (train lm --gft); %s is a conditional (CFG) "
                                       "one: use --cfg W", ckpt);
  if (has_beta && sparq_gft_check_beta((float)beta, "generate --beta"))
    return cli_usage_error("generate", "%s", sparq_last_error());
  if (has_cfg && !(cfg >= 1.0))
    return cli_usage_error("generate", "--cfg %g is below 1 (w < 1 is beta = 1/w > 1, outside the training range)",
                           cfg);
  opt->label = (int32_t)c->num_classes;
  if (cls) {
    int rc = resolve_class(ckpt, cls, c->num_classes, &opt->label);
    if (rc) return rc;
  }
  opt->gft_beta = has_beta ? (float)beta : 1.0f;
  opt->cfg_scale = has_cfg ? (float)cfg : 1.0f;
  return CLI_OK;
}

int cli_generate(int argc, char **argv) {
  const char *ckpt = NULL, *prompt = "\n", *cls = NULL;
  int64_t tokens = 300, top_k = 200, seed = 1337;
  double temperature = 0.8, beta = NAN, cfg = NAN; /* NaN: not given */
  const cli_opt opts[] = {
      {"ckpt", CLI_STRING, &ckpt, 0, 0, NULL},
      {"prompt", CLI_STRING, &prompt, 0, 0, NULL},
      {"tokens", CLI_INT, &tokens, 0, 1e7, NULL},
      {"temperature", CLI_DOUBLE, &temperature, 0, 100, NULL},
      {"top-k", CLI_INT, &top_k, 0, 1 << 20, NULL},
      {"seed", CLI_INT, &seed, 0, 9.2e18, NULL},
      {"class", CLI_STRING, &cls, 0, 0, NULL},
      {"beta", CLI_DOUBLE, &beta, -1e9, 1e9, NULL},
      {"cfg", CLI_DOUBLE, &cfg, -1e9, 1e9, NULL},
  };
  int rc = cli_parse("generate", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  if (!ckpt) {
    fprintf(stderr, "sparq generate: --ckpt CKPT is required\n");
    cli_usage("generate", false);
    return CLI_USAGE;
  }
  size_t n_prompt = strlen(prompt);
  if (n_prompt == 0) {
    fprintf(stderr, "sparq generate: --prompt must not be empty\n");
    return CLI_USAGE;
  }
  sparq_gpt *g = NULL;
  if ((rc = cli_load_gpt(ckpt, &g))) return rc;
  const sparq_gpt_config *c = sparq_gpt_get_config(g);
  sparq_gpt_sampling opt = {.temperature = (float)temperature, .top_k = top_k};
  if ((rc = conditional_options(ckpt, c, cls, beta, cfg, &opt))) {
    sparq_gpt_free(g);
    return rc;
  }
  int32_t *ids = sparq_alloc((n_prompt + (size_t)tokens + 1) * sizeof *ids, "generation");
  if (!ids) {
    sparq_gpt_free(g);
    return cli_fail_last_error();
  }
  for (size_t i = 0; i < n_prompt; i++) ids[i] = (uint8_t)prompt[i];
  sparq_rng rng = sparq_rng_make((uint64_t)seed, 0x67656e);
  int64_t nfe = 1;
  const double t0 = sparq_now();
  sparq_status s = c->num_classes > 0
                       ? sparq_gpt_generate_cond(g, ids, (int64_t)n_prompt, tokens, &opt, &rng, ids + n_prompt, &nfe)
                       : sparq_gpt_generate(g, ids, (int64_t)n_prompt, tokens, (float)temperature, top_k, &rng,
                                            ids + n_prompt);
  if (s) {
    rc = cli_fail_last_error();
  } else {
    for (size_t i = 0; i < n_prompt + (size_t)tokens; i++) putchar(ids[i] & 0xff);
    putchar('\n');
    if (c->num_classes > 0) {
      /* on stderr, so stdout stays the text alone */
      char guide[64] = "unconditional (null class)";
      if (opt.cfg_scale > 1.0f) snprintf(guide, sizeof guide, "CFG w %g", opt.cfg_scale);
      else if (opt.label < c->num_classes) snprintf(guide, sizeof guide, "gft_beta %g", opt.gft_beta);
      fprintf(stderr, "generate: class %d, %s: NFE %" PRId64 " per token (%" PRId64 " forwards for %" PRId64
                      " tokens), %.2f s\n",
              (int)opt.label, guide, nfe, nfe * tokens, tokens, sparq_now() - t0);
    }
  }
  sparq_free(ids);
  sparq_gpt_free(g);
  return rc;
}

int cli_eval(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "fd")) return cli_eval_fd(argc, argv);
  if (argc < 2 || strcmp(argv[1], "lm") != 0) {
    fprintf(stderr, "sparq eval: expected lm or fd\n");
    cli_usage("eval", false);
    return CLI_USAGE;
  }
  const char *ckpt = NULL, *data = "fortunes";
  bool json = false;
  const cli_opt opts[] = {
      {"ckpt", CLI_STRING, &ckpt, 0, 0, NULL},
      {"data", CLI_STRING, &data, 0, 0, NULL},
      {"json", CLI_BOOL, &json, 0, 0, NULL},
  };
  int rc = cli_parse("eval", argc, argv, 2, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  if (!ckpt) {
    fprintf(stderr, "sparq eval: --ckpt CKPT is required\n");
    cli_usage("eval", false);
    return CLI_USAGE;
  }
  sparq_text_corpus corpus;
  bool builtin = !strcmp(data, "fortunes");
  if ((rc = cli_load_text(data, &corpus))) return rc;
  /* The built-in corpus is scored on its held-out split; a file as a whole. */
  const uint8_t *bytes = builtin ? corpus.val : corpus.bytes;
  size_t size = builtin ? corpus.val_size : corpus.size;
  sparq_gpt *g = NULL;
  if ((rc = cli_load_gpt(ckpt, &g))) {
    sparq_text_corpus_free(&corpus);
    return rc;
  }
  double loss = 0;
  int64_t n = 0;
  double t0 = sparq_now();
  if (sparq_gpt_eval_bytes(g, bytes, size, &loss, &n)) {
    rc = cli_fail_last_error();
  } else if (json) {
    printf("{\"loss_nats\":%.6f,\"bits_per_byte\":%.6f,\"tokens\":%" PRId64 "}\n", loss, loss / log(2.0), n);
  } else {
    printf("%s: %.4f nats/byte = %.4f bits/byte over %" PRId64 " bytes (%s, %.1f s)\n", ckpt, loss, loss / log(2.0),
           n, builtin ? "fortunes held-out split" : data, sparq_now() - t0);
  }
  sparq_gpt_free(g);
  sparq_text_corpus_free(&corpus);
  return rc;
}
