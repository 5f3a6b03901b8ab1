/* common/ls_json: syntax errors name file, line and column; fields named by their dotted path
 * (ls_json_field*) are found through nested objects and every failure names the file and the
 * field. */
#include <check.h>
#include <string.h>

#include "ls_json.h"
#include "ls_test.h"

static json_t *parse(const char *text) {
  json_t *root = NULL;
  ls_err err = {0};
  ck_assert_msg(ls_json_load_text(text, strlen(text), "t.json", 1, &root, &err) == LS_OK, "%s", err.msg);
  return root;
}

START_TEST(syntax_errors_name_file_line_and_column) {
  json_t *root = NULL;
  ls_err err = {0};
  const char *text = "{\n  \"a\": 1,\n  \"b\": ]\n}";
  ck_assert_int_eq(ls_json_load_text(text, strlen(text), "t.json", 10, &root, &err), LS_EFORMAT);
  ck_assert_ptr_null(root);
  ck_assert_msg(strncmp(err.msg, "t.json:12:", 10) == 0, "%s", err.msg);
  ck_assert_msg(strstr(err.msg, ": invalid JSON: ") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(dotted_fields_are_found_and_typed) {
  json_t *root = parse("{\"top\": \"t\", \"m\": {\"name\": \"model\", \"n\": 7, \"deep\": {\"x\": 3}}}");
  ls_err err = {0};
  char name[8];
  int n = 0;
  ck_assert_msg(ls_json_field_string(root, "t.json", "m.name", name, sizeof name, &err) == LS_OK, "%s", err.msg);
  ck_assert_str_eq(name, "model");
  ck_assert_msg(ls_json_field_string(root, "t.json", "top", name, sizeof name, &err) == LS_OK, "%s", err.msg);
  ck_assert_str_eq(name, "t");
  ck_assert_msg(ls_json_field_int(root, "t.json", "m.n", 1, 7, &n, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(n, 7);
  ck_assert_msg(ls_json_field_int(root, "t.json", "m.deep.x", 0, 9, &n, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(n, 3);
  json_decref(root);
}
END_TEST

static void expect_field_error(const json_t *root, const char *field, int lo, int hi, const char *want) {
  ls_err err = {0};
  int n = -1;
  ck_assert_int_eq(ls_json_field_int(root, "t.json", field, lo, hi, &n, &err), LS_EFORMAT);
  ck_assert_int_eq(n, -1);
  ck_assert_msg(strcmp(err.msg, want) == 0, "got \"%s\", want \"%s\"", err.msg, want);
}

START_TEST(field_errors_name_file_and_field) {
  json_t *root = parse("{\"m\": {\"n\": 7, \"s\": \"x\"}, \"leaf\": 1}");
  expect_field_error(root, "m.k", 0, 9, "t.json: missing field m.k");
  expect_field_error(root, "q.n", 0, 9, "t.json: missing field q");
  expect_field_error(root, "leaf.n", 0, 9, "t.json: field leaf must be an object");
  expect_field_error(root, "m.n", 0, 6, "t.json: field m.n must be an integer in [0, 6]");
  expect_field_error(root, "m.s", 0, 9, "t.json: field m.s must be an integer in [0, 9]");
  ls_err err = {0};
  char small[2] = "z";
  ck_assert_int_eq(ls_json_field_string(root, "t.json", "m.n", small, sizeof small, &err), LS_EFORMAT);
  ck_assert_str_eq(err.msg, "t.json: field m.n is not a string");
  ck_assert_int_eq(ls_json_field_string(root, "t.json", "m.s", small, 1, &err), LS_EFORMAT);
  ck_assert_str_eq(err.msg, "t.json: field m.s is too long");
  ck_assert_str_eq(small, "z");
  json_decref(root);
  json_t *arr = parse("[1]");
  expect_field_error(arr, "m", 0, 9, "t.json: not a JSON object");
  json_decref(arr);
}
END_TEST

int main(void) {
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("json");
  tcase_add_test(tc, syntax_errors_name_file_line_and_column);
  tcase_add_test(tc, dotted_fields_are_found_and_typed);
  tcase_add_test(tc, field_errors_name_file_and_field);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
