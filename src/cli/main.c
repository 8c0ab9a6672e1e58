/* sparq: the command-line front end. Each subcommand lives in its own file;
 * this one dispatches, handles the global flags and prints help. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

const cli_command cli_commands[] = {
    {"inspect", cli_inspect, "show the tensors in a safetensors, npy or IDX file",
     "usage: sparq inspect FILE [--stats|--no-stats]\n"
     "  Lists names, dtypes, shapes and (by default) min/max/mean/std of every\n"
     "  tensor in FILE, plus the safetensors __metadata__. FILE is recognised by\n"
     "  its content: safetensors, .npy (format 1.0-3.0) or IDX (plain or .gz).\n"
     "example: sparq inspect /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\n"},
    {"data", cli_data, "look at the built-in data sets",
     "usage: sparq data fashion-mnist --grid OUT.png [--n 64] [--split train|test] [--pad32]\n"
     "  Writes a labelled grid of the first N samples (N in 1..1024) as a PNG.\n"
     "       sparq data text [--split train|val]\n"
     "  Prints the size and a sample of the byte-level fortunes corpus.\n"
     "example: sparq data fashion-mnist --grid grid.png --n 64 --split test\n"},
    {"bench", cli_bench, "measure the machine's peak and sparq's kernels",
     "usage: sparq bench peak [--jsonl FILE]\n"
     "  FP32 FMA, INT8 VNNI, BF16 dot and FP16 FMA rates at 1 and N threads.\n"
     "       sparq bench gemm [--size N] [--reps R] [--jsonl FILE]\n"
     "  N x N x N FP32 GEMM through sparq_sgemm: GFLOP/s and fraction of the\n"
     "  FP32 peak measured at the same thread count (default N 2048, R 10).\n"
     "  --jsonl FILE appends the results as one JSON line.\n"
     "example: sparq --threads 2 bench gemm --size 2048\n"},
    {"demo", cli_demo, "the main job: run every finished capability on built-in data",
     "usage: sparq demo [--out DIR]\n"
     "  Writes its outputs under DIR (default sparq-out/): a Fashion-MNIST grid,\n"
     "  the peak probe and the GEMM benchmark.\n"
     "example: sparq demo --out sparq-out\n"},
};
const int cli_command_count = (int)(sizeof cli_commands / sizeof cli_commands[0]);

const cli_command *cli_find(const char *name) {
  for (int i = 0; i < cli_command_count; i++)
    if (!strcmp(cli_commands[i].name, name)) return &cli_commands[i];
  return NULL;
}

void cli_usage(const char *command, bool to_stdout) {
  const cli_command *c = cli_find(command);
  if (c) fputs(c->usage, to_stdout ? stdout : stderr);
}

static void print_overview(FILE *out) {
  fprintf(out,
          "sparq %s: efficient generative transformer methods on the CPU\n\n"
          "usage: sparq [--threads N] <command> [options]\n"
          "       sparq help <command>\n"
          "       sparq --version\n\ncommands:\n",
          sparq_version());
  for (int i = 0; i < cli_command_count; i++)
    fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
  fprintf(out,
          "\nglobal options:\n"
          "  --threads N   OpenMP threads (default: $SPARQ_THREADS, else all processors)\n"
          "environment:\n"
          "  SPARQ_THREADS  thread count;  SPARQ_ISA=scalar|avx2|avx512  cap the SIMD level\n");
}

/* Removes "--threads N" / "--threads=N" from argv (before any "--") and applies it. */
static int take_threads_flag(int *argc, char **argv) {
  long threads = 0;
  for (int i = 1; i < *argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    const char *value = NULL;
    int consumed = 0;
    if (!strcmp(argv[i], "--threads")) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "sparq: --threads needs a value\n");
        return CLI_USAGE;
      }
      value = argv[i + 1], consumed = 2;
    } else if (!strncmp(argv[i], "--threads=", 10)) {
      value = argv[i] + 10, consumed = 1;
    } else {
      continue;
    }
    char *end;
    errno = 0;
    threads = strtol(value, &end, 10);
    if (errno || end == value || *end || threads < 1 || threads > 4096) {
      fprintf(stderr, "sparq: --threads expects a count in 1..4096, got '%s'\n", value);
      return CLI_USAGE;
    }
    memmove(&argv[i], &argv[i + consumed], (size_t)(*argc - i - consumed + 1) * sizeof *argv);
    *argc -= consumed;
    i--;
  }
  if (sparq_set_threads((int)threads) < 0) {
    fprintf(stderr, "sparq: %s\n", sparq_last_error());
    return CLI_USAGE;
  }
  return CLI_OK;
}

int main(int argc, char **argv) {
  int rc = take_threads_flag(&argc, argv);
  if (rc != CLI_OK) return rc;
  if (argc < 2) {
    print_overview(stderr);
    return CLI_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--version") || !strcmp(name, "version")) {
    printf("sparq %s\n", sparq_version());
    return CLI_OK;
  }
  if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
    print_overview(stdout);
    return CLI_OK;
  }
  if (!strcmp(name, "help")) {
    if (argc < 3) {
      print_overview(stdout);
      return CLI_OK;
    }
    if (!cli_find(argv[2])) {
      fprintf(stderr, "sparq: unknown command '%s'\n", argv[2]);
      return CLI_USAGE;
    }
    cli_usage(argv[2], true);
    return CLI_OK;
  }
  const cli_command *c = cli_find(name);
  if (!c) {
    fprintf(stderr, "sparq: unknown command '%s'\n\n", name);
    print_overview(stderr);
    return CLI_USAGE;
  }
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      cli_usage(name, true);
      return CLI_OK;
    }
  return c->run(argc - 1, argv + 1);
}
