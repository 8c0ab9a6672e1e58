/* sparq bench: the machine's peak rates and sparq's kernels measured side by
 * side in one process, printed as rates and fractions of peak. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

static void print_rate(const char *what, const char *unit, double one, double n, int threads) {
  if (one <= 0) {
    printf("  %-22s not available on this CPU\n", what);
    return;
  }
  printf("  %-22s %9.1f %s (1 thread)  %9.1f %s (%d threads)\n", what, one, unit, n, unit, threads);
}

int cli_bench_peak(FILE *jsonl) {
  sparq_peak p;
  if (sparq_peak_measure(&p, 1.0) != SPARQ_OK) return cli_fail_last_error();
  const sparq_cpu_features *f = sparq_cpu();
  printf("peak probe: %s, ISA %s, %d threads (one FMA = 2 ops)\n", f->brand, sparq_isa_name(sparq_isa_active()),
         p.threads);
  print_rate("fp32 fma", "GFLOP/s", p.fp32_fma_1, p.fp32_fma_n, p.threads);
  print_rate("int8 vnni (vpdpbusd)", "GOP/s", p.int8_vnni_1, p.int8_vnni_n, p.threads);
  print_rate("bf16 dot (vdpbf16ps)", "GFLOP/s", p.bf16_dot_1, p.bf16_dot_n, p.threads);
  print_rate("fp16 fma (avx512fp16)", "GFLOP/s", p.fp16_fma_1, p.fp16_fma_n, p.threads);
  if (p.fp32_fma_n > 0) {
    if (p.int8_vnni_n > 0) printf("  ratio int8 vnni / fp32:  %.2fx\n", p.int8_vnni_n / p.fp32_fma_n);
    if (p.bf16_dot_n > 0) printf("  ratio bf16 dot / fp32:   %.2fx\n", p.bf16_dot_n / p.fp32_fma_n);
    if (p.fp16_fma_n > 0) printf("  ratio fp16 fma / fp32:   %.2fx\n", p.fp16_fma_n / p.fp32_fma_n);
  }
  if (jsonl)
    fprintf(jsonl,
            "{\"bench\":\"peak\",\"threads\":%d,\"isa\":\"%s\",\"fp32_fma_gflops_1\":%.2f,"
            "\"fp32_fma_gflops_n\":%.2f,\"int8_vnni_gops_1\":%.2f,\"int8_vnni_gops_n\":%.2f,"
            "\"bf16_dot_gflops_1\":%.2f,\"bf16_dot_gflops_n\":%.2f,\"fp16_fma_gflops_1\":%.2f,"
            "\"fp16_fma_gflops_n\":%.2f}\n",
            p.threads, sparq_isa_name(sparq_isa_active()), p.fp32_fma_1, p.fp32_fma_n, p.int8_vnni_1,
            p.int8_vnni_n, p.bf16_dot_1, p.bf16_dot_n, p.fp16_fma_1, p.fp16_fma_n);
  return CLI_OK;
}

int cli_bench_gemm(int64_t size, int64_t reps, FILE *jsonl) {
  size_t count = (size_t)size * (size_t)size;
  float *a = sparq_alloc(count * sizeof(float), "bench gemm A");
  float *b = sparq_alloc(count * sizeof(float), "bench gemm B");
  float *c = sparq_alloc(count * sizeof(float), "bench gemm C");
  int rc = CLI_OK;
  if (!a || !b || !c) {
    rc = cli_fail_last_error();
    goto done;
  }
  sparq_rng rng = sparq_rng_make(1, 0);
  sparq_rng_fill_uniform(&rng, a, count, -1, 1);
  sparq_rng_fill_uniform(&rng, b, count, -1, 1);
  int threads = sparq_threads();
  double peak = sparq_peak_fp32(threads);
  /* one untimed call so oneDNN's JIT and the thread pool are warm */
  if (sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, size, size, size, 1, a, size, b, size, 0, c, size) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  double best = 1e30, total = 0;
  for (int64_t r = 0; r < reps; r++) {
    double t0 = sparq_now();
    sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, size, size, size, 1, a, size, b, size, 0, c, size);
    double dt = sparq_now() - t0;
    total += dt;
    if (dt < best) best = dt;
  }
  double flops = 2.0 * (double)size * (double)size * (double)size;
  double gflops = flops / best * 1e-9, mean_gflops = flops * (double)reps / total * 1e-9;
  printf("gemm %lldx%lldx%lld fp32, %s, %d threads, %lld reps\n", (long long)size, (long long)size,
         (long long)size, sparq_gemm_backend(), threads, (long long)reps);
  printf("  best %.2f ms  %.1f GFLOP/s   mean %.1f GFLOP/s\n", best * 1e3, gflops, mean_gflops);
  printf("  fp32 fma peak (%d threads) %.1f GFLOP/s   fraction of peak %.1f%%\n", threads, peak,
         100.0 * gflops / peak);
  if (jsonl)
    fprintf(jsonl,
            "{\"bench\":\"gemm\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"backend\":\"%s\",\"threads\":%d,"
            "\"best_ms\":%.3f,\"gflops\":%.2f,\"peak_gflops\":%.2f,\"fraction_of_peak\":%.4f}\n",
            (long long)size, (long long)size, (long long)size, sparq_gemm_backend(), threads, best * 1e3, gflops,
            peak, gflops / peak);
