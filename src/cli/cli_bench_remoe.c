/* sparq bench remoe: spec remoe.md section 8's CPU protocol (dense, TopK
 * with aux loss, ReMoE with LB-L1 and with plain L1, trained on the same
 * batches from the same seed) with its table, then the training
 * throughput of k-of-E MoE against the dense model, interleaved in one
 * process. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

typedef struct run_summary {
  double val, active, s_mean, s_std, s_min, load;
  int64_t s_min_step, settle, steps;
  double seconds, tokens_per_s;
} run_summary;

/* Reads RUN/log.jsonl: sparsity statistics after step 100 (the spec's
 * convention), the dip, the step from which sparsity stays within 0.03 of
 * the target, and the means of active experts and load ratio over the last
 * 100 steps. */
static int summarize(const char *dir, bool moe, double target, run_summary *r) {
  char path[4400];
  snprintf(path, sizeof path, "%.4200s/log.jsonl", dir);
  FILE *in = fopen(path, "rb");
  if (!in) return cli_fail("%s: %s", path, strerror(errno));
  char line[4096];
  int64_t cap = 1024, n = 0;
  double *S = malloc((size_t)cap * sizeof *S), *A = malloc((size_t)cap * sizeof *A), *Ld = malloc((size_t)cap * sizeof *Ld);
  int rc = S && A && Ld ? CLI_OK : cli_fail("out of memory");
  while (!rc && fgets(line, sizeof line, in)) {
    cJSON *o = cJSON_Parse(line);
    if (!o) continue;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "sparsity"), *a = cJSON_GetObjectItemCaseSensitive(o, "active_mean"),
                *l = cJSON_GetObjectItemCaseSensitive(o, "load_max_mean"), *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    if (cJSON_IsNumber(loss)) {
      if (n == cap) {
        cap *= 2;
        double *s2 = realloc(S, (size_t)cap * sizeof *S), *a2 = realloc(A, (size_t)cap * sizeof *A);
        double *l2 = realloc(Ld, (size_t)cap * sizeof *Ld);
        if (s2) S = s2;
        if (a2) A = a2;
        if (l2) Ld = l2;
        if (!s2 || !a2 || !l2) rc = cli_fail("out of memory");
      }
      if (!rc) {
        S[n] = cJSON_IsNumber(s) ? s->valuedouble : 0.0;
        A[n] = cJSON_IsNumber(a) ? a->valuedouble : 1.0;
        Ld[n] = cJSON_IsNumber(l) ? l->valuedouble : 1.0;
        n++;
      }
    }
    cJSON_Delete(o);
  }
  fclose(in);
  if (!rc && n == 0) rc = cli_fail("%s: no step records", path);
  if (!rc) {
    r->steps = n;
    const int64_t skip = n > 100 ? 100 : 0, tail = n > 100 ? n - 100 : 0;
    double sum = 0, sq = 0, act = 0, load = 0;
    for (int64_t i = skip; i < n; i++) sum += S[i], sq += S[i] * S[i];
    r->s_mean = sum / (double)(n - skip);
    r->s_std = sqrt(fmax(0.0, sq / (double)(n - skip) - r->s_mean * r->s_mean));
    for (int64_t i = tail; i < n; i++) act += A[i], load += Ld[i];
    r->active = moe ? act / (double)(n - tail) : 1.0;
    r->load = moe ? load / (double)(n - tail) : 1.0;
    r->s_min = S[0], r->s_min_step = 1;
    for (int64_t i = 0; i < n; i++)
      if (S[i] < r->s_min) r->s_min = S[i], r->s_min_step = i + 1;
    r->settle = 0;
    for (int64_t i = n - 1; i >= 0 && fabs(S[i] - target) <= 0.03; i--) r->settle = i + 1;
    if (!moe) r->s_mean = r->s_std = r->s_min = 0, r->settle = 0;
  }
  free(S), free(A), free(Ld);
  return rc;
}

