#include "ls_cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ls_util.h"

/* ---- values ------------------------------------------------------------- */

int ls_arg_int(const char *flag, const char *value, long min, long max, int *out, ls_err *err) {
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno || end == value || *end) return ls_err_set(err, LS_EINVAL, "%s '%s': not an integer", flag, value);
  if (v < min || v > max) return ls_err_set(err, LS_EINVAL, "%s %ld: must be in [%ld, %ld]", flag, v, min, max);
  *out = (int)v;
  return LS_OK;
}

int ls_arg_double(const char *flag, const char *value, double min, double max, double *out, ls_err *err) {
  char *end;
  errno = 0;
  double v = strtod(value, &end);
  if (errno || end == value || *end || !isfinite(v))
    return ls_err_set(err, LS_EINVAL, "%s '%s': not a number", flag, value);
  if (v < min || v > max) return ls_err_set(err, LS_EINVAL, "%s %g: must be in [%g, %g]", flag, v, min, max);
  *out = v;
  return LS_OK;
}

int ls_arg_float(const char *flag, const char *value, double min, double max, float *out, ls_err *err) {
  double v;
  LS_TRY(ls_arg_double(flag, value, min, max, &v, err));
  *out = (float)v;
  return LS_OK;
}

int ls_arg_u64(const char *flag, const char *value, uint64_t *out, ls_err *err) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(value, &end, 10);
  if (errno || end == value || *end || value[0] == '-')
    return ls_err_set(err, LS_EINVAL, "%s '%s': not a non-negative integer", flag, value);
  *out = (uint64_t)v;
  return LS_OK;
}

/* ---- the option table --------------------------------------------------- */

int ls_cli_verbose;

/* 1 if `flag` (len bytes) is one of the '|'-separated spellings in names. */
static int has_name(const char *names, const char *flag, size_t len) {
  for (const char *p = names; *p;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && !strncmp(p, flag, len)) return 1;
    p += n + (bar != NULL);
  }
  return 0;
}

static const ls_opt *find_opt(const ls_opt *opts, const char *flag, size_t len) {
  for (const ls_opt *o = opts; o && o->names; o++)
    if (has_name(o->names, flag, len)) return o;
  return NULL;
}

static int set_value(const ls_opt *o, const char *flag, const char *v, ls_err *err) {
  switch (o->kind) {
  case LS_OPT_SWITCH: *(int *)o->dest = 1; return LS_OK;
  case LS_OPT_STR: *(const char **)o->dest = v; return LS_OK;
  case LS_OPT_INT: return ls_arg_int(flag, v, (long)o->min, (long)o->max, o->dest, err);
  case LS_OPT_FLOAT: return ls_arg_float(flag, v, o->min, o->max, o->dest, err);
  case LS_OPT_DOUBLE: return ls_arg_double(flag, v, o->min, o->max, o->dest, err);
  case LS_OPT_U64: return ls_arg_u64(flag, v, o->dest, err);
  case LS_OPT_FN: return o->parse(flag, v, o->dest, err);
  }
  return ls_err_set(err, LS_ESTATE, "%s: option of unknown kind", flag);
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* An argument that looks like an option ("-x", "--x"), not "-" alone. */
static int is_flag(const char *a) { return a[0] == '-' && a[1] != '\0'; }

int ls_cli_parse(const ls_cli *c, int argc, char **argv, ls_err *err) {
  if (c->n_args) *c->n_args = 0;
  int only_args = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_args && !strcmp(a, "--")) {
      only_args = 1;
      continue;
    }
    if (only_args || !is_flag(a)) {
      int n = c->n_args ? *c->n_args : 0;
      if (n >= c->max_args) return ls_err_set(err, LS_EINVAL, "unexpected argument '%s'", a);
      c->args[n] = a;
      *c->n_args = n + 1;
      continue;
    }
    if (is_help(a)) return LS_CLI_HELP;
    /* "--flag=value" */
    const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const ls_opt *o = find_opt(c->opts, a, len);
    if (!o && !eq && (!strcmp(a, "-v") || !strcmp(a, "--verbose"))) {
      ls_cli_verbose = 1;
      continue;
    }
    if (!o) return ls_err_set(err, LS_EINVAL, "unknown option: %.*s", (int)len, a);
    char flag[64];
    snprintf(flag, sizeof flag, "%.*s", (int)len, a);
    const char *v = NULL;
    if (o->kind == LS_OPT_SWITCH) {
      if (eq) return ls_err_set(err, LS_EINVAL, "%s takes no value", flag);
    } else if (eq) {
      v = eq + 1;
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      return ls_err_set(err, LS_EINVAL, "%s needs a value (%s)", flag, o->value ? o->value : "VALUE");
    }
    LS_TRY(set_value(o, flag, v, err));
  }
  return LS_OK;
}

