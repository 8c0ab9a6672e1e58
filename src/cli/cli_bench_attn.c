/* sparq bench attn: every attention variant and the three-pass FP32 baseline
 * in one process, interleaved (each round runs every contender once, so
 * load from other processes spreads over all of them), median of the timed
 * rounds after a warm-up round. Accuracy is measured on the spec's D1 case
 * against ref_f64 evaluated on the last `ref_rows` query rows of every head
 * (those see every key under a causal mask too): the full FP64 reference at
 * N = 4096 would take longer than the whole benchmark. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

enum { MAX_LIST = 16, MAX_ROUNDS = 101 };

/* A contender: a variant through sparq_attention, or the baseline. */
typedef struct contender {
  const char *name;
  sparq_attn_variant variant;
  bool threepass;
  double t[MAX_ROUNDS];
  float *out;
  sparq_status status;
  char error[256];
} contender;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static sparq_status run_contender(contender *c, const float *q, const float *k, const float *v,
                                  const sparq_attn_shape *s, bool causal) {
  sparq_attn_options o = sparq_attn_options_default();
  o.variant = c->threepass ? SPARQ_ATTN_FLASH_F32 : c->variant;
  o.causal = causal;
  return c->threepass ? sparq_attention_threepass(q, k, v, c->out, s, &o) : sparq_attention(q, k, v, c->out, s, &o);
}

/* The last `rows` query rows of every head of Q, and ref_f64 on them: with
 * the causal offset N - rows they see exactly the keys they see in the full
 * problem. */
static sparq_status reference_slice(const float *q, const float *k, const float *v, const sparq_attn_shape *s,
                                    bool causal, int64_t rows, float *qslice, float *ref) {
  const int64_t d = s->head_dim, first = s->q_len - rows;
  for (int64_t bh = 0; bh < s->batch * s->q_heads; bh++)
    memcpy(qslice + bh * rows * d, q + (bh * s->q_len + first) * d, (size_t)(rows * d) * sizeof(float));
  sparq_attn_shape sub = *s;
  sub.q_len = rows;
  sparq_attn_options o = sparq_attn_options_default();
  o.variant = SPARQ_ATTN_REF_F64;
  o.causal = causal, o.has_causal_offset = true, o.causal_offset = first;
  return sparq_attention(qslice, k, v, ref, &sub, &o);
}

/* Accuracy of a full output against the reference slice. */
static void slice_error(const float *out, const float *ref, const sparq_attn_shape *s, int64_t rows, float *tmp,
                        sparq_attn_error *e) {
  const int64_t d = s->head_dim, first = s->q_len - rows;
  for (int64_t bh = 0; bh < s->batch * s->q_heads; bh++)
    memcpy(tmp + bh * rows * d, out + (bh * s->q_len + first) * d, (size_t)(rows * d) * sizeof(float));
  sparq_attn_compare(ref, tmp, (size_t)(s->batch * s->q_heads * rows * d), e);
}

typedef struct bench_cfg {
  int64_t ns[MAX_LIST], ds[MAX_LIST];
  int nn, nd;
  contender cs[MAX_LIST];
  int ncs;
  bool causal[2]; /* off, on */
  int64_t batch, heads, rounds, ref_rows;
  bool json;
  FILE *jsonl;
} bench_cfg;

static void print_header(const bench_cfg *b, int threads, double peak) {
  if (b->json) return;
  printf("bench attn: %s, ISA %s, %d threads, FP32 peak %.1f GFLOP/s (%d threads)\n", sparq_cpu()->brand,
         sparq_isa_name(sparq_isa_active()), threads, peak, threads);
  printf("  D1 inputs; median of %lld interleaved rounds after 1 warm-up; GFLOP/s = 4 B H N^2 d / t (halved for "
         "causal); end to end (smoothing and quantization included)\n",
         (long long)b->rounds);
  printf("  accuracy vs ref_f64 on the last %lld query rows of every head; x flash = flash_f32 time / time, "
         "x 3pass = three-pass (sgemm, softmax, sgemm) time / time\n",
         (long long)b->ref_rows);
  printf("%-10s %2s %3s %5s %4s %6s %9s %8s %6s %7s %7s %10s %9s\n", "variant", "B", "H", "N", "d", "causal", "ms",
         "GFLOP/s", "%peak", "x flash", "x 3pass", "CosSim", "RelL1");
}