/* Training steps (forward, backward, AdamW) of each model on the same
 * batch of training text (a ReLU router's load depends on the bytes: random
 * bytes are all "rare" and open more experts), rounds interleaved; returns
 * the median tokens/s of each and the mean active experts per token and
 * block of the last one (0 for a dense model). */
static int throughput(sparq_gpt **models, int count, const char *data, int64_t batch, int64_t seq, int rounds,
                      int steps, double *tps, double *active) {
  const size_t ntok = (size_t)(batch * seq);
  int32_t *x = sparq_alloc(ntok * sizeof *x, "bench batch"), *y = sparq_alloc(ntok * sizeof *y, "bench batch");
  double *t = sparq_alloc((size_t)(rounds * count) * sizeof *t, "bench times");
  sparq_adamw_state adam[4] = {0};
  int rc = x && y && t ? CLI_OK : cli_fail_last_error();
  sparq_rng rng = sparq_rng_make(1, 2);
  sparq_text_corpus corpus = {0};
  if (!rc && (rc = cli_load_text(data, &corpus)) == CLI_OK &&
      sparq_text_batch(corpus.train, corpus.train_size, batch, seq, &rng, x, y))
    rc = cli_fail_last_error();
  sparq_text_corpus_free(&corpus);
  for (int m = 0; !rc && m < count; m++)
    if (sparq_adamw_init(&adam[m], sparq_gpt_params(models[m]))) rc = cli_fail_last_error();
  const sparq_adamw_config ac = sparq_adamw_config_default();
  for (int r = -1; !rc && r < rounds; r++) /* round -1 warms up */
    for (int m = 0; !rc && m < count; m++) {
      sparq_param_list *pl = sparq_gpt_params(models[m]);
      double t0 = sparq_now();
      for (int s = 0; !rc && s < steps; s++) {
        sparq_params_zero_grad(pl);
        float loss;
        if (sparq_gpt_forward(models[m], x, y, batch, seq, &loss) || sparq_gpt_backward(models[m], 1.0f) ||
            sparq_adamw_step(&adam[m], pl, &ac, 0.0f))
          rc = cli_fail_last_error();
      }
      if (r >= 0) t[m * rounds + r] = sparq_now() - t0;
    }
  for (int m = 0; !rc && m < count; m++) {
    double *v = t + m * rounds;
    for (int i = 1; i < rounds; i++)
      for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
        double tmp = v[j];
        v[j] = v[j - 1];
        v[j - 1] = tmp;
      }
    tps[m] = (double)ntok * steps / v[rounds / 2];
    active[m] = 0.0;
    const int64_t L = sparq_gpt_moe_count(models[m]);
    for (int64_t j = 0; j < L; j++) {
      sparq_moe_stats st;
      if (sparq_gpt_moe_stats(models[m], j, NULL, &st)) continue;
      active[m] += (double)st.nnz / (double)st.rows / (double)L;
    }
  }
  for (int m = 0; m < count; m++) sparq_adamw_free(&adam[m]);
  sparq_free(x), sparq_free(y), sparq_free(t);
  return rc;
}

