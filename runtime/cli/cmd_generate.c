/* Placeholder: `litestage-run generate` is being built. */
#include <stdio.h>

#include "commands.h"

int ls_cli_generate(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "litestage-run generate: not implemented yet\n");
  return 2;
}