static int bench_shape(bench_cfg *b, int64_t n, int64_t d, bool causal, int threads, double peak) {
  sparq_attn_shape s = {b->batch, b->heads, b->heads, n, n, d};
  const int64_t rows = b->ref_rows < n ? b->ref_rows : n;
  const size_t count = (size_t)(b->batch * b->heads * n * d), slice = (size_t)(b->batch * b->heads * rows * d);
  float *q = sparq_alloc(count * 4, "bench Q"), *k = sparq_alloc(count * 4, "bench K");
  float *v = sparq_alloc(count * 4, "bench V"), *qs = sparq_alloc(slice * 4, "bench Q slice");
  float *ref = sparq_alloc(slice * 4, "bench reference"), *tmp = sparq_alloc(slice * 4, "bench slice");
  int rc = CLI_OK;
  for (int i = 0; i < b->ncs; i++) {
    b->cs[i].out = sparq_alloc(count * 4, "bench O");
    b->cs[i].status = b->cs[i].out ? SPARQ_OK : SPARQ_ERR_NOMEM;
  }
  if (!q || !k || !v || !qs || !ref || !tmp) {
    rc = cli_fail_last_error();
    goto done;
  }
  if (sparq_attn_make_case(1, &s, SPARQ_ATTN_HND, 2024, q, k, v) != SPARQ_OK ||
      reference_slice(q, k, v, &s, causal, rows, qs, ref) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  /* round 0 warms up; a contender that fails keeps its message and leaves the rounds */
  for (int64_t r = 0; r <= b->rounds; r++)
    for (int i = 0; i < b->ncs; i++) {
      contender *c = &b->cs[i];
      if (c->status != SPARQ_OK) continue;
      const double t0 = sparq_now();
      c->status = run_contender(c, q, k, v, &s, causal);
      if (c->status != SPARQ_OK) snprintf(c->error, sizeof c->error, "%s", sparq_last_error());
      if (r > 0) c->t[r - 1] = sparq_now() - t0;
    }
  const double flops = 4.0 * (double)b->batch * (double)b->heads * (double)n * (double)n * (double)d * (causal ? 0.5 : 1);
  double t_flash = 0, t_3pass = 0;
  for (int i = 0; i < b->ncs; i++) {
    contender *c = &b->cs[i];
    if (c->status != SPARQ_OK) continue;
    c->t[MAX_ROUNDS - 1] = median(c->t, (int)b->rounds); /* kept past the sorted rounds */
    if (c->threepass) t_3pass = c->t[MAX_ROUNDS - 1];
    else if (c->variant == SPARQ_ATTN_FLASH_F32) t_flash = c->t[MAX_ROUNDS - 1];
  }
  for (int i = 0; i < b->ncs; i++) {
    contender *c = &b->cs[i];
    if (c->status != SPARQ_OK) {
      if (b->json)
        printf("{\"variant\":\"%s\",\"B\":%lld,\"H\":%lld,\"N\":%lld,\"d\":%lld,\"causal\":%s,\"threads\":%d,"
               "\"error\":\"%s\"}\n",
               c->name, (long long)b->batch, (long long)b->heads, (long long)n, (long long)d, causal ? "true" : "false",
               threads, sparq_status_name(c->status));
      else
        printf("%-10s %2lld %3lld %5lld %4lld %6s   failed: %s\n", c->name, (long long)b->batch, (long long)b->heads,
               (long long)n, (long long)d, causal ? "on" : "off", c->error);
      continue;
    }
    const double t = c->t[MAX_ROUNDS - 1], gflops = flops / t * 1e-9;
    sparq_attn_error e;
    slice_error(c->out, ref, &s, rows, tmp, &e);
    const double x_flash = t_flash > 0 ? t_flash / t : 0, x_3pass = t_3pass > 0 ? t_3pass / t : 0;
    char line[512];
    snprintf(line, sizeof line,
             "{\"variant\":\"%s\",\"B\":%lld,\"H\":%lld,\"N\":%lld,\"d\":%lld,\"causal\":%s,\"threads\":%d,"
             "\"ms\":%.3f,\"gflops\":%.2f,\"peak_frac\":%.4f,\"speedup_flash\":%.3f,\"speedup_threepass\":%.3f,"
             "\"cos\":%.8f,\"rel_l1\":%.4g,\"ref_rows\":%lld}",
             c->name, (long long)b->batch, (long long)b->heads, (long long)n, (long long)d, causal ? "true" : "false",
             threads, t * 1e3, gflops, gflops / peak, x_flash, x_3pass, isfinite(e.cos_sim) ? e.cos_sim : -1.0,
             isfinite(e.rel_l1) ? e.rel_l1 : -1.0, (long long)rows);
    if (b->json) puts(line);
    else
      printf("%-10s %2lld %3lld %5lld %4lld %6s %9.2f %8.1f %5.1f%% %7.2f %7.2f %10.7f %9.3g\n", c->name,
             (long long)b->batch, (long long)b->heads, (long long)n, (long long)d, causal ? "on" : "off", t * 1e3,
             gflops, 100 * gflops / peak, x_flash, x_3pass, e.cos_sim, e.rel_l1);
    if (b->jsonl) fprintf(b->jsonl, "{\"bench\":\"attn\",%s\n", line + 1);
  }
  fflush(stdout);
done:
  sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(qs), sparq_free(ref), sparq_free(tmp);
  for (int i = 0; i < b->ncs; i++) sparq_free(b->cs[i].out), b->cs[i].out = NULL;
  return rc;
}

static int bench_run(bench_cfg *b) {
  const int threads = sparq_threads();
  /* the probe's best-of-3 at this thread count: one short sample would
   * understate the peak whenever another process takes a core */
  sparq_peak pk;
  if (sparq_peak_measure(&pk, 0.5) != SPARQ_OK) return cli_fail_last_error();
  const double peak = pk.fp32_fma_n;
  print_header(b, threads, peak);
  for (int in = 0; in < b->nn; in++)
    for (int id = 0; id < b->nd; id++)
      for (int causal = 0; causal <= 1; causal++) {
        if (!b->causal[causal]) continue;
        int rc = bench_shape(b, b->ns[in], b->ds[id], causal, threads, peak);
        if (rc != CLI_OK) return rc;
      }
  return CLI_OK;
}

static void add_contender(bench_cfg *b, const char *name, sparq_attn_variant v, bool threepass) {
  contender *c = &b->cs[b->ncs++];
  memset(c, 0, sizeof *c);
  c->name = name, c->variant = v, c->threepass = threepass;
}

static bool parse_ints(const char *text, int64_t *out, int *count, int64_t lo, int64_t hi) {
  *count = 0;
  for (const char *p = text; *p;) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < lo || v > hi || *count == MAX_LIST) return false;
    out[(*count)++] = v;
    p = end;
    if (*p == ',') p++;
    else if (*p) return false;
  }
  return *count > 0;
}

