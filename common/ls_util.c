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

/* Resolves where an output goes: a regular file (or a new one) is written to
 * PATH.tmp.PID and renamed; a link to a regular file replaces the file it
 * names and keeps the link; a device, pipe or socket (e.g. /dev/stdout) is
 * written in place, since renaming a file over it would replace the device
 * node or the symlink to it. */
int ls_outfile_open(ls_outfile *o, const char *path, ls_err *err) {
  memset(o, 0, sizeof *o);
  o->fd = -1;
  struct stat st;
  int through = 0;
  const char *target = path;
  char *resolved = NULL;
  if (lstat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return ls_err_set(err, LS_EIO, "%s: is a directory", path);
    if (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      if (!(resolved = realpath(path, NULL)))
        return ls_err_set(err, LS_EIO, "%s: cannot resolve the link: %s", path, strerror(errno));
      target = resolved;
    } else if (!S_ISREG(st.st_mode)) {
      through = 1;
    }
  } else if (errno != ENOENT) {
    return ls_err_set(err, LS_EIO, "%s: cannot stat: %s", path, strerror(errno));
  }
  int too_long = snprintf(o->path, sizeof o->path, "%s", target) >= (int)sizeof o->path ||
                 (!through && snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", target, (long)getpid()) >= (int)sizeof o->tmp);
  free(resolved);
  if (too_long) return ls_err_set(err, LS_EIO, "%.200s...: path too long", path);
  const char *open_path = through ? o->path : o->tmp;
  o->fd = through ? open(open_path, O_WRONLY | O_TRUNC) : open(open_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (o->fd < 0)
    return ls_err_set(err, LS_EIO, "%s: cannot %s: %s", open_path, through ? "open for writing" : "create",
                      strerror(errno));
  return LS_OK;
}

int ls_outfile_write(ls_outfile *o, const void *data, size_t len, ls_err *err) {
  return write_all(o->fd, o->tmp[0] ? o->tmp : o->path, data, len, err);
}

int ls_outfile_commit(ls_outfile *o, ls_err *err) {
  const char *at = o->tmp[0] ? o->tmp : o->path;
  int rc = LS_OK;
  if (o->tmp[0] && fsync(o->fd) != 0) rc = ls_err_set(err, LS_EIO, "%s: cannot flush: %s", at, strerror(errno));
  if (close(o->fd) != 0 && rc == LS_OK) rc = ls_err_set(err, LS_EIO, "%s: write failed: %s", at, strerror(errno));
  o->fd = -1;
  if (rc == LS_OK && o->tmp[0] && rename(o->tmp, o->path) != 0)
    rc = ls_err_set(err, LS_EIO, "%s: cannot rename into place: %s", o->path, strerror(errno));
  if (rc != LS_OK && o->tmp[0]) unlink(o->tmp);
  o->tmp[0] = '\0';
  return rc;
}

void ls_outfile_discard(ls_outfile *o) {
  if (o->fd >= 0) close(o->fd);
  if (o->tmp[0]) unlink(o->tmp);
  o->fd = -1;
  o->tmp[0] = '\0';
}

int ls_write_file_atomic(const char *path, const void *data, size_t len, ls_err *err) {
  ls_outfile o;
  LS_TRY(ls_outfile_open(&o, path, err));
  int rc = ls_outfile_write(&o, data, len, err);
  if (rc) {
    ls_outfile_discard(&o);
    return rc;
  }
  return ls_outfile_commit(&o, err);
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
