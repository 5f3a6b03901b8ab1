/* Shared helpers for the Check suites: paths of bundled data and temp dirs. */
#ifndef LS_TEST_H
#define LS_TEST_H

#include <check.h>

/* $LS_DATA_DIR/rel (LS_DATA_DIR is set by ctest), in a static ring of buffers. */
const char *ls_test_data(const char *rel);
/* A fresh temporary directory (removed by nobody: tests write small files). */
const char *ls_test_tmpdir(void);
/* Runs a Check suite with CK_NORMAL output; returns the process exit status. */
int ls_test_run(Suite *s);

#endif
