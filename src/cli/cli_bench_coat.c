/* sparq bench coat: spec coat-fp8.md section 8's CPU protocol. Four runs of
 * `sparq train lm` on the same batches from the same seed: FP32 AdamW,
 * plain per-group E4M3 moments (no DRE), COAT's FP8 AdamW (DRE), and COAT's
 * optimizer with FP8 activations; then one table of held-out loss, the
 * memory ledger, the measured peak RSS and tokens/s side by side.
 *
 * Each run is a child process (this very executable, `train lm`), because
 * getrusage's peak RSS only grows within a process: four runs in one
 * process would all report the largest. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

extern char **environ;

enum { ARMS = 4 };
static const char *const ARM_NAMES[ARMS] = {"fp32", "fp8-nodre", "coat", "coat-act"};
static const char *const ARM_OPTIM[ARMS] = {"adamw", "adamw-fp8-nodre", "adamw-fp8", "adamw-fp8"};

typedef struct arm_result {
  double val_loss, tokens_per_s;
  double params, grads, optim, acts, total, peak_rss, rss_start;
  int64_t v_flush_total, v_flush_max, nan_total, steps;
} arm_result;

static double json_number(const cJSON *o, const char *key, double fallback) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

/* RUN/memory.json (one object) and RUN/log.jsonl: the last held-out loss, the
 * mean tokens/s of the step records, the v-flush and NaN counters. */
static int read_arm(const char *dir, arm_result *r) {
  char path[4400];
  char line[8192];
  snprintf(path, sizeof path, "%.4200s/memory.json", dir);
  FILE *in = fopen(path, "rb");
  if (!in) return cli_fail("%s: %s (did the run finish?)", path, strerror(errno));
  cJSON *m = fgets(line, sizeof line, in) ? cJSON_Parse(line) : NULL;
  fclose(in);
  if (!m) return cli_fail("%s: not one JSON object", path);
  r->params = json_number(m, "params_bytes", NAN), r->grads = json_number(m, "grads_bytes", NAN);
  r->optim = json_number(m, "optimizer_state_bytes", NAN), r->acts = json_number(m, "activation_bytes", NAN);
  r->peak_rss = json_number(m, "peak_rss_bytes", NAN), r->rss_start = json_number(m, "rss_start_bytes", 0);
  r->total = r->params + r->grads + r->optim + r->acts;
  cJSON_Delete(m);

  snprintf(path, sizeof path, "%.4200s/log.jsonl", dir);
  if (!(in = fopen(path, "rb"))) return cli_fail("%s: %s", path, strerror(errno));
  double tps = 0;
  r->val_loss = NAN, r->steps = r->v_flush_total = r->v_flush_max = r->nan_total = 0;
  while (fgets(line, sizeof line, in)) {
    cJSON *o = cJSON_Parse(line);
    if (!o) continue;
    const double ev = json_number(o, "eval_loss", NAN);
    if (!isnan(ev)) r->val_loss = ev;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "loss"))) {
      r->steps++;
      tps += json_number(o, "tokens_per_s", 0);
      const int64_t flush = (int64_t)json_number(o, "v_flush", 0);
      r->v_flush_total += flush;
      if (flush > r->v_flush_max) r->v_flush_max = flush;
      r->nan_total += (int64_t)(json_number(o, "nan_params", 0) + json_number(o, "nan_m", 0) +
                                json_number(o, "nan_v", 0));
    }
    cJSON_Delete(o);
  }
  fclose(in);
  r->tokens_per_s = r->steps ? tps / (double)r->steps : 0;
  return CLI_OK;
}

/* Runs `argv` (argv[0] = this executable) with stdout and stderr into
 * log_path; CLI_OK when it exits with status 0. *peak_rss (may be NULL)
 * receives the child's maximum resident set size in bytes (wait4). */
static int spawn_and_wait(char **argv, const char *log_path, double *peak_rss) {
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa)) return cli_fail("bench coat: posix_spawn_file_actions_init failed");
  int rc = CLI_OK;
  if (posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) ||
      posix_spawn_file_actions_adddup2(&fa, 1, 2))
    rc = cli_fail("bench coat: cannot redirect the run's output to %s", log_path);
  pid_t pid = 0;
  int err = rc ? 0 : posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc) return rc;
  if (err) return cli_fail("bench coat: cannot start %s: %s", argv[0], strerror(err));
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) return cli_fail("bench coat: wait4: %s", strerror(errno));
  if (peak_rss) *peak_rss = (double)ru.ru_maxrss * 1024.0; /* Linux reports KiB */
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return cli_fail("bench coat: the run failed (%s %d); its output is in %s",
                    WIFEXITED(status) ? "exit status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log_path);
  return CLI_OK;
}

