#include "ls_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last two components of a path: "formats/gguf.c", enough to find the file. */
static const char *short_path(const char *file) {
  const char *last = strrchr(file, '/');
  if (!last) return file;
  const char *p = last;
  while (p > file && p[-1] != '/') p--;
  return p;
}

void ls_err_trace(ls_err *err, const char *file, int line, const char *func) {
  if (!err) return;
  err->n_frames++;
  size_t used = strnlen(err->trace, sizeof err->trace);
  char frame[256];
  int n = snprintf(frame, sizeof frame, "%s%s:%d %s", used ? "\n" : "", short_path(file), line, func);
  if (n > 0 && used + (size_t)n < sizeof err->trace) memcpy(err->trace + used, frame, (size_t)n + 1);
}

int ls_err_set_at(ls_err *err, int code, const char *file, int line, const char *func, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  /* keep it one line */
  for (char *p = err->msg; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  err->n_frames = 0;
  err->trace[0] = '\0';
  ls_err_trace(err, file, line, func);
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
  if (!p) ls_err_set_at(err, LS_ENOMEM, file, line, "ls_malloc", "out of memory allocating %zu bytes at %s:%d", size, file, line);
  return p;
}

void *ls_calloc_at(size_t n, size_t size, ls_err *err, const char *file, int line) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    ls_err_set_at(err, LS_ENOMEM, file, line, "ls_calloc", "out of memory allocating %zu x %zu bytes at %s:%d", n, size,
                  file, line);
  return p;
}
