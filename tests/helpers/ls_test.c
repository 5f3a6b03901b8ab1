#define _XOPEN_SOURCE 700 /* nftw */
#include "ls_test.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ls_error.h"
#include "ls_util.h"

/* $env/rel in a static ring of buffers. */
static const char *env_path(const char *env, const char *fallback, const char *rel) {
  static char ring[8][4096];
  static int next;
  const char *dir = getenv(env);
  char *buf = ring[next++ % 8];
  snprintf(buf, sizeof ring[0], "%s/%s", dir ? dir : fallback, rel);
  return buf;
}

const char *ls_test_data(const char *rel) { return env_path("LS_DATA_DIR", "data", rel); }

const char *ls_test_source(const char *rel) { return env_path("LS_SOURCE_DIR", ".", rel); }

/* The suite's temp root and the process that made it: a forked Check child
 * inherits both, and only the maker removes the root (at exit or after the run). */
static char tmp_root[512];
static pid_t tmp_root_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void tmp_cleanup(void) {
  if (!tmp_root[0] || tmp_root_owner != getpid()) return;
  nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  tmp_root[0] = '\0';
}

static void die(const char *what, const char *path) {
  fprintf(stderr, "ls_test: cannot create the temp directory %s (%s)\n", path, what);
  exit(1);
}

static const char *tmp_root_dir(void) {
  if (tmp_root[0]) return tmp_root;
  const char *base = getenv("TMPDIR");
  snprintf(tmp_root, sizeof tmp_root, "%s/lstest.XXXXXX", base && base[0] ? base : "/tmp");
  if (!mkdtemp(tmp_root)) die("root", tmp_root);
  if (!tmp_root_owner) atexit(tmp_cleanup);
  tmp_root_owner = getpid();
  return tmp_root;
}

const char *ls_test_tmpdir(void) {
  static char ring[8][600];
  static int next;
  char *buf = ring[next++ % 8];
  snprintf(buf, sizeof ring[0], "%s/t.XXXXXX", tmp_root_dir());
  if (!mkdtemp(buf)) die("test", buf);
  return buf;
}

const char *ls_test_tmp_path(const char *name) {
  static char dir[600], ring[8][1024];
  static pid_t dir_pid;
  static int next;
  if (!dir[0] || dir_pid != getpid()) {
    snprintf(dir, sizeof dir, "%s", ls_test_tmpdir());
    dir_pid = getpid();
  }
  char *buf = ring[next++ % 8];
  snprintf(buf, sizeof ring[0], "%s/%s", dir, name);
  return buf;
}

void ls_test_write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot create %s", path);
  ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
}

const char *ls_test_write_tmp(const char *name, const char *text) {
  const char *p = ls_test_tmp_path(name);
  ls_test_write_file(p, text, strlen(text));
  return p;
}

float *ls_test_read_f32(const char *path, size_t n) {
  char *buf = NULL;
  size_t len = 0;
  ls_err err = {0};
  LS_TEST_OK(ls_read_file(path, &buf, &len, &err));
  ck_assert_msg(len == n * sizeof(float), "%s: %zu bytes, want %zu floats", path, len, n);
  return (float *)buf;
}

double ls_test_max_diff(const float *a, const float *b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
  return d;
}

/* Bytes of the readable part of a guarded string of length len: whole pages. */
static size_t guarded_span(size_t len) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (len + 1 + page - 1) / page * page;
}

char *ls_test_guarded_str(const char *s) {
  size_t len = strlen(s), span = guarded_span(len), page = (size_t)sysconf(_SC_PAGESIZE);
  char *base = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_msg(base != MAP_FAILED, "mmap of %zu bytes failed", span + page);
  ck_assert_int_eq(mprotect(base + span, page, PROT_NONE), 0);
  char *p = base + span - (len + 1);
  memcpy(p, s, len + 1);
  return p;
}

void ls_test_guarded_free(char *p) {
  size_t len = strlen(p), span = guarded_span(len);
  char *base = p + len + 1 - span;
  munmap(base, span + (size_t)sysconf(_SC_PAGESIZE));
}

static int run(Suite *s, enum fork_status fork) {
  tmp_root_dir(); /* before the forks, so that the parent removes it */
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, fork);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  tmp_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int ls_test_run(Suite *s) { return run(s, CK_FORK_GETENV); }

int ls_test_run_nofork(Suite *s) { return run(s, CK_NOFORK); }