/* "-m, --model MODEL" */
static int opt_label(const ls_opt *o, char *buf, size_t size) {
  size_t n = 0;
  for (const char *p = o->names; *p && n + 3 < size; p++) {
    if (*p == '|') {
      buf[n++] = ',';
      buf[n++] = ' ';
    } else {
      buf[n++] = *p;
    }
  }
  buf[n] = '\0';
  if (o->value) n += (size_t)snprintf(buf + n, size - n, " %s", o->value);
  return (int)(n < size ? n : size - 1);
}

void ls_cli_usage(const ls_cli *c, FILE *f) {
  fprintf(f, "usage: %s %s\n", c->name, c->synopsis);
  if (c->about) fprintf(f, "\n%s\n", c->about);
  fprintf(f, "\noptions:\n");
  const int col = 24;
  for (const ls_opt *o = c->opts; o && o->names; o++) {
    char label[128];
    int n = opt_label(o, label, sizeof label);
    fprintf(f, "  %s", label);
    if (n + 4 > col) fprintf(f, "\n%*s", col, "");
    else fprintf(f, "%*s", col - 2 - n, "");
    for (const char *p = o->help; *p; p++) {
      fputc(*p, f);
      if (*p == '\n') fprintf(f, "%*s", col, "");
    }
    fputc('\n', f);
  }
  fprintf(f, "  %-*s%s\n", col - 2, "-v, --verbose", "on an error, also print where it came from (file:line frames)");
  if (c->footer) fprintf(f, "\n%s\n", c->footer);
}

void ls_cli_print_trace(FILE *f, const ls_err *err) {
  if (!ls_cli_verbose || !err->trace[0]) return;
  for (const char *p = err->trace; *p;) {
    const char *nl = strchr(p, '\n');
    int n = nl ? (int)(nl - p) : (int)strlen(p);
    fprintf(f, "  at %.*s\n", n, p);
    p += n + (nl != NULL);
  }
  int kept = 1;
  for (const char *p = err->trace; *p; p++) kept += *p == '\n';
  if (err->n_frames > kept) fprintf(f, "  ... %d more frames\n", err->n_frames - kept);
}

int ls_cli_fail(const ls_cli *c, const ls_err *err) {
  fprintf(stderr, "%s: %s\n", c->name, err->msg);
  ls_cli_print_trace(stderr, err);
  return 1;
}

int ls_cli_args(const ls_cli *c, int argc, char **argv, int (*check)(void *ctx, ls_err *err), void *ctx) {
  ls_err err = {0};
  int rc = ls_cli_parse(c, argc, argv, &err);
  if (rc == LS_CLI_HELP) {
    ls_cli_usage(c, stdout);
    return 0;
  }
  if (!rc && check) rc = check(ctx, &err);
  if (rc) {
    fprintf(stderr, "%s: %s (see %s --help)\n", c->name, err.msg, c->name);
    return 2;
  }
  return LS_CLI_GO;
}

int ls_cli_main(const ls_cli *c, int argc, char **argv, int (*check)(void *ctx, ls_err *err),
                int (*run)(void *ctx, ls_err *err), void *ctx) {
  int status = ls_cli_args(c, argc, argv, check, ctx);
  if (status != LS_CLI_GO) return status;
  ls_err err = {0};
  return run(ctx, &err) ? ls_cli_fail(c, &err) : 0;
}

/* ---- subcommands -------------------------------------------------------- */

static void list_commands(const char *prog, const ls_cli_command *cmds, int n, FILE *f) {
  fprintf(f, "usage: %s COMMAND [options]   (%s COMMAND --help for its options)\n\n", prog, prog);
  for (int i = 0; i < n; i++) fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
  fprintf(f, "\n  -v, --verbose  (before or after COMMAND) on an error, also print where it came from\n");
  fprintf(f, "\n%s %s (commit %s)\n", prog, ls_version(), ls_git_commit());
}

int ls_cli_dispatch(const char *prog, const ls_cli_command *cmds, int n_cmds, int argc, char **argv) {
  /* -v before the command as after it (PETSc and git users put global flags first) */
  while (argc >= 2 && (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--verbose"))) {
    ls_cli_verbose = 1;
    argv++;
    argc--;
  }
  if (argc < 2) {
    list_commands(prog, cmds, n_cmds, stderr);
    return 2;
  }
  const char *a = argv[1];
  if (is_help(a) || !strcmp(a, "help")) {
    list_commands(prog, cmds, n_cmds, stdout);
    return 0;
  }
  if (!strcmp(a, "--version")) {
    printf("%s %s (commit %s)\n", prog, ls_version(), ls_git_commit());
    return 0;
  }
  for (int i = 0; i < n_cmds; i++)
    if (!strcmp(a, cmds[i].name)) return cmds[i].run(argc - 1, argv + 1);
  if (is_flag(a)) fprintf(stderr, "%s: unknown option: %s (try %s --help)\n", prog, a, prog);
  else fprintf(stderr, "%s: unknown command '%s' (try %s --help)\n", prog, a, prog);
  return 2;
}