static double ratio(double base, double x) { return x > 0 ? base / x : NAN; }

static void print_table(const arm_result *r, const bool *want, double bare, bool json) {
  const arm_result *b = &r[0];
  printf("| run | val loss (nats/byte) | vs FP32 | optimizer state | saved activations | ledger total "
         "| peak RSS | peak RSS above the bare process | peak RSS above start | tokens/s "
         "| v flushed to 0 (max per step) | NaN |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int i = 0; i < ARMS; i++) {
    if (!want[i]) continue;
    const arm_result *a = &r[i];
    const double above = a->peak_rss - a->rss_start, above_b = b->peak_rss - b->rss_start;
    const double used = a->peak_rss - bare, used_b = b->peak_rss - bare;
    printf("| %s | %.4f | %+.2f%% | %.3f MB (%.2fx) | %.3f MB (%.2fx) | %.3f MB (%.2fx) | %.1f MB (%.2fx) "
           "| %.1f MB (%.2fx) | %.1f MB (%.2fx) | %.0f | %" PRId64 " (%" PRId64 ") | %" PRId64 " |\n",
           ARM_NAMES[i], a->val_loss, want[0] ? 100 * (a->val_loss / b->val_loss - 1) : NAN, a->optim / 1e6,
           ratio(b->optim, a->optim), a->acts / 1e6, ratio(b->acts, a->acts), a->total / 1e6,
           ratio(b->total, a->total), a->peak_rss / 1e6, ratio(b->peak_rss, a->peak_rss), used / 1e6,
           ratio(used_b, used), above / 1e6, ratio(above_b, above), a->tokens_per_s, a->v_flush_total,
           a->v_flush_max, a->nan_total);
  }
  printf("(bare process: %.1f MB resident for `sparq --version`, code and libraries only; start: the RSS when "
         "training starts, after the corpus, weights and gradients are loaded)\n", bare / 1e6);
  if (want[0]) printf("(ratios: the FP32 run's bytes over the run's bytes; vs FP32: relative held-out loss)\n");
  for (int i = 0; json && i < ARMS; i++)
    if (want[i])
      printf("{\"bench\":\"coat\",\"run\":\"%s\",\"val_loss\":%.6f,\"params_bytes\":%.0f,\"grads_bytes\":%.0f,"
             "\"optimizer_state_bytes\":%.0f,\"activation_bytes\":%.0f,\"total_bytes\":%.0f,\"peak_rss_bytes\":%.0f,"
             "\"rss_start_bytes\":%.0f,\"bare_rss_bytes\":%.0f,\"tokens_per_s\":%.1f,\"v_flush\":%" PRId64 ",\"nan\":%" PRId64 "}\n",
             ARM_NAMES[i], r[i].val_loss, r[i].params, r[i].grads, r[i].optim, r[i].acts, r[i].total,
             r[i].peak_rss, r[i].rss_start, bare, r[i].tokens_per_s, r[i].v_flush_total, r[i].nan_total);
}

