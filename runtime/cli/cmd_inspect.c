/* Placeholder: `litestage-run inspect` is being built. */
#include <stdio.h>

#include "commands.h"

int ls_cli_inspect(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "litestage-run inspect: not implemented yet\n");
  return 2;
}
