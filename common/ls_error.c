#include "ls_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ls_err_set(ls_err *err, int code, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  /* keep it one line */
  for (char *p = err->msg; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  return code;
}

int ls_err_prefix(ls_err *err, const char *fmt, ...) {
  if (!err) return LS_ESTATE;
  char ctx[LS_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  char old[LS_ERR_MSG_MAX];
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%s: %s", ctx, old);
  return err->code;
}

void *ls_malloc_at(size_t size, ls_err *err, const char *file, int line) {
  void *p = malloc(size ? size : 1);
  if (!p) ls_err_set(err, LS_ENOMEM, "out of memory allocating %zu bytes at %s:%d", size, file, line);
  return p;
}

void *ls_calloc_at(size_t n, size_t size, ls_err *err, const char *file, int line) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) ls_err_set(err, LS_ENOMEM, "out of memory allocating %zu x %zu bytes at %s:%d", n, size, file, line);
  return p;
}
