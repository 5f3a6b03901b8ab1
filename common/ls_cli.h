/* The command line of both programs: one option table per (sub)command gives
 * the parser, the --help text and the error messages, and ls_cli_main() is the
 * one parse / usage / exit wrapper every subcommand goes through.
 *
 * Spellings as llama.cpp users type them: "-m MODEL", "--model MODEL" and
 * "--model=MODEL" are the same; a value may start with '-' ("-s -1"); "-h" and
 * "--help" print the help on stdout. Errors name the flag: "unknown option:
 * --bogus", "--top-k needs a value (N)", "--temp 'x': not a number".
 *
 * Only main()s use ls_cli_main (it prints); the parser itself prints nothing. */
#ifndef LS_CLI_H
#define LS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "ls_error.h"

typedef enum ls_opt_kind {
  LS_OPT_SWITCH, /* int *: set to 1; takes no value */
  LS_OPT_STR,    /* const char **: the value as given */
  LS_OPT_INT,    /* int *: an integer in [min, max] */
  LS_OPT_FLOAT,  /* float *: a finite number in [min, max] */
  LS_OPT_DOUBLE, /* double *: a finite number in [min, max] */
  LS_OPT_U64,    /* uint64_t *: a non-negative integer */
  LS_OPT_FN,     /* parse(flag, value, dest, err) decides */
} ls_opt_kind;

typedef struct ls_opt {
  const char *names; /* spellings separated by '|': "-m|--model" */
  const char *value; /* the value's placeholder in --help ("MODEL"); NULL for a switch */
  const char *help;  /* what it does; '\n' continues on the next, indented line */
  ls_opt_kind kind;
  void *dest;
  double min, max; /* LS_OPT_INT / FLOAT / DOUBLE */
  int (*parse)(const char *flag, const char *value, void *dest, ls_err *err);
} ls_opt;

/* Table rows, one per kind: LS_STR("-m|--model", "MODEL", "what it does", &o.model). */
#define LS_STR(names, value, help, dest) {names, value, help, LS_OPT_STR, dest, 0, 0, NULL}
#define LS_SWITCH(names, help, dest) {names, NULL, help, LS_OPT_SWITCH, dest, 0, 0, NULL}
#define LS_INT(names, value, help, dest, min, max) {names, value, help, LS_OPT_INT, dest, min, max, NULL}
#define LS_FLOAT(names, value, help, dest, min, max) {names, value, help, LS_OPT_FLOAT, dest, min, max, NULL}
#define LS_DOUBLE(names, value, help, dest, min, max) {names, value, help, LS_OPT_DOUBLE, dest, min, max, NULL}
#define LS_U64(names, value, help, dest) {names, value, help, LS_OPT_U64, dest, 0, 0, NULL}
#define LS_FN(names, value, help, dest, fn) {names, value, help, LS_OPT_FN, dest, 0, 0, fn}
#define LS_OPT_END {NULL, NULL, NULL, LS_OPT_SWITCH, NULL, 0, 0, NULL}

typedef struct ls_cli {
  const char *name;     /* "litestage-run generate": prefixes every message */
  const char *synopsis; /* after "usage: NAME "; lines after the first are printed as given */
  const char *about;    /* a paragraph after the synopsis, or NULL */
  const ls_opt *opts;   /* ends with an entry whose names is NULL */
  const char *footer;   /* after the options, or NULL */
  /* Positional arguments: up to max_args, stored in args[0..], counted in *n_args.
   * max_args 0: none accepted. */
  const char **args;
  int max_args;
  int *n_args;
} ls_cli;

#define LS_CLI_HELP 1000 /* ls_cli_parse's return for -h / --help */

/* Every command also takes -v / --verbose (after the subcommand or before it,
 * ls_cli_dispatch): an error then prints, under its
 * one-line message, the trace of where it came from (ls_err.trace). */
extern int ls_cli_verbose;

/* Fills the options' destinations from argv[1..argc-1]. Returns LS_OK,
 * LS_CLI_HELP, or LS_EINVAL with a message that names the flag. */
int ls_cli_parse(const ls_cli *c, int argc, char **argv, ls_err *err);

/* Writes the --help text: synopsis, about, one line (or more) per option, footer. */
void ls_cli_usage(const ls_cli *c, FILE *f);

/* The wrapper every (sub)command's entry point is: parse; --help -> usage on
 * stdout, 0; a parse error or a failed check -> "NAME: msg (see NAME --help)"
 * on stderr, 2; then run -> "NAME: msg" on stderr, 1 on error. check and run
 * get ctx; check may be NULL. */
int ls_cli_main(const ls_cli *c, int argc, char **argv, int (*check)(void *ctx, ls_err *err),
                int (*run)(void *ctx, ls_err *err), void *ctx);

/* The first half of ls_cli_main, for commands with their own exit statuses:
 * returns LS_CLI_GO when the command should run, else the exit status (0
 * after --help, 2 after a usage error, both printed). */
#define LS_CLI_GO (-1)
int ls_cli_args(const ls_cli *c, int argc, char **argv, int (*check)(void *ctx, ls_err *err), void *ctx);

/* Prints "NAME: msg" for an error that is not a usage error (with -v, then
 * the trace, one "  at FILE:LINE FUNCTION" line per frame) and returns 1. */
int ls_cli_fail(const ls_cli *c, const ls_err *err);
/* The trace part of that: with -v, err's frames on f. */
void ls_cli_print_trace(FILE *f, const ls_err *err);

/* A program's subcommands and the top-level dispatch: "PROG CMD ..." runs
 * cmd->run(argc - 1, argv + 1), "PROG -v CMD ..." the same with ls_cli_verbose
 * set; "PROG", "PROG -h|--help|help" print the list
 * (stderr with 2, stdout with 0); "PROG --version" prints "PROG VERSION (commit
 * C)"; an unknown command says "unknown command 'X'" with 2. */
typedef struct ls_cli_command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} ls_cli_command;
int ls_cli_dispatch(const char *prog, const ls_cli_command *cmds, int n_cmds, int argc, char **argv);

/* Checked values, each error naming the flag (also usable as LS_OPT_FN parsers' helpers). */
int ls_arg_int(const char *flag, const char *value, long min, long max, int *out, ls_err *err);
int ls_arg_float(const char *flag, const char *value, double min, double max, float *out, ls_err *err);
int ls_arg_double(const char *flag, const char *value, double min, double max, double *out, ls_err *err);
int ls_arg_u64(const char *flag, const char *value, uint64_t *out, ls_err *err);

#endif
