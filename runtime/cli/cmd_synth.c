/* Placeholder: `litestage-run synth` is being built. */
#include <stdio.h>

#include "commands.h"

int ls_cli_synth(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "litestage-run synth: not implemented yet\n");
  return 2;
}
