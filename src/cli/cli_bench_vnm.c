/* sparq bench vnm: sparq_vnm_gemm against sparq_sgemm on the same layer,
 * dense and sparse runs interleaved in one process so both see the same
 * machine state (the host is shared and noisy; ratios from one run are
 * what to compare). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"
#include "sparq/vnm.h"

enum { WARMUPS = 2 };

int cli_bench_vnm_row(int64_t rows, int64_t cols, int64_t tokens, sparq_vnm_pattern p, int reps,
                      cli_vnm_timing *out) {
  size_t nw = (size_t)(rows * cols), nx = (size_t)(tokens * cols), ny = (size_t)(tokens * rows);
  float *w = sparq_alloc(nw * sizeof(float), "bench vnm W"), *x = sparq_alloc(nx * sizeof(float), "bench vnm X");
  float *yd = sparq_alloc(ny * sizeof(float), "bench vnm Y"), *ys = sparq_alloc(ny * sizeof(float), "bench vnm Y");
  sparq_vnm_matrix *m = NULL;
  int rc = CLI_OK;
  if (!w || !x || !yd || !ys) {
    rc = cli_fail_last_error();
    goto done;
  }
  sparq_rng rng = sparq_rng_make(5, 0);
  sparq_rng_fill_normal(&rng, w, nw, 0, 1);
  sparq_rng_fill_uniform(&rng, x, nx, -1, 1);
  sparq_vnm_prune_opts opts = {.pattern = p, .select = SPARQ_VNM_SELECT_JOINT};
  if (sparq_vnm_prune(w, rows, cols, NULL, &opts, &m, NULL) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  double best_d = 1e30, best_s = 1e30;
  for (int r = 0; r < WARMUPS + reps; r++) {
    double t0 = sparq_now();
    sparq_status st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, tokens, rows, cols, 1, x, cols, w, cols, 0, yd, rows);
    double t1 = sparq_now();
    if (st == SPARQ_OK) st = sparq_vnm_gemm(m, tokens, x, cols, ys, rows);
    double t2 = sparq_now();
    if (st != SPARQ_OK) {
      rc = cli_fail_last_error();
      goto done;
    }
    if (r < WARMUPS) continue;
    if (t1 - t0 < best_d) best_d = t1 - t0;
    if (t2 - t1 < best_s) best_s = t2 - t1;
  }
  out->dense_ms = best_d * 1e3;
  out->sparse_ms = best_s * 1e3;
  out->dense_gflops = 2.0 * (double)rows * (double)cols * (double)tokens / best_d * 1e-9;
  out->useful_gflops = 2.0 * (double)rows * (double)cols * (double)tokens * 2.0 / p.m / best_s * 1e-9;
  out->speedup = best_d / best_s;
done:
  sparq_vnm_free(m);
  sparq_free(w);
  sparq_free(x);
  sparq_free(yd);
  sparq_free(ys);
  return rc;
}

void cli_bench_vnm_print(FILE *f, bool json, int64_t rows, int64_t cols, int64_t tokens, sparq_vnm_pattern p,
                         const cli_vnm_timing *t) {
  char pat[32];
  sparq_vnm_pattern_format(p, pat, sizeof pat);
  if (json)
    fprintf(f,
            "{\"bench\":\"vnm\",\"R\":%lld,\"C\":%lld,\"T\":%lld,\"pattern\":\"%s\",\"threads\":%d,\"dense_ms\":%.4f,"
            "\"sparse_ms\":%.4f,\"speedup\":%.3f,\"dense_gflops\":%.2f,\"useful_gflops\":%.2f}\n",
            (long long)rows, (long long)cols, (long long)tokens, pat, sparq_threads(), t->dense_ms, t->sparse_ms,
            t->speedup, t->dense_gflops, t->useful_gflops);
  else
    fprintf(f, "  %5lld %5lld %5lld  %-8s %9.3f %9.3f %9.1f %9.1f   %5.2fx\n", (long long)rows, (long long)cols,
            (long long)tokens, pat, t->dense_ms, t->sparse_ms, t->dense_gflops, t->useful_gflops, t->speedup);
}

void cli_bench_vnm_header(FILE *f, int reps) {
  fprintf(f, "bench vnm: sparq_vnm_gemm vs sparq_sgemm (%s), %d threads, ISA %s, best of %d interleaved runs\n",
          sparq_gemm_backend(), sparq_threads(), sparq_isa_name(sparq_isa_active()), reps);
  fprintf(f, "      R     C     T  pattern   dense ms sparse ms  dense GF/s useful GF/s  speedup\n");
}

/* "R,C,T" with each in 1..limit. */
static bool parse_shape(const char *text, int64_t out[3]) {
  const char *s = text;
  for (int k = 0; k < 3; k++) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 1 || v > 65536 || (k < 2 && *end != ',') || (k == 2 && *end)) return false;
    out[k] = v;
    s = end + 1;
  }
  return true;
}

int cli_bench_vnm(int argc, char **argv) {
  bool json = false;
  int64_t reps = 7;
  const char *shape = NULL, *pattern = NULL;
  const cli_opt opts[] = {
      {"json", CLI_BOOL, &json, 0, 0, NULL},
      {"reps", CLI_INT, &reps, 1, 1000, NULL},
      {"shape", CLI_STRING, &shape, 0, 0, NULL},
      {"pattern", CLI_STRING, &pattern, 0, 0, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, 4, NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  int64_t shapes[5][3] = {{768, 768, 256}, {3072, 768, 256}, {768, 3072, 256}, {4096, 4096, 512}, {768, 768, 16}};
  int nshapes = 5;
  if (shape) {
    if (!parse_shape(shape, shapes[0])) {
      fprintf(stderr, "sparq bench: --shape expects R,C,T (each 1..65536), got '%s'\n", shape);
      cli_usage("bench", false);
      return CLI_USAGE;
    }
    nshapes = 1;
  }
  sparq_vnm_pattern patterns[4] = {{1, 2, 4}, {64, 2, 5}, {64, 2, 6}, {64, 2, 8}};
  int npatterns = 4;
  if (pattern) {
    if (sparq_vnm_pattern_parse(pattern, &patterns[0]) != SPARQ_OK) {
      fprintf(stderr, "sparq bench: --pattern: %s\n", sparq_last_error());
      cli_usage("bench", false);
      return CLI_USAGE;
    }
    npatterns = 1;
  }
  if (!json) cli_bench_vnm_header(stdout, (int)reps);
  for (int s = 0; s < nshapes; s++)
    for (int p = 0; p < npatterns; p++) {
      cli_vnm_timing t;
      if ((rc = cli_bench_vnm_row(shapes[s][0], shapes[s][1], shapes[s][2], patterns[p], (int)reps, &t)) != CLI_OK)
        return rc;
      cli_bench_vnm_print(stdout, json, shapes[s][0], shapes[s][1], shapes[s][2], patterns[p], &t);
      fflush(stdout);
    }
  return CLI_OK;
}