done:
  sparq_free(a);
  sparq_free(b);
  sparq_free(c);
  return rc;
}

/* Opens the --jsonl file for appending, or returns NULL with *rc set on failure. */
static FILE *open_jsonl(const char *path, int *rc) {
  *rc = CLI_OK;
  if (!path) return NULL;
  FILE *f = fopen(path, "a");
  if (!f) *rc = cli_fail("%s: cannot open for appending: %s", path, strerror(errno));
  return f;
}

static int finish(int rc, FILE *jsonl, const char *path) {
  if (jsonl && fclose(jsonl) != 0 && rc == CLI_OK) rc = cli_fail("%s: write failed: %s", path, strerror(errno));
  return rc;
}

int cli_bench(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "sparq bench: which benchmark? (peak, gemm, attn, vnm, train, svg, remoe, coat or optim)\n");
    cli_usage("bench", false);
    return CLI_USAGE;
  }
  const char *what = argv[1], *jsonl_path = NULL;
  if (!strcmp(what, "peak")) {
    const cli_opt opts[] = {{"jsonl", CLI_STRING, &jsonl_path, 0, 0, NULL}};
    int rc = cli_parse("bench", argc, argv, 2, opts, 1, NULL, 0, NULL);
    if (rc != CLI_OK) return rc;
    FILE *jsonl = open_jsonl(jsonl_path, &rc);
    return rc != CLI_OK ? rc : finish(cli_bench_peak(jsonl), jsonl, jsonl_path);
  }
  if (!strcmp(what, "gemm")) {
    int64_t size = 2048, reps = 10;
    const cli_opt opts[] = {
        {"size", CLI_INT, &size, 1, 16384, NULL},
        {"reps", CLI_INT, &reps, 1, 100000, NULL},
        {"jsonl", CLI_STRING, &jsonl_path, 0, 0, NULL},
    };
    int rc = cli_parse("bench", argc, argv, 2, opts, 3, NULL, 0, NULL);
    if (rc != CLI_OK) return rc;
    FILE *jsonl = open_jsonl(jsonl_path, &rc);
    return rc != CLI_OK ? rc : finish(cli_bench_gemm(size, reps, jsonl), jsonl, jsonl_path);
  }
  if (!strcmp(what, "attn")) return cli_bench_attn(argc - 1, argv + 1, NULL);
  if (!strcmp(what, "vnm")) return cli_bench_vnm(argc - 1, argv + 1);
  if (!strcmp(what, "train")) return cli_bench_train(argc - 1, argv + 1);
  if (!strcmp(what, "svg")) return cli_bench_svg(argc - 1, argv + 1);
  if (!strcmp(what, "remoe")) return cli_bench_remoe(argc - 1, argv + 1);
  if (!strcmp(what, "coat")) return cli_bench_coat(argc - 1, argv + 1);
  if (!strcmp(what, "optim")) return cli_bench_optim(argc - 1, argv + 1);
  fprintf(stderr, "sparq bench: unknown benchmark '%s'\n", what);
  cli_usage("bench", false);
  return CLI_USAGE;
}
