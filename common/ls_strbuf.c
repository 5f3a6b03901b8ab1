#include "ls_strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ls_strbuf_init(ls_strbuf *b) {
  b->buf = NULL;
  b->len = 0;
  b->cap = 0;
  b->oom = 0;
}

void ls_strbuf_free(ls_strbuf *b) {
  free(b->buf);
  ls_strbuf_init(b);
}

void ls_strbuf_clear(ls_strbuf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->buf) b->buf[0] = '\0';
}

int ls_strbuf_reserve(ls_strbuf *b, size_t extra, ls_err *err) {
  if (extra > ((size_t)-1) / 2 - b->len - 1)
    return ls_err_set(err, LS_ENOMEM, "string of %zu bytes is too long", b->len + extra);
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return LS_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->buf, cap);
  if (!p) return ls_err_set(err, LS_ENOMEM, "out of memory growing a string to %zu bytes", cap);
  if (!b->buf) p[0] = '\0';
  b->buf = p;
  b->cap = cap;
  return LS_OK;
}

int ls_strbuf_appendn(ls_strbuf *b, const char *s, size_t n, ls_err *err) {
  LS_TRY(ls_strbuf_reserve(b, n, err));
  if (n) memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
  return LS_OK;
}

void ls_strbuf_put(ls_strbuf *b, const void *p, size_t n) {
  if (b->oom) return;
  if (ls_strbuf_appendn(b, p, n, NULL) != LS_OK) b->oom = 1;
}

int ls_strbuf_append(ls_strbuf *b, const char *s, ls_err *err) { return ls_strbuf_appendn(b, s, strlen(s), err); }

int ls_strbuf_appendc(ls_strbuf *b, char c, ls_err *err) { return ls_strbuf_appendn(b, &c, 1, err); }

int ls_strbuf_vappendf(ls_strbuf *b, ls_err *err, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return ls_err_set(err, LS_EINVAL, "bad format string \"%s\"", fmt);
  LS_TRY(ls_strbuf_reserve(b, (size_t)n, err));
  vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return LS_OK;
}

int ls_strbuf_appendf(ls_strbuf *b, ls_err *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = ls_strbuf_vappendf(b, err, fmt, ap);
  va_end(ap);
  return rc;
}

const char *ls_strbuf_cstr(const ls_strbuf *b) { return b->buf ? b->buf : ""; }

char *ls_strbuf_release(ls_strbuf *b) {
  char *p = b->buf;
  if (!p) p = calloc(1, 1);
  ls_strbuf_init(b);
  return p;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

void ls_text_trim_span(const char *s, size_t n, size_t *start, size_t *len) {
  size_t a = 0, e = n;
  while (a < e && is_space(s[a])) a++;
  while (e > a && is_space(s[e - 1])) e--;
  *start = a;
  *len = e - a;
}

char *ls_dupstr(const char *s, ls_err *err) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *p = malloc(n + 1);
  if (!p) {
    ls_err_set(err, LS_ENOMEM, "out of memory copying a string of %zu bytes", n);
    return NULL;
  }
  memcpy(p, s, n + 1);
  return p;
}
