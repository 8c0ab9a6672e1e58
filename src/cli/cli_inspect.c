/* placeholder: being written */
#include "cli/cli.h"
int cli_inspect(int argc, char **argv) { (void)argc; (void)argv; return cli_fail("inspect: not built yet"); }
