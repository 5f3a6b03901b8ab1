/* litestage-run: the LiteStage CPU runtime. Dispatches to subcommands. */
#include "commands.h"
#include "ls_cli.h"

static const ls_cli_command commands[] = {
    {"generate", ls_cli_generate, "generate text from a prompt (optionally skipping sub-layers)"},
    {"pipeline", ls_cli_pipeline, "run the multi-stage chain over a dataset with a schedule"},
    {"profile", ls_cli_profile, "measure per-sub-layer latency on this CPU into a profile"},
    {"inspect", ls_cli_inspect, "print a model's architecture, tensors, size and fingerprint"},
    {"convert", ls_cli_convert, "convert a llama2.c checkpoint (or a GGUF) to GGUF of a given type"},
    {"synth", ls_cli_synth, "write a random-weight GGUF model of a given shape"},
    {"tokenize", ls_cli_tokenize, "tokenize a text with a GGUF's tokenizer (ids like llama-tokenize)"},
};

int main(int argc, char **argv) {
  return ls_cli_dispatch("litestage-run", commands, (int)(sizeof commands / sizeof commands[0]), argc, argv);
}
