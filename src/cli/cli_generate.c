/* sparq generate and sparq eval lm: use a trained GPT checkpoint. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
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

int cli_generate(int argc, char **argv) {
  const char *ckpt = NULL, *prompt = "\n";
  int64_t tokens = 300, top_k = 200, seed = 1337;
  double temperature = 0.8;
  const cli_opt opts[] = {
      {"ckpt", CLI_STRING, &ckpt, 0, 0, NULL},
      {"prompt", CLI_STRING, &prompt, 0, 0, NULL},
      {"tokens", CLI_INT, &tokens, 0, 1e7, NULL},
      {"temperature", CLI_DOUBLE, &temperature, 0, 100, NULL},
      {"top-k", CLI_INT, &top_k, 0, 1 << 20, NULL},
      {"seed", CLI_INT, &seed, 0, 9.2e18, NULL},
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
  int32_t *ids = sparq_alloc((n_prompt + (size_t)tokens + 1) * sizeof *ids, "generation");
  if (!ids) {
    sparq_gpt_free(g);
    return cli_fail_last_error();
  }
  for (size_t i = 0; i < n_prompt; i++) ids[i] = (uint8_t)prompt[i];
  sparq_rng rng = sparq_rng_make((uint64_t)seed, 0x67656e);
  if (sparq_gpt_generate(g, ids, (int64_t)n_prompt, tokens, (float)temperature, top_k, &rng, ids + n_prompt)) {
    rc = cli_fail_last_error();
  } else {
    for (size_t i = 0; i < n_prompt + (size_t)tokens; i++) putchar(ids[i] & 0xff);
    putchar('\n');
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
