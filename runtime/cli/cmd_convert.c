/* Placeholder: `litestage-run convert` is being built. */
#include <stdio.h>

#include "commands.h"

int ls_cli_convert(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "litestage-run convert: not implemented yet\n");
  return 2;
}
