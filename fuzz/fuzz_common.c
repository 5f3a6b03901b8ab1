#include "fuzz_common.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LS_FUZZ_DATA_DIR
#define LS_FUZZ_DATA_DIR "data"
#endif
#ifndef LS_FUZZ_SOURCE_DIR
#define LS_FUZZ_SOURCE_DIR "."
#endif

const char *fz_data(const char *rel) {
  static char ring[8][4096];
  static int next;
  const char *dir = getenv("LS_DATA_DIR");
  if (!dir || !*dir) dir = LS_FUZZ_DATA_DIR;
  char *buf = ring[next++ % 8];
  snprintf(buf, sizeof ring[0], "%s/%s", dir, rel);
  return buf;
}

const char *fz_source(const char *rel) {
  static char ring[4][4096];
  static int next;
  const char *dir = getenv("LS_SOURCE_DIR");
  if (!dir || !*dir) dir = LS_FUZZ_SOURCE_DIR;
  char *buf = ring[next++ % 4];
  snprintf(buf, sizeof ring[0], "%s/%s", dir, rel);
  return buf;
}

static char tmpdir[4096];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void rm_tmpdir(void) {
  if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void) {
  if (tmpdir[0]) return tmpdir;
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/lsfuzz.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(rm_tmpdir);
  return tmpdir;
}

const char *fz_write(const char *name, const void *data, size_t size) {
  static char ring[4][4096];
  static int next;
  char *path = ring[next++ % 4];
  snprintf(path, sizeof ring[0], "%s/%s", fz_tmpdir(), name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror(path);
    abort();
  }
  const char *p = data;
  while (size > 0) {
    ssize_t k = write(fd, p, size);
    if (k <= 0) {
      perror(path);
      abort();
    }
    p += k;
    size -= (size_t)k;
  }
  close(fd);
  return path;
}

char *fz_cstr(const void *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  if (size) memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

volatile unsigned fz_sink;

FILE *fz_null(void) {
  static FILE *f;
  if (!f && !(f = fopen("/dev/null", "w"))) abort();
  return f;
}

uint8_t fz_u8(fz_in *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

/* Little-endian; one call per statement, because the order in which the operands of
 * `a() | b()` are evaluated is unspecified (gcc and clang differ). */
uint16_t fz_u16(fz_in *in) {
  uint16_t lo = fz_u8(in);
  return (uint16_t)(lo | fz_u8(in) << 8);
}

uint32_t fz_u32(fz_in *in) {
  uint32_t lo = fz_u16(in);
  return lo | (uint32_t)fz_u16(in) << 16;
}

uint64_t fz_u64(fz_in *in) {
  uint64_t lo = fz_u32(in);
  return lo | (uint64_t)fz_u32(in) << 32;
}

const uint8_t *fz_chunk(fz_in *in, size_t max, size_t *len) {
  size_t n = fz_u16(in);
  if (n > max) n = max;
  if (n > in->n) n = in->n;
  const uint8_t *p = in->p;
  in->p += n;
  in->n -= n;
  *len = n;
  return p;
}

const uint8_t *fz_until_nul(fz_in *in, size_t *len) {
  const uint8_t *p = in->p;
  const uint8_t *z = memchr(p, 0, in->n);
  size_t n = z ? (size_t)(z - p) : in->n;
  in->p += n + (z ? 1 : 0);
  in->n -= n + (z ? 1 : 0);
  *len = n;
  return p;
}

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
  fprintf(stderr, "fuzz: %s:%d: %s: ", file, line, cond);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

void fz_check_err(int rc, const ls_err *err, const char *name) {
  static int verbose = -1;
  if (verbose < 0) verbose = getenv("LS_FUZZ_VERBOSE") != NULL;
  if (verbose) fprintf(stderr, "fuzz: refused: %s\n", err->msg);
  FZ_ASSERT(rc != LS_OK, "called on success");
  FZ_ASSERT(err->code == rc, "returned %d but err.code is %d (\"%s\")", rc, err->code, err->msg);
  FZ_ASSERT(err->msg[0] != '\0', "error %d without a message", rc);
  FZ_ASSERT(strchr(err->msg, '\n') == NULL, "error message is not one line: \"%s\"", err->msg);
  if (name) FZ_ASSERT(strstr(err->msg, name) != NULL, "error message does not name %s: \"%s\"", name, err->msg);
}
