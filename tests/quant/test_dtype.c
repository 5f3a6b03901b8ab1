/* The tensor-type table (runtime/quant/ls_quant.c): names, parsing, block
 * sizes against the block structs, and that every writable type round-trips
 * through ls_quantize_row / ls_dequantize_row. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "ls_quant.h"
#include "ls_test.h"

START_TEST(names_parse_back) {
  int known = 0;
  for (uint32_t t = 0; t < LS_DTYPE_LIMIT; t++) {
    const ls_dtype_info *d = ls_dtype_get(t);
    if (!d) {
      ck_assert_str_eq(ls_dtype_name(t), "unknown");
      continue;
    }
    known++;
    uint32_t back = 999;
    ck_assert_msg(ls_dtype_parse(d->name, &back) && back == t, "%s does not parse back to %u", d->name, t);
    ck_assert_int_gt(d->block_elems, 0);
    ck_assert_uint_gt(d->block_bytes, 0);
    ck_assert_msg(!d->writes || d->computes, "%s is writable but the engine cannot run it", d->name);
  }
  ck_assert_int_ge(known, 30);
  uint32_t t;
  ck_assert(ls_dtype_parse("q8_0", &t) && t == LS_Q8_0);
  ck_assert(ls_dtype_parse("Bf16", &t) && t == LS_BF16);
  ck_assert(!ls_dtype_parse("q8", &t));
  ck_assert(!ls_dtype_parse("", &t));
  ck_assert_ptr_null(ls_dtype_get(LS_DTYPE_LIMIT));
  ck_assert_ptr_null(ls_dtype_get(4)); /* removed from GGML */
}
END_TEST

START_TEST(block_sizes_match_structs) {
  ck_assert_uint_eq(ls_dtype_block_bytes(LS_Q8_0), sizeof(ls_block_q8_0));
  ck_assert_uint_eq(ls_dtype_block_bytes(LS_Q4_0), sizeof(ls_block_q4_0));
  ck_assert_int_eq(ls_dtype_block_elems(LS_Q8_0), LS_QK);
  ck_assert_uint_eq(ls_dtype_row_bytes(LS_Q4_0, 64), 2 * sizeof(ls_block_q4_0));
  ck_assert_uint_eq(ls_dtype_row_bytes(LS_Q4_0, 48), 0);
  ck_assert_uint_eq(ls_dtype_row_bytes(LS_F16, 3), 6);
  /* a type the engine cannot run still has its layout (inspect shows sizes) */
  ck_assert_uint_eq(ls_dtype_row_bytes(23 /* IQ4_XS */, 512), 2 * 136);
  ck_assert_uint_eq(ls_dtype_row_bytes(4, 32), 0);
}
END_TEST

START_TEST(writable_types_round_trip) {
  float x[256], y[256]; /* one Q4_K super-block */
  unsigned char enc[256 * sizeof(float)];
  for (int i = 0; i < 256; i++) x[i] = (float)(i - 127) / 64.0f;
  int n = 0;
  for (uint32_t t = 0; t < LS_DTYPE_LIMIT; t++) {
    const ls_dtype_info *d = ls_dtype_get(t);
    if (!d || !d->writes) continue;
    n++;
    ls_quantize_row(t, x, enc, 256);
    ls_dequantize_row(t, enc, y, 256);
    /* Q4_0's step is max|x|/8 <= 0.25, so the error is at most half of it */
    for (int i = 0; i < 256; i++) ck_assert_msg(fabsf(y[i] - x[i]) <= 0.125f + 1e-6f, "%s: element %d", d->name, i);
  }
  ck_assert_int_eq(n, 7);
  char list[128];
  ls_dtype_list_writable(list, sizeof list, ",");
  ck_assert_str_eq(list, "f32,f16,q4_0,q8_0,q4_k,q6_k,bf16");
  ls_dtype_list_writable(list, 8, ",");
  ck_assert_uint_lt(strlen(list), 8);
}
END_TEST

int main(void) {
  Suite *s = suite_create("dtype");
  TCase *tc = tcase_create("table");
  tcase_add_test(tc, names_parse_back);
  tcase_add_test(tc, block_sizes_match_structs);
  tcase_add_test(tc, writable_types_round_trip);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
