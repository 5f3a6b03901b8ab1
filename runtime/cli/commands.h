/* litestage-run subcommands. Each takes argv after the subcommand name
 * (argv[0] is the subcommand), prints errors as one line
 * "litestage-run CMD: FILE: problem" on stderr and returns the exit status
 * (0 ok, 1 runtime error, 2 usage error). */
#ifndef LS_CLI_COMMANDS_H
#define LS_CLI_COMMANDS_H

#include "ls_error.h"

int ls_cli_generate(int argc, char **argv);
int ls_cli_inspect(int argc, char **argv);
int ls_cli_convert(int argc, char **argv);
int ls_cli_synth(int argc, char **argv);
int ls_cli_pipeline(int argc, char **argv);
int ls_cli_profile(int argc, char **argv);
int ls_cli_tokenize(int argc, char **argv);

/* The --type line of convert and synth --help, every type they write (filled
 * by ls_cli_type_help_fill from the type table). */
extern char ls_cli_type_help[256];
void ls_cli_type_help_fill(void);

/* --weights copy|map (generate, pipeline): where a mapped model's weights live
 * (ls_weights_place in ls_model.h); an ls_opt LS_FN parser. */
int ls_cli_parse_weights(const char *flag, const char *v, void *dest, ls_err *err);
#define LS_CLI_WEIGHTS_HELP                                                                            \
  "where a model file's weights live: copy = an anonymous huge-page copy (faster decode; the default\n"      \
  "when MemAvailable holds it + 1 GiB), map = the file mapping (shared by processes on one node);\n" \
  "the LS_WEIGHTS environment variable says the same"

#endif
