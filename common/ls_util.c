#include "ls_util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ls_log_level = 1;

double ls_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void ls_log(int level, const char *fmt, ...) {
  if (level > ls_log_level) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int ls_read_file(const char *path, char **out, size_t *len, ls_err *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ls_err_set(err, LS_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return ls_err_set(err, LS_EIO, "%s: not a regular file", path);
  }
  size_t n = (size_t)st.st_size;
  char *buf = ls_malloc(n + 1, err);
  if (!buf) {
    fclose(f);
    return LS_ENOMEM;
  }
  if (n && fread(buf, 1, n, f) != n) {
    free(buf);
    fclose(f);
    return ls_err_set(err, LS_EIO, "%s: short read", path);
  }
  fclose(f);
  buf[n] = '\0';
  *out = buf;
  if (len) *len = n;
  return LS_OK;
}

int ls_write_file_atomic(const char *path, const void *data, size_t len, ls_err *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ls_err_set(err, LS_EIO, "%s: cannot create: %s", tmp, strerror(errno));
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      return ls_err_set(err, LS_EIO, "%s: write failed: %s", tmp, strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp);
    return ls_err_set(err, LS_EIO, "%s: cannot flush: %s", tmp, strerror(errno));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return ls_err_set(err, LS_EIO, "%s: cannot rename into place: %s", path, strerror(e));
  }
  return LS_OK;
}

static void to_hex(const unsigned char *md, unsigned n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[2 * n] = '\0';
}

int ls_sha256_file(const char *path, char hex[65], ls_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return ls_err_set(err, LS_EIO, "%s: cannot open: %s", path, strerror(errno));
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    fclose(f);
    EVP_MD_CTX_free(ctx);
    return ls_err_set(err, LS_ESTATE, "%s: cannot initialise SHA-256", path);
  }
  static __thread unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
  int bad = ferror(f);
  fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  if (bad) return ls_err_set(err, LS_EIO, "%s: read error while hashing", path);
  to_hex(md, mdlen, hex);
  return LS_OK;
}

void ls_sha256_buf(const void *data, size_t len, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
  to_hex(md, mdlen, hex);
}

const char *ls_version(void) { return LS_VERSION; }
const char *ls_git_commit(void) { return LS_GIT_COMMIT; }

void ls_utc_now(char out[32]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
