/* Placeholder: `litestage-run profile` is being built. */
#include <stdio.h>

#include "commands.h"

int ls_cli_profile(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "litestage-run profile: not implemented yet\n");
  return 2;
}
