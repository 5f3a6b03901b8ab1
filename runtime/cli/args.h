/* Checked parsing of command-line values: each error names the flag. */
#ifndef LS_CLI_ARGS_H
#define LS_CLI_ARGS_H

#include <stdint.h>

#include "ls_error.h"

int ls_arg_int(const char *flag, const char *value, long min, long max, int *out, ls_err *err);
int ls_arg_float(const char *flag, const char *value, double min, double max, float *out, ls_err *err);
int ls_arg_u64(const char *flag, const char *value, uint64_t *out, ls_err *err);
/* Returns the value after argv[*i] for flag, advancing *i; error if missing. */
int ls_arg_value(int argc, char **argv, int *i, const char **out, ls_err *err);

#endif
