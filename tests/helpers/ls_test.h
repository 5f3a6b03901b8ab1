/* Shared helpers for the Check suites: paths of bundled data and temp dirs. */
#ifndef LS_TEST_H
#define LS_TEST_H

#include <check.h>
#include <stddef.h>

/* $LS_DATA_DIR/rel (LS_DATA_DIR is set by ctest), in a static ring of buffers. */
const char *ls_test_data(const char *rel);
/* $LS_SOURCE_DIR/rel (the repository root; test fixtures under tests/data). */
const char *ls_test_source(const char *rel);
/* A fresh, empty temporary directory inside the suite's own root
 * ($TMPDIR/lstest.XXXXXX, made by the first call). The root and everything in
 * it are removed when the process that made it exits, so tests need not clean
 * up after themselves; ls_test_run makes the root before forking the tests so
 * that a crashing or timed-out test leaves nothing behind either. Never
 * returns NULL: a failure to create a directory fails the calling test. */
const char *ls_test_tmpdir(void);
/* "DIR/name" for a fresh ls_test_tmpdir() per process (one directory shared
 * by the calls of a process), in a static ring of 8 buffers. */
const char *ls_test_tmp_path(const char *name);
/* A copy of s whose terminating NUL is the last readable byte: the next page is
 * unmapped, so reading past the end faults in every build, not only under ASan.
 * Free with ls_test_guarded_free. */
char *ls_test_guarded_str(const char *s);
void ls_test_guarded_free(char *p);
/* Fails the test with the err in scope's message unless expr returns LS_OK:
 * `LS_TEST_OK(ls_model_load(&m, path, NULL, &err));`. */
#define LS_TEST_OK(expr)                                                                                       \
  do {                                                                                                         \
    int ls_test_rc_ = (expr);                                                                                  \
    ck_assert_msg(ls_test_rc_ == LS_OK, "%s failed: %s", #expr, err.msg);                                      \
  } while (0)

/* Writes len bytes to path (the test fails if it cannot). */
void ls_test_write_file(const char *path, const void *buf, size_t len);
/* Writes text to ls_test_tmp_path(name) and returns that path. */
const char *ls_test_write_tmp(const char *name, const char *text);
/* The n floats of a raw little-endian f32 file, malloc'd; the test fails unless the file holds
 * exactly n of them. */
float *ls_test_read_f32(const char *path, size_t n);
/* max |a[i] - b[i]| over n values, in double. */
double ls_test_max_diff(const float *a, const float *b, size_t n);

/* Runs a Check suite with CK_NORMAL output, then removes the temp root;
 * returns the process exit status. */
int ls_test_run(Suite *s);
/* The same in this process (CK_NOFORK), for suites that initialise MPI once
 * around the run. */
int ls_test_run_nofork(Suite *s);

#endif