/* flash_f32 and the baseline always run: the speedup columns divide by them. */
static bool parse_variants(bench_cfg *b, const char *text) {
  add_contender(b, "flash_f32", SPARQ_ATTN_FLASH_F32, false);
  add_contender(b, "threepass", SPARQ_ATTN_FLASH_F32, true);
  if (!text) {
    for (int v = SPARQ_ATTN_SAGE1; v < SPARQ_ATTN_VARIANT_COUNT; v++)
      add_contender(b, sparq_attn_variant_name((sparq_attn_variant)v), (sparq_attn_variant)v, false);
    return true;
  }
  char buf[256];
  if (snprintf(buf, sizeof buf, "%s", text) >= (int)sizeof buf) return false;
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    sparq_attn_variant v;
    if (!strcmp(tok, "flash_f32") || !strcmp(tok, "threepass")) continue;
    if (!sparq_attn_variant_from_name(tok, &v) || b->ncs == MAX_LIST) return false;
    add_contender(b, sparq_attn_variant_name(v), v, false);
  }
  return true;
}

int cli_bench_attn(int argc, char **argv, FILE *jsonl) {
  const char *ns = "1024,2048,4096", *ds = "64,128", *variants = NULL, *causal = "both";
  bool json = false;
  int64_t rounds = 5, ref_rows = 128, heads = 8;
  const cli_opt opts[] = {
      {"json", CLI_BOOL, &json, 0, 0, NULL},
      {"n", CLI_STRING, &ns, 0, 0, NULL},
      {"d", CLI_STRING, &ds, 0, 0, NULL},
      {"variants", CLI_STRING, &variants, 0, 0, NULL},
      {"causal", CLI_CHOICE, &causal, 0, 0, "off|on|both"},
      {"rounds", CLI_INT, &rounds, 5, MAX_ROUNDS - 1, NULL},
      {"ref-rows", CLI_INT, &ref_rows, 1, 1 << 20, NULL},
      {"heads", CLI_INT, &heads, 1, 256, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  static bench_cfg b; /* the round timings make it a few KiB */
  memset(&b, 0, sizeof b);
  b.batch = 1, b.heads = heads, b.rounds = rounds, b.ref_rows = ref_rows, b.json = json, b.jsonl = jsonl;
  b.causal[0] = strcmp(causal, "on") != 0;
  b.causal[1] = strcmp(causal, "off") != 0;
  if (!parse_ints(ns, b.ns, &b.nn, 1, 1 << 20)) {
    fprintf(stderr, "sparq bench: --n expects a comma-separated list of lengths, got '%s'\n", ns);
    cli_usage("bench", false);
    return CLI_USAGE;
  }
  if (!parse_ints(ds, b.ds, &b.nd, 1, 256)) {
    fprintf(stderr, "sparq bench: --d expects a comma-separated list of head dims in 1..256, got '%s'\n", ds);
    cli_usage("bench", false);
    return CLI_USAGE;
  }
  if (!parse_variants(&b, variants)) {
    fprintf(stderr, "sparq bench: --variants expects names from ref_f64, flash_f32, sage1, sage2_8b, sage2_4b, "
                    "sage_cpu, threepass, got '%s'\n", variants);
    cli_usage("bench", false);
    return CLI_USAGE;
  }
  return bench_run(&b);
}

int cli_demo_attn(FILE *jsonl) {
  static bench_cfg b;
  memset(&b, 0, sizeof b);
  b.batch = 1, b.heads = 4, b.rounds = 5, b.ref_rows = 128, b.jsonl = jsonl;
  b.ns[0] = 1024, b.nn = 1, b.ds[0] = 128, b.nd = 1;
  b.causal[0] = true;
  parse_variants(&b, "sage_cpu,sage2_8b,sage2_4b");
  return bench_run(&b);
}