int cli_bench_remoe(int argc, char **argv) {
  const char *out = "sparq-out/remoe", *runs = "dense,topk,remoe-lb,remoe-plain", *data = "fortunes";
  int64_t layers = 4, heads = 4, dim = 128, seq = 128, batch = 16, steps = 1200, warmup = 50, experts = 8, topk = 1;
  int64_t eval_every = 100, eval_batches = 64, seed = 1337, tp_steps = 3, tp_rounds = 5;
  bool json = false, no_train = false;
  const cli_opt opts[] = {
      {"out", CLI_STRING, &out, 0, 0, NULL},         {"runs", CLI_STRING, &runs, 0, 0, NULL},
      {"data", CLI_STRING, &data, 0, 0, NULL},       {"layers", CLI_INT, &layers, 1, 64, NULL},
      {"heads", CLI_INT, &heads, 1, 4096, NULL},     {"dim", CLI_INT, &dim, 1, 65536, NULL},
      {"seq", CLI_INT, &seq, 1, 65536, NULL},        {"batch", CLI_INT, &batch, 1, 65536, NULL},
      {"steps", CLI_INT, &steps, 1, 1e9, NULL},      {"warmup", CLI_INT, &warmup, 0, 1e9, NULL},
      {"experts", CLI_INT, &experts, 1, SPARQ_MOE_MAX_EXPERTS, NULL},
      {"topk", CLI_INT, &topk, 1, SPARQ_MOE_MAX_EXPERTS, NULL},
      {"eval-every", CLI_INT, &eval_every, 0, 1e9, NULL}, {"eval-batches", CLI_INT, &eval_batches, 1, 1e6, NULL},
      {"seed", CLI_INT, &seed, 0, 9.2e18, NULL},     {"throughput-steps", CLI_INT, &tp_steps, 1, 1000, NULL},
      {"throughput-rounds", CLI_INT, &tp_rounds, 1, 100, NULL},
      {"no-train", CLI_BOOL, &no_train, 0, 0, NULL}, {"json", CLI_BOOL, &json, 0, 0, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  if (topk > experts) return cli_usage_error("bench", "--topk %" PRId64 " is more than --experts %" PRId64, topk, experts);
  static const char *names[] = {"dense", "topk", "remoe-lb", "remoe-plain"};
  bool want[4] = {0};
  if ((rc = cli_pick_runs("bench", runs, names, 4, want))) return rc;
  const double target = 1.0 - (double)topk / (double)experts;
  run_summary sum[4] = {0};
  char dir[4][4200];
  for (int i = 0; !no_train && i < 4; i++) {
    if (!want[i]) continue;
    snprintf(dir[i], sizeof dir[i], "%.4000s/%s", out, names[i]);
    cli_lm_flags f = cli_lm_flags_default();
    f.data = data, f.out = dir[i], f.layers = layers, f.heads = heads, f.dim = dim, f.seq = seq, f.batch = batch;
    f.steps = steps, f.warmup = warmup, f.lr = 1e-3, f.min_lr = 1e-4, f.wd = 0.1, f.clip = 1.0;
    f.eval_every = eval_every, f.eval_batches = eval_batches, f.ckpt_every = 0, f.seed = seed;
    if (i > 0) f.experts = experts, f.topk = topk, f.moe = i == 1 ? "topk" : "relu";
    if (i == 1) f.aux = 1e-2;
    if (i >= 2) f.l1 = i == 2 ? "lb" : "plain", f.lambda0 = 1e-8, f.alpha = 1.2;
    fprintf(stderr, "bench remoe: training %s into %s (%" PRId64 " steps)\n", names[i], dir[i], steps);
    sparq_train_result res;
    if ((rc = cli_train_lm_run(&f, &res, true))) return rc;
    sum[i].val = res.last_eval, sum[i].seconds = res.seconds, sum[i].tokens_per_s = res.tokens_per_s;
    if ((rc = summarize(dir[i], i > 0, target, &sum[i]))) return rc;
  }
  if (!no_train) {
    printf("bench remoe: %" PRId64 " layers, dim %" PRId64 ", context %" PRId64 ", batch %" PRId64 ", %" PRId64
           " steps, E %" PRId64 ", k %" PRId64 " (target sparsity %.4f), %d threads\n",
           layers, dim, seq, batch, steps, experts, topk, target, sparq_threads());
    printf("| run | val loss (nats/byte) | active experts / token (last 100 steps) | sparsity mean ± std (after "
           "step 100) | min sparsity (step) | within ±0.03 from step | load max/mean (last 100) | train s |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 4; i++) {
      if (!want[i]) continue;
      if (json)
        fprintf(stderr, "{\"run\":\"%s\",\"val_loss\":%.5f,\"active\":%.4f,\"sparsity_mean\":%.5f,\"sparsity_std\":%.5f,"
                        "\"sparsity_min\":%.5f,\"sparsity_min_step\":%" PRId64 ",\"settle_step\":%" PRId64
                        ",\"load_max_mean\":%.4f,\"seconds\":%.1f}\n",
                names[i], sum[i].val, sum[i].active, sum[i].s_mean, sum[i].s_std, sum[i].s_min, sum[i].s_min_step,
                sum[i].settle, sum[i].load, sum[i].seconds);
      if (i == 0)
        printf("| dense | %.4f | 1 (one FFN) | | | | | %.0f |\n", sum[i].val, sum[i].seconds);
      else
        printf("| %s | %.4f | %.3f | %.4f ± %.4f | %.4f (%" PRId64 ") | %s%" PRId64 " | %.3f | %.0f |\n", names[i],
               sum[i].val, sum[i].active, sum[i].s_mean, sum[i].s_std, sum[i].s_min, sum[i].s_min_step,
               sum[i].settle ? "" : "never: ", sum[i].settle ? sum[i].settle : sum[i].steps, sum[i].load,
               sum[i].seconds);
    }
  }
  for (int i = 1; !no_train && i < 4; i++) {
    double top, top_share, rare, rare_share;
    if (!want[i] || (rc = cli_moe_byte_summary(dir[i], &top, &top_share, &rare, &rare_share))) continue;
    printf("%s: active experts per byte %.3f for the 8 most frequent bytes (%.1f%% of tokens), %.3f for bytes "
           "under 0.1%% (%.2f%% of tokens); %s/moe_bytes.tsv\n",
           names[i], top, 100 * top_share, rare, 100 * rare_share, dir[i]);
  }
  if (rc) return rc;
  /* throughput: dense, TopK k of E and (when the protocol trained it) the ReMoE checkpoint */
  sparq_gpt *models[3] = {0};
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = layers, c.n_head = heads, c.n_embd = dim, c.block_size = seq;
  int count = 2;
  if (sparq_gpt_create(&c, 1, &models[0])) rc = cli_fail_last_error();
  c.moe_router = SPARQ_MOE_TOPK, c.moe_experts = experts, c.moe_topk = topk;
  c.moe_layers = layers >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << layers) - 1;
  if (!rc && sparq_gpt_create(&c, 1, &models[1])) rc = cli_fail_last_error();
  char remoe_ckpt[4300];
  snprintf(remoe_ckpt, sizeof remoe_ckpt, "%.4000s/remoe-lb/ckpt.safetensors", out);
  FILE *probe = fopen(remoe_ckpt, "rb");
  if (probe) {
    fclose(probe);
    if (!rc && (cli_load_gpt(remoe_ckpt, &models[2]) == CLI_OK)) count = 3;
    else if (!rc) rc = CLI_FAIL;
  }
  double tps[3] = {0}, active[3] = {0};
  if (!rc) rc = throughput(models, count, data, batch, seq, (int)tp_rounds, (int)tp_steps, tps, active);
  if (!rc) {
    printf("throughput (training steps on %" PRId64 "x%" PRId64 " tokens, interleaved, median of %" PRId64
           " rounds): dense %.0f tokens/s, TopK k=%" PRId64 " of E=%" PRId64 " %.0f tokens/s (%.3fx dense)",
           batch, seq, tp_rounds, tps[0], topk, experts, tps[1], tps[1] / tps[0]);
    if (count == 3)
      printf(", ReMoE checkpoint %s %.0f tokens/s (%.3fx dense; %.3f active experts per token on this batch)",
             remoe_ckpt, tps[2], tps[2] / tps[0], active[2]);
    printf("\n");
    if (json)
      printf("{\"bench\":\"remoe_throughput\",\"dense_tokens_per_s\":%.1f,\"topk_tokens_per_s\":%.1f,\"topk_ratio\":%.4f,"
             "\"remoe_tokens_per_s\":%.1f,\"remoe_ratio\":%.4f,\"remoe_active\":%.4f,\"threads\":%d}\n",
             tps[0], tps[1], tps[1] / tps[0], tps[2], count == 3 ? tps[2] / tps[0] : 0.0, active[2], sparq_threads());
  }
  for (int m = 0; m < 3; m++) sparq_gpt_free(models[m]);
  return rc;
}
