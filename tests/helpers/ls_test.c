#include "ls_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ls_test_data(const char *rel) {
  static char ring[8][4096];
  static int next;
  const char *dir = getenv("LS_DATA_DIR");
  char *buf = ring[next++ % 8];
  snprintf(buf, sizeof ring[0], "%s/%s", dir ? dir : "data", rel);
  return buf;
}

const char *ls_test_tmpdir(void) {
  static char ring[4][256];
  static int next;
  char *buf = ring[next++ % 4];
  const char *base = getenv("TMPDIR");
  snprintf(buf, sizeof ring[0], "%s/lstest.XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(buf)) return "/tmp";
  return buf;
}

int ls_test_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
