/* sparq demo: the main job. Runs every finished capability on the built-in
 * data and leaves its outputs under one directory. Later methods add a step
 * here when they land. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

static int step(int index, int total, const char *what) {
  printf("\n[%d/%d] %s\n", index, total, what);
  fflush(stdout);
  return CLI_OK;
}

int cli_demo(int argc, char **argv) {
  const char *out = "sparq-out";
  const cli_opt opts[] = {{"out", CLI_STRING, &out, 0, 0, NULL}};
  int rc = cli_parse("demo", argc, argv, 1, opts, 1, NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  if (cli_mkdirs(out) != CLI_OK) return CLI_FAIL;

  char grid[4096], bench[4096];
  if (snprintf(grid, sizeof grid, "%s/fashion-mnist-test-grid.png", out) >= (int)sizeof grid ||
      snprintf(bench, sizeof bench, "%s/bench.jsonl", out) >= (int)sizeof bench)
    return cli_fail("%s: output directory path too long", out);

  double t0 = sparq_now();
  printf("sparq %s demo: %d threads, ISA %s, outputs in %s/\n", sparq_version(), sparq_threads(),
         sparq_isa_name(sparq_isa_active()), out);
  const int total = 8;

  step(1, total, "Fashion-MNIST: labelled grid of the first 64 test images");
  if ((rc = cli_data_grid("test", 64, grid)) != CLI_OK) return rc;

  /* bench.jsonl holds this run only */
  FILE *jsonl = fopen(bench, "w");
  if (!jsonl) return cli_fail("%s: cannot create: %s", bench, strerror(errno));
  step(2, total, "peak probe: the machine's arithmetic rates");
  rc = cli_bench_peak(jsonl);
  if (rc == CLI_OK) {
    step(3, total, "dense FP32 GEMM 2048^3 through sparq_sgemm");
    rc = cli_bench_gemm(2048, 10, jsonl);
  }
  if (rc == CLI_OK) {
    step(4, total, "attention: flash_f32 and the SageAttention variants, accuracy and speed");
    rc = cli_demo_attn(jsonl);
  }
  if (rc == CLI_OK) {
    step(5, total, "V:N:M sparsity: prune a random 768 x 768 layer to 64:2:8, sparse GEMM vs dense");
    rc = cli_demo_vnm(out, jsonl);
  }
  if (rc == CLI_OK) {
    step(6, total, "Sparse VideoGen: profiled spatial/temporal band attention on a generated mixed case");
    char *svg_argv[] = {"attn", "--variant", "svg", "--case", "mixed", "--frames", "8", "--frame-tokens", "256",
                        "--shape", "1,4,64", "--budget", "0.25", "--sink", "parity", "--reps", "3", NULL};
    rc = cli_attn_svg((int)(sizeof svg_argv / sizeof svg_argv[0]) - 1, svg_argv);
  }
  if (rc == CLI_OK) {
    step(7, total, "byte-level GPT: train a small language model on fortunes for about a minute, then sample");
    rc = cli_demo_lm(out);
  }
  if (rc == CLI_OK) {
    step(8, total, "diffusion: the shipped Fashion-MNIST DiT samples every class with CFG, and its FD");
    rc = cli_demo_dit(out);
  }
  if (fclose(jsonl) != 0 && rc == CLI_OK) rc = cli_fail("%s: write failed: %s", bench, strerror(errno));
  if (rc != CLI_OK) return rc;

  printf("\ndemo finished in %.1f s; wrote %s and %s\n", sparq_now() - t0, grid, bench);
  return CLI_OK;
}
