#include "cli/cli.h"
int cli_demo(int argc, char **argv) { (void)argc; (void)argv; return CLI_FAIL; }
