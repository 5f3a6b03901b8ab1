/* ls_path_normalize: lexical normalisation of the paths a job resolves against its folder
 * ("jobs/../data/x" -> "data/x"). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "ls_test.h"
#include "ls_util.h"

static void check_norm(const char *in, const char *want) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", in);
  ls_path_normalize(buf);
  ck_assert_msg(strcmp(buf, want) == 0, "\"%s\" -> \"%s\", want \"%s\"", in, buf, want);
}

START_TEST(normalises_like_normpath) {
  check_norm("jobs/../data/templates/story.json", "data/templates/story.json");
  check_norm("/work/jobs/../data/x.bin", "/work/data/x.bin");
  check_norm("a//b/./c/", "a/b/c");
  check_norm("./a", "a");
  check_norm("a/..", ".");
  check_norm("", ".");
  check_norm(".", ".");
  check_norm("../x", "../x");
  check_norm("../../x/../y", "../../y");
  check_norm("a/../../x", "../x");
  check_norm("/..", "/");
  check_norm("/../a/./b/..", "/a");
  check_norm("/", "/");
  check_norm("//a//", "/a");
  check_norm("a/b/../../..", "..");
}
END_TEST

int main(void) {
  Suite *s = suite_create("paths");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, normalises_like_normpath);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
