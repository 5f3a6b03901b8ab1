#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int ls_arg_int(const char *flag, const char *value, long min, long max, int *out, ls_err *err) {
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno || end == value || *end)
    return ls_err_set(err, LS_EINVAL, "%s '%s': not an integer", flag, value);
  if (v < min || v > max) return ls_err_set(err, LS_EINVAL, "%s %ld: must be in [%ld, %ld]", flag, v, min, max);
  *out = (int)v;
  return LS_OK;
}

int ls_arg_float(const char *flag, const char *value, double min, double max, float *out, ls_err *err) {
  char *end;
  errno = 0;
  double v = strtod(value, &end);
  if (errno || end == value || *end || !isfinite(v))
    return ls_err_set(err, LS_EINVAL, "%s '%s': not a number", flag, value);
  if (v < min || v > max) return ls_err_set(err, LS_EINVAL, "%s %g: must be in [%g, %g]", flag, v, min, max);
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

int ls_arg_value(int argc, char **argv, int *i, const char **out, ls_err *err) {
  if (*i + 1 >= argc) return ls_err_set(err, LS_EINVAL, "%s: missing value", argv[*i]);
  *out = argv[++*i];
  return LS_OK;
}
