/* The one growable byte buffer (common/ls_strbuf.h): text appends and raw
 * binary puts share the same storage, growth keeps earlier bytes, and clear
 * keeps the memory. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "ls_strbuf.h"
#include "ls_test.h"

START_TEST(binary_puts_keep_every_byte) {
  ls_strbuf b = {0};
  uint8_t bytes[300];
  for (int i = 0; i < 300; i++) bytes[i] = (uint8_t)(i * 7); /* includes NUL bytes */
  for (int k = 0; k < 10; k++) ls_strbuf_put(&b, bytes, sizeof bytes); /* grows several times */
  ck_assert(!b.oom);
  ck_assert_uint_eq(b.len, 3000);
  for (int k = 0; k < 10; k++) ck_assert_mem_eq(b.buf + 300 * k, bytes, 300);
  ck_assert_int_eq(b.buf[b.len], '\0');
  char *before = b.buf;
  size_t cap = b.cap;
  ls_strbuf_clear(&b);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_ptr_eq(b.buf, before);
  ck_assert_uint_eq(b.cap, cap);
  ls_strbuf_put(&b, "ab", 2);
  ck_assert_int_eq(ls_strbuf_appendf(&b, NULL, "%d", 42), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "ab42");
  ls_strbuf_free(&b);
  ck_assert_ptr_null(b.buf);
}
END_TEST

START_TEST(a_failed_put_sticks_until_clear) {
  ls_strbuf b = {0};
  ls_strbuf_put(&b, "x", 1);
  b.oom = 1; /* as after a failed allocation */
  ls_strbuf_put(&b, "yz", 2);
  ck_assert_uint_eq(b.len, 1);
  ls_strbuf_clear(&b);
  ck_assert(!b.oom);
  ls_strbuf_put(&b, "yz", 2);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "yz");
  ls_strbuf_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("strbuf");
  TCase *tc = tcase_create("buffer");
  tcase_add_test(tc, binary_puts_keep_every_byte);
  tcase_add_test(tc, a_failed_put_sticks_until_clear);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
