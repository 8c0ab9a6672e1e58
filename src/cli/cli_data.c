/* placeholder: being written */
#include "cli/cli.h"
int cli_data(int argc, char **argv) { (void)argc; (void)argv; return cli_fail("data: not built yet"); }
int cli_data_grid(const char *split, int64_t n, const char *out_png) { (void)split; (void)n; (void)out_png; return CLI_FAIL; }
