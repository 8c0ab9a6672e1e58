#include "cli/cli.h"
int cli_bench(int argc, char **argv) { (void)argc; (void)argv; return CLI_FAIL; }
int cli_bench_peak(void) { return CLI_FAIL; }
int cli_bench_gemm(int64_t size, int64_t reps) { (void)size; (void)reps; return CLI_FAIL; }
