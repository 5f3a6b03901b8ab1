/* litestage-run: the LiteStage CPU runtime. Dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ls_util.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"generate", ls_cli_generate, "generate text from a prompt (optionally skipping sub-layers)"},
    {"pipeline", ls_cli_pipeline, "run the multi-stage chain over a dataset with a schedule"},
    {"profile", ls_cli_profile, "measure per-sub-layer latency on this CPU into a profile"},
    {"inspect", ls_cli_inspect, "print a model's architecture, tensors, size and fingerprint"},
    {"convert", ls_cli_convert, "convert a llama2.c checkpoint to GGUF (f32 or q8_0)"},
    {"synth", ls_cli_synth, "write a random-weight GGUF model of a given shape"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: litestage-run COMMAND [options]   (litestage-run COMMAND --help for its options)\n\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nlitestage-run %s (commit %s)\n", ls_version(), ls_git_commit());
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("litestage-run %s (commit %s)\n", ls_version(), ls_git_commit());
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "litestage-run: unknown command '%s' (try litestage-run --help)\n", argv[1]);
  return 2;
}
