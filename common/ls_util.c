#include "ls_util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double ls_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

double ls_load_avg(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
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

static int write_all(int fd, const char *path, const void *data, size_t len, ls_err *err) {
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ls_err_set(err, LS_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    p += w;
    left -= (size_t)w;
  }
  return LS_OK;
}

/* A device, pipe or socket (e.g. /dev/stdout): written in place; renaming a file over it would
 * replace the device node or the symlink to it. */
static int write_through(const char *path, const void *data, size_t len, ls_err *err) {
  int fd = open(path, O_WRONLY | O_TRUNC);
  if (fd < 0) return ls_err_set(err, LS_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
  int rc = write_all(fd, path, data, len, err);
  if (close(fd) != 0 && rc == LS_OK) rc = ls_err_set(err, LS_EIO, "%s: write failed: %s", path, strerror(errno));
  return rc;
}

static int write_renamed(const char *path, const void *data, size_t len, ls_err *err) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
    return ls_err_set(err, LS_EIO, "%.200s...: path too long", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ls_err_set(err, LS_EIO, "%s: cannot create: %s", tmp, strerror(errno));
  int rc = write_all(fd, tmp, data, len, err);
  if (rc == LS_OK && fsync(fd) != 0) rc = ls_err_set(err, LS_EIO, "%s: cannot flush: %s", tmp, strerror(errno));
  if (close(fd) != 0 && rc == LS_OK) rc = ls_err_set(err, LS_EIO, "%s: cannot flush: %s", tmp, strerror(errno));
  if (rc == LS_OK && rename(tmp, path) != 0)
    rc = ls_err_set(err, LS_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
  if (rc != LS_OK) unlink(tmp);
  return rc;
}

int ls_write_file_atomic(const char *path, const void *data, size_t len, ls_err *err) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno != ENOENT) return ls_err_set(err, LS_EIO, "%s: cannot stat: %s", path, strerror(errno));
    return write_renamed(path, data, len, err);
  }
  if (S_ISREG(st.st_mode)) return write_renamed(path, data, len, err);
  if (S_ISDIR(st.st_mode)) return ls_err_set(err, LS_EIO, "%s: is a directory", path);
  if (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
    /* a link to a regular file: replace the file it names, keep the link */
    char *target = realpath(path, NULL);
    if (!target) return ls_err_set(err, LS_EIO, "%s: cannot resolve the link: %s", path, strerror(errno));
    int rc = write_renamed(target, data, len, err);
    free(target);
    return rc;
  }
  return write_through(path, data, len, err);
}

void ls_path_normalize(char *path) {
  int abs = path[0] == '/';
  char *out = path, *p = path;
  size_t keep = 0; /* leading ".." components a later ".." must not remove */
  while (*p) {
    while (*p == '/') p++;
    char *seg = p;
    while (*p && *p != '/') p++;
    size_t n = (size_t)(p - seg);
    if (n == 0 || (n == 1 && seg[0] == '.')) continue;
    size_t used = (size_t)(out - path);
    if (n == 2 && seg[0] == '.' && seg[1] == '.') {
      if (used > keep) { /* drop the last component */
        while (out > path + keep && out[-1] != '/') out--;
        if (out > path + keep) out--;
        if (out == path && abs) out++;
        continue;
      }
      if (abs) continue; /* "/.." is "/" */
    }
    if (out > path && out[-1] != '/') *out++ = '/';
    else if (out == path && abs) *out++ = '/';
    memmove(out, seg, n);
    out += n;
    if (n == 2 && seg[0] == '.' && seg[1] == '.') keep = (size_t)(out - path);
  }
  if (out == path) *out++ = abs ? '/' : '.';
  *out = 0;
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
