/* Errors carry where they came from (common/ls_error.h): ls_err_set starts
 * the trace at its caller, each LS_TRY on the way up adds a frame, a new
 * error starts afresh, and a long trace is bounded but counted. */
#include <check.h>
#include <string.h>

#include "ls_error.h"
#include "ls_test.h"

static int inner(ls_err *err) { return ls_err_set(err, LS_EFORMAT, "x.bin: bad magic"); }
static int middle(ls_err *err) {
  LS_TRY(inner(err));
  return LS_OK;
}
static int outer(ls_err *err) {
  LS_TRY(middle(err));
  return LS_OK;
}
static int deep(int n, ls_err *err) {
  if (n == 0) return inner(err);
  LS_TRY(deep(n - 1, err));
  return LS_OK;
}

START_TEST(trace_from_origin_to_caller) {
  ls_err err = {0};
  ck_assert_int_eq(outer(&err), LS_EFORMAT);
  ck_assert_int_eq(err.code, LS_EFORMAT);
  ck_assert_str_eq(err.msg, "x.bin: bad magic");
  ck_assert_int_eq(err.n_frames, 3);
  /* innermost first, "folder/file:line function" */
  const char *a = strstr(err.trace, "common/test_error.c:");
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(strstr(err.trace, " inner\n"));
  ck_assert_ptr_nonnull(strstr(err.trace, " middle\n"));
  ck_assert(strstr(err.trace, " inner") < strstr(err.trace, " middle"));
  ck_assert(strstr(err.trace, " middle") < strstr(err.trace, " outer"));
  ck_assert_int_eq(ls_err_prefix(&err, "loading"), LS_EFORMAT);
  ck_assert_str_eq(err.msg, "loading: x.bin: bad magic");
  ck_assert_int_eq(err.n_frames, 3); /* context changes the message, not the trace */
  /* a new error on the same struct starts a new trace */
  ck_assert_int_eq(inner(&err), LS_EFORMAT);
  ck_assert_int_eq(err.n_frames, 1);
  ck_assert_ptr_null(strchr(err.trace, '\n'));
}
END_TEST

START_TEST(long_traces_are_bounded) {
  ls_err err = {0};
  ck_assert_int_eq(deep(200, &err), LS_EFORMAT);
  ck_assert_int_eq(err.n_frames, 201);
  ck_assert_uint_lt(strlen(err.trace), sizeof err.trace);
  ck_assert_ptr_nonnull(strstr(err.trace, " inner")); /* the origin is kept */
  ls_err_trace(NULL, __FILE__, __LINE__, __func__);  /* NULL err: nothing to do */
}
END_TEST

int main(void) {
  Suite *s = suite_create("error");
  TCase *tc = tcase_create("trace");
  tcase_add_test(tc, trace_from_origin_to_caller);
  tcase_add_test(tc, long_traces_are_bounded);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
