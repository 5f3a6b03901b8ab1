/* The growable byte buffer of the project: text (NUL-terminated, the append
 * functions report errors) and binary encodings (ls_strbuf_put: the GGUF
 * writer's metadata, packed reference runs). Zero-initialised (or
 * ls_strbuf_init) is an empty buffer; ls_strbuf_clear() keeps the memory so
 * that a buffer reused across examples stops allocating once it is big enough. */
#ifndef LS_STRBUF_H
#define LS_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "ls_error.h"

typedef struct ls_strbuf {
  char *buf;  /* [cap], NUL-terminated when cap > 0; NULL when nothing was allocated */
  size_t len; /* bytes before the NUL */
  size_t cap; /* allocated bytes */
  int oom;    /* an ls_strbuf_put could not grow the buffer; later puts do nothing */
} ls_strbuf;

void ls_strbuf_init(ls_strbuf *b);
void ls_strbuf_free(ls_strbuf *b);
/* len = 0 (and oom = 0), memory kept. */
void ls_strbuf_clear(ls_strbuf *b);
/* Makes room for `extra` more bytes (plus the NUL). */
int ls_strbuf_reserve(ls_strbuf *b, size_t extra, ls_err *err);
int ls_strbuf_append(ls_strbuf *b, const char *s, ls_err *err);
int ls_strbuf_appendn(ls_strbuf *b, const char *s, size_t n, ls_err *err);
int ls_strbuf_appendc(ls_strbuf *b, char c, ls_err *err);
int ls_strbuf_appendf(ls_strbuf *b, ls_err *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ls_strbuf_vappendf(ls_strbuf *b, ls_err *err, const char *fmt, va_list ap);
/* Appends n raw bytes. An allocation failure sets b->oom and makes every later
 * put do nothing, so that an encoder of many small fields checks once, at the end. */
void ls_strbuf_put(ls_strbuf *b, const void *p, size_t n);
/* The text; "" (never NULL) for an empty buffer. */
const char *ls_strbuf_cstr(const ls_strbuf *b);
/* Hands the malloc'd text to the caller (a new "" if empty) and resets b; NULL if out of memory. */
char *ls_strbuf_release(ls_strbuf *b);

/* Whitespace trimming used for stage outputs: [*start, *start + *len) is s
 * without leading and trailing ' ', '\t', '\n', '\r', '\v', '\f'. */
void ls_text_trim_span(const char *s, size_t n, size_t *start, size_t *len);

/* strdup that reports failure through err (NULL s gives NULL without error). */
char *ls_dupstr(const char *s, ls_err *err);

#endif
