/* litestage-run: placeholder entry until the subcommands land. */
#include <stdio.h>
int main(void) {
  fprintf(stderr, "litestage-run: not built yet\n");
  return 2;
}