int cli_bench_coat(int argc, char **argv) {
  const char *out = "sparq-out/coat", *runs = "fp32,fp8-nodre,coat,coat-act", *data = "fortunes";
  int64_t layers = 4, heads = 4, dim = 128, seq = 128, batch = 8, steps = 1000, warmup = 50, eval_every = 100;
  int64_t eval_batches = 64, seed = 1337;
  double lr = 1e-3, min_lr = 1e-4;
  bool json = false, no_train = false;
  const cli_opt opts[] = {
      {"out", CLI_STRING, &out, 0, 0, NULL},         {"runs", CLI_STRING, &runs, 0, 0, NULL},
      {"data", CLI_STRING, &data, 0, 0, NULL},       {"layers", CLI_INT, &layers, 1, 1024, NULL},
      {"heads", CLI_INT, &heads, 1, 4096, NULL},     {"dim", CLI_INT, &dim, 1, 65536, NULL},
      {"seq", CLI_INT, &seq, 1, 65536, NULL},        {"batch", CLI_INT, &batch, 1, 65536, NULL},
      {"steps", CLI_INT, &steps, 1, 1e9, NULL},      {"warmup", CLI_INT, &warmup, 0, 1e9, NULL},
      {"lr", CLI_DOUBLE, &lr, 1e-12, 10, NULL},      {"min-lr", CLI_DOUBLE, &min_lr, 0, 10, NULL},
      {"eval-every", CLI_INT, &eval_every, 0, 1e9, NULL}, {"eval-batches", CLI_INT, &eval_batches, 1, 1e6, NULL},
      {"seed", CLI_INT, &seed, 0, 9.2e18, NULL},     {"no-train", CLI_BOOL, &no_train, 0, 0, NULL},
      {"json", CLI_BOOL, &json, 0, 0, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  bool want[ARMS] = {0};
  if ((rc = cli_pick_runs("bench", runs, ARM_NAMES, ARMS, want))) return rc;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return cli_fail("bench coat: cannot find this executable (/proc/self/exe): %s", strerror(errno));
  exe[n] = '\0';
  if (mkdir(out, 0755) && errno != EEXIST) return cli_fail("bench coat: cannot create %s: %s", out, strerror(errno));

  /* The resident size of the bare process (code and libraries, nothing
   * loaded or allocated): what no training setting can shrink. */
  char bare_log[4200];
  snprintf(bare_log, sizeof bare_log, "%.4000s/bare.out", out);
  char *bare_args[] = {exe, "--version", NULL};
  double bare = 0;
  if ((rc = spawn_and_wait(bare_args, bare_log, &bare))) return rc;
  arm_result res[ARMS] = {0};
  for (int i = 0; i < ARMS; i++) {
    if (!want[i]) continue;
    char dir[4200], log_path[4300], th[32], a[12][32];
    snprintf(dir, sizeof dir, "%.4000s/%s", out, ARM_NAMES[i]);
    snprintf(log_path, sizeof log_path, "%s.out", dir);
    if (!no_train) {
      snprintf(th, sizeof th, "%d", sparq_threads());
      snprintf(a[0], 32, "%" PRId64, layers), snprintf(a[1], 32, "%" PRId64, heads);
      snprintf(a[2], 32, "%" PRId64, dim), snprintf(a[3], 32, "%" PRId64, seq);
      snprintf(a[4], 32, "%" PRId64, batch), snprintf(a[5], 32, "%" PRId64, steps);
      snprintf(a[6], 32, "%" PRId64, warmup), snprintf(a[7], 32, "%.9g", lr), snprintf(a[8], 32, "%.9g", min_lr);
      snprintf(a[9], 32, "%" PRId64, eval_every), snprintf(a[10], 32, "%" PRId64, eval_batches);
      snprintf(a[11], 32, "%" PRId64, seed);
      /* spec section 8: betas (0.9, 0.95), wd 0.1, warm-up then cosine; clip 1 as every sparq LM run */
      char *args[64] = {exe, "--threads", th, "train", "lm", "--out", dir, "--data", (char *)data,
                        "--layers", a[0], "--heads", a[1], "--dim", a[2], "--seq", a[3], "--batch", a[4],
                        "--steps", a[5], "--warmup", a[6], "--lr", a[7], "--min-lr", a[8], "--beta1", "0.9",
                        "--beta2", "0.95", "--wd", "0.1", "--clip", "1", "--eval-every", a[9],
                        "--eval-batches", a[10], "--ckpt-every", "0", "--seed", a[11],
                        "--optim", (char *)ARM_OPTIM[i]};
      int k = 0;
      while (args[k]) k++;
      if (i == 3) args[k++] = "--fp8-act";
      args[k] = NULL;
      fprintf(stderr, "bench coat: training %s into %s (%" PRId64 " steps; output in %s)\n", ARM_NAMES[i], dir,
              steps, log_path);
      if ((rc = spawn_and_wait(args, log_path, NULL))) return rc;
    }
    if ((rc = read_arm(dir, &res[i]))) return rc;
  }
  printf("bench coat: spec coat-fp8.md section 8, nanoGPT %" PRId64 " layers, dim %" PRId64 ", %" PRId64
         " heads, context %" PRId64 ", batch %" PRId64 ", %" PRId64 " steps, lr %g cosine to %g, %d threads\n",
         layers, dim, heads, seq, batch, steps, lr, min_lr, sparq_threads());
  print_table(res, want, bare, json);
  return CLI_OK;
}
