/* Placeholder: `litestage-run pipeline` is being built. */
#include <stdio.h>

#include "commands.h"

int ls_cli_pipeline(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "litestage-run pipeline: not implemented yet\n");
  return 2;
}
