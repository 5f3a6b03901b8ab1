/* GGUF reader, writer, converter and synthesiser. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "gguf.h"
#include "ls_forward.h"
#include "ls_model.h"
#include "ls_quant.h"
#include "ls_util.h"
#include "ls_test.h"

static const char *tmp(const char *name) { return ls_test_tmp_path(name); }

#define RANDOM_GGUF "models/tiny-random-gguf/llama-2-tiny-random.gguf"
#define STORIES_BIN "models/stories260K/stories260K.bin"
#define STORIES_TOK "models/stories260K/tok512.bin"

/* ---- the bundled random GGUF ------------------------------------------- */

START_TEST(bundled_random_gguf_loads) {
  ls_model m;
  ls_err err = {0};
  /* the mapping kept (not the default huge-page copy): the loader must point
   * into the file, not convert (the copy is tested in tests/engine/test_forward.c) */
  LS_TEST_OK(ls_model_load_placed(&m, ls_test_data(RANDOM_GGUF), NULL, LS_WEIGHTS_MAP, &err));
  ck_assert_int_eq(m.format, LS_FMT_GGUF);
  ck_assert_uint_eq(m.gguf_version, 3);
  ck_assert_str_eq(m.name, "LLaMA v2");
  ck_assert_int_eq(m.cfg.dim, 8);
  ck_assert_int_eq(m.cfg.n_layers, 1);
  ck_assert_int_eq(m.cfg.hidden_dim, 32);
  ck_assert_int_eq(m.cfg.n_heads, 2);
  ck_assert_int_eq(m.cfg.n_kv_heads, 2);
  ck_assert_int_eq(m.cfg.head_dim, 4);
  ck_assert_int_eq(m.cfg.rope_dim, 4);
  ck_assert_int_eq(m.cfg.vocab_size, 32000);
  ck_assert_int_eq(m.cfg.seq_len, 4096);
  ck_assert_float_eq_tol(m.cfg.norm_eps, 1e-5f, 1e-9f);
  ck_assert_float_eq(m.cfg.rope_theta, 10000.0f);
  ck_assert_int_eq(m.tied_output, 0);
  ck_assert_uint_eq(m.tok_embd.type, LS_F16);
  ck_assert_int_eq(m.tok_embd.rows, 32000);
  ck_assert_int_eq(m.tok_embd.cols, 8);
  ck_assert_uint_eq(m.tok_embd.row_bytes, 16);
  ck_assert_uint_eq(m.layers[0].w_down.type, LS_F16);
  ck_assert_int_eq(m.layers[0].w_down.rows, 8);
  ck_assert_int_eq(m.layers[0].w_down.cols, 32);
  ck_assert_int_eq(m.layers[0].w_gate.rows, 32);
  ck_assert_ptr_nonnull(m.layers[0].attn_norm);
  ck_assert_ptr_nonnull(m.out_norm);
  ck_assert(m.output.data != m.tok_embd.data);
  /* weights point into the mapping */
  ck_assert((const char *)m.tok_embd.data >= (const char *)m.map &&
            (const char *)m.tok_embd.data < (const char *)m.map + m.map_size);
  /* 2 x [8, 32000] + 4 x [8, 8] + 3 x [8, 32] in F16, 3 norms of 8 in F32 */
  ck_assert_uint_eq(m.weight_bytes, 2 * 32000 * 8 * 2 + 4 * 8 * 8 * 2 + 3 * 8 * 32 * 2 + 3 * 8 * 4);
  for (int i = 0; i < 8; i++) ck_assert(isfinite(m.out_norm[i]));
  /* vocabulary */
  const ls_vocab *v = &m.vocab;
  ck_assert_int_eq(v->n_tokens, 32000);
  ck_assert_str_eq(v->tokens[0], "<unk>");
  ck_assert_str_eq(v->tokens[1], "<s>");
  ck_assert_str_eq(v->tokens[2], "</s>");
  ck_assert_str_eq(v->tokens[13], "<0x0A>");
  ck_assert_str_eq(v->tokens[29871], " ");
  ck_assert_str_eq(v->tokens[450], " The");
  ck_assert_str_eq(v->tokens[259], "  ");
  ck_assert_str_eq(v->tokens[31999], "\xe7\xbb\x99");
  ck_assert_int_eq(v->types[0], LS_TOK_UNKNOWN);
  ck_assert_int_eq(v->types[1], LS_TOK_CONTROL);
  ck_assert_int_eq(v->types[13], LS_TOK_BYTE);
  ck_assert_int_eq(v->types[450], LS_TOK_NORMAL);
  ck_assert_int_eq(v->bos_id, 1);
  ck_assert_int_eq(v->eos_id, 2);
  ck_assert_int_eq(v->unk_id, 0);
  ck_assert_int_eq(v->add_bos, 1);
  ck_assert_int_eq(v->add_space_prefix, 1);
  ck_assert_int_ge(v->max_token_len, 16);
  ls_model_free(&m);
}
END_TEST

START_TEST(bundled_random_gguf_view) {
  ls_gguf g;
  ls_err err = {0};
  LS_TEST_OK(ls_gguf_open(&g, ls_test_data(RANDOM_GGUF), &err));
  ck_assert_uint_eq(g.version, 3);
  ck_assert_uint_eq(g.n_kv, 18);
  ck_assert_uint_eq(g.n_tensors, 12);
  ck_assert_uint_eq(g.alignment, 32);
  ck_assert_uint_eq(g.data_offset % 32, 0);
  ck_assert_uint_ge(g.data_offset, 724398);
  ck_assert_uint_lt(g.data_offset, 724398 + 32);
  ck_assert_uint_eq(g.data_offset + g.data_bytes, g.size);
  const ls_gguf_tensor *t = ls_gguf_find_tensor(&g, "blk.0.ffn_down.weight");
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(t->n_dims, 2);
  ck_assert_int_eq(t->ne[0], 32);
  ck_assert_int_eq(t->ne[1], 8);
  ck_assert_uint_eq(t->type, LS_F16);
  ck_assert_uint_eq(t->offset, 513536);
  ck_assert_uint_eq(t->nbytes, 512);
  ck_assert_ptr_null(ls_gguf_find_tensor(&g, "nope"));
  const ls_gguf_kv *kv = ls_gguf_find(&g, "tokenizer.ggml.token_type");
  ck_assert_ptr_nonnull(kv);
  ck_assert_uint_eq(kv->val.arr_type, LS_GGUF_INT32);
  ck_assert_uint_eq(kv->val.arr_n, 32000);
  ls_gguf_value e;
  int64_t i;
  ck_assert(ls_gguf_array_at(&kv->val, 3, &e) && ls_gguf_value_int(&e, &i));
  ck_assert_int_eq(i, 6);
  ck_assert(!ls_gguf_array_at(&kv->val, 32000, &e));
  kv = ls_gguf_find(&g, "tokenizer.ggml.tokens");
  const char *s;
  size_t len;
  ck_assert(ls_gguf_array_at(&kv->val, 2, &e) && ls_gguf_value_str(&e, &s, &len));
  ck_assert_uint_eq(len, 4);
  ck_assert(!memcmp(s, "</s>", 4));
  ls_gguf_close(&g);
}
END_TEST

/* ---- metadata round trip ------------------------------------------------ */

static void write_all_types(const char *path, int with_tensor) {
  ls_err err = {0};
  ls_gguf_writer *w;
  LS_TEST_OK(ls_gguf_writer_open(&w, path, &err));
  uint8_t u8 = 250;
  int8_t i8 = -120;
  uint16_t u16 = 65000;
  int16_t i16 = -32000;
  uint64_t u64 = 0xfedcba9876543210ull;
  int64_t i64 = -1234567890123ll;
  double f64 = -2.5e-300;
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.u8", LS_GGUF_UINT8, &u8, 1, &err));
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.i8", LS_GGUF_INT8, &i8, 1, &err));
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.u16", LS_GGUF_UINT16, &u16, 2, &err));
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.i16", LS_GGUF_INT16, &i16, 2, &err));
  LS_TEST_OK(ls_gguf_writer_kv_u32(w, "t.u32", 4000000000u, &err));
  LS_TEST_OK(ls_gguf_writer_kv_i32(w, "t.i32", -2000000000, &err));
  LS_TEST_OK(ls_gguf_writer_kv_f32(w, "t.f32", 3.25f, &err));
  LS_TEST_OK(ls_gguf_writer_kv_bool(w, "t.bool", 1, &err));
  LS_TEST_OK(ls_gguf_writer_kv_bool(w, "t.bool0", 0, &err));
  LS_TEST_OK(ls_gguf_writer_kv_str(w, "t.str", "h\xc3\xa9llo \xe2\x96\x81world", &err));
  LS_TEST_OK(ls_gguf_writer_kv_str(w, "t.empty", "", &err));
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.u64", LS_GGUF_UINT64, &u64, 8, &err));
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.i64", LS_GGUF_INT64, &i64, 8, &err));
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "t.f64", LS_GGUF_FLOAT64, &f64, 8, &err));
  int32_t ai[5] = {1, -2, 3, -4, 5};
  float af[3] = {0.5f, -1.5f, 1e30f};
  uint8_t ab[4] = {1, 0, 0, 1};
  const char *as[3] = {"a", "", "long string with \xe2\x96\x81"};
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "a.i32", LS_GGUF_INT32, 5, ai, &err));
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "a.f32", LS_GGUF_FLOAT32, 3, af, &err));
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "a.bool", LS_GGUF_BOOL, 4, ab, &err));
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "a.str", LS_GGUF_STRING, 3, as, &err));
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "a.empty", LS_GGUF_UINT64, 0, NULL, &err));
  /* [[1,2],[],[3]] of uint16, and [[["x"],["y","z"]]] of strings */
  ls_strbuf b = {0};
  ls_gguf_put_u32(&b, LS_GGUF_ARRAY);
  ls_gguf_put_u64(&b, 3);
  uint16_t v16[3] = {1, 2, 3};
  ls_gguf_put_u32(&b, LS_GGUF_UINT16);
  ls_gguf_put_u64(&b, 2);
  ls_strbuf_put(&b, v16, 4);
  ls_gguf_put_u32(&b, LS_GGUF_UINT16);
  ls_gguf_put_u64(&b, 0);
  ls_gguf_put_u32(&b, LS_GGUF_UINT16);
  ls_gguf_put_u64(&b, 1);
  ls_strbuf_put(&b, v16 + 2, 2);
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "a.nested", LS_GGUF_ARRAY, b.buf, b.len, &err));
  ls_strbuf_clear(&b);
  ls_gguf_put_u32(&b, LS_GGUF_ARRAY);
  ls_gguf_put_u64(&b, 1);
  ls_gguf_put_u32(&b, LS_GGUF_ARRAY);
  ls_gguf_put_u64(&b, 2);
  ls_gguf_put_u32(&b, LS_GGUF_STRING);
  ls_gguf_put_u64(&b, 1);
  ls_gguf_put_str(&b, "x", 1);
  ls_gguf_put_u32(&b, LS_GGUF_STRING);
  ls_gguf_put_u64(&b, 2);
  ls_gguf_put_str(&b, "y", 1);
  ls_gguf_put_str(&b, "zz", 2);
  LS_TEST_OK(ls_gguf_writer_kv_raw(w, "a.nested3", LS_GGUF_ARRAY, b.buf, b.len, &err));
  ls_strbuf_free(&b);
  if (with_tensor) {
    int64_t ne[2] = {3, 2};
    float x[6] = {1, 2, 3, 4, 5, 6};
    LS_TEST_OK(ls_gguf_writer_tensor(w, "x", LS_F32, 2, ne, &err));
    int64_t ne1 = 5;
    LS_TEST_OK(ls_gguf_writer_tensor(w, "y", LS_F16, 1, &ne1, &err));
    LS_TEST_OK(ls_gguf_writer_tensor_data(w, x, 12, &err)); /* in two pieces */
    LS_TEST_OK(ls_gguf_writer_tensor_data(w, x + 3, 12, &err));
    uint16_t h[5];
    for (int i = 0; i < 5; i++) h[i] = ls_fp32_to_fp16((float)i);
    LS_TEST_OK(ls_gguf_writer_tensor_data(w, h, 10, &err));
  }
  LS_TEST_OK(ls_gguf_writer_finish(w, &err));
  ls_gguf_writer_free(w);
}

static void check_all_types(const char *path, uint32_t version) {
  ls_gguf g;
  ls_err err = {0};
  LS_TEST_OK(ls_gguf_open(&g, path, &err));
  ck_assert_uint_eq(g.version, version);
  ck_assert_uint_eq(g.n_kv, 22); /* 21 + general.alignment added by the writer */
  int64_t i;
  uint64_t u;
  double d;
  int b;
  const char *s;
  size_t len;
#define KV(k) (&ls_gguf_find(&g, k)->val)
  ck_assert_ptr_nonnull(ls_gguf_find(&g, "t.u8"));
  ck_assert(ls_gguf_value_int(KV("t.u8"), &i) && i == 250);
  ck_assert_uint_eq(KV("t.u8")->type, LS_GGUF_UINT8);
  ck_assert(ls_gguf_value_int(KV("t.i8"), &i) && i == -120);
  ck_assert_uint_eq(KV("t.i8")->type, LS_GGUF_INT8);
  ck_assert(ls_gguf_value_int(KV("t.u16"), &i) && i == 65000);
  ck_assert(ls_gguf_value_int(KV("t.i16"), &i) && i == -32000);
  ck_assert(ls_gguf_value_int(KV("t.u32"), &i) && i == 4000000000ll);
  ck_assert(ls_gguf_value_int(KV("t.i32"), &i) && i == -2000000000);
  ck_assert(ls_gguf_value_float(KV("t.f32"), &d) && d == 3.25);
  ck_assert(ls_gguf_value_bool(KV("t.bool"), &b) && b == 1);
  ck_assert(ls_gguf_value_bool(KV("t.bool0"), &b) && b == 0);
  ck_assert(ls_gguf_value_str(KV("t.str"), &s, &len));
  ck_assert_uint_eq(len, strlen("h\xc3\xa9llo \xe2\x96\x81world"));
  ck_assert(!memcmp(s, "h\xc3\xa9llo \xe2\x96\x81world", len));
  ck_assert(ls_gguf_value_str(KV("t.empty"), &s, &len) && len == 0);
  ck_assert(!ls_gguf_value_int(KV("t.u64"), &i)); /* does not fit int64 */
  ck_assert(ls_gguf_value_uint(KV("t.u64"), &u) && u == 0xfedcba9876543210ull);
  ck_assert(ls_gguf_value_int(KV("t.i64"), &i) && i == -1234567890123ll);
  ck_assert(!ls_gguf_value_uint(KV("t.i64"), &u));
  ck_assert(ls_gguf_value_float(KV("t.f64"), &d) && d == -2.5e-300);
  ck_assert(!ls_gguf_value_str(KV("t.u8"), &s, &len));
  ck_assert(!ls_gguf_value_float(KV("t.i32"), &d));
  /* keyed getters with range checks and defaults */
  int found;
  LS_TEST_OK(ls_gguf_get_int(&g, "t.u16", 1, 0, 65535, &i, &found, &err));
  ck_assert(found && i == 65000);
  ck_assert_int_ne(ls_gguf_get_int(&g, "t.u16", 1, 0, 100, &i, &found, &err), LS_OK);
  ck_assert_ptr_nonnull(strstr(err.msg, "t.u16"));
  ck_assert_ptr_nonnull(strstr(err.msg, path));
  ck_assert_int_ne(ls_gguf_get_int(&g, "t.str", 1, 0, 100, &i, &found, &err), LS_OK);
  ck_assert_ptr_nonnull(strstr(err.msg, "string"));
  ck_assert_int_ne(ls_gguf_get_int(&g, "missing", 1, 0, 100, &i, &found, &err), LS_OK);
  ck_assert_ptr_nonnull(strstr(err.msg, "missing"));
  i = 77;
  LS_TEST_OK(ls_gguf_get_int(&g, "missing", 0, 0, 100, &i, &found, &err));
  ck_assert(!found && i == 77);
  /* arrays */
  ls_gguf_value a, e;
  LS_TEST_OK(ls_gguf_get_array(&g, "a.i32", LS_GGUF_INT64, 1, &a, NULL, &err));
  ck_assert_uint_eq(a.arr_n, 5);
  int32_t want_i[5] = {1, -2, 3, -4, 5};
  for (int k = 0; k < 5; k++) ck_assert(ls_gguf_array_at(&a, (uint64_t)k, &e) && ls_gguf_value_int(&e, &i) && i == want_i[k]);
  ck_assert_int_ne(ls_gguf_get_array(&g, "a.i32", LS_GGUF_STRING, 1, &a, NULL, &err), LS_OK);
  LS_TEST_OK(ls_gguf_get_array(&g, "a.f32", LS_GGUF_FLOAT64, 1, &a, NULL, &err));
  ck_assert(ls_gguf_array_at(&a, 2, &e) && ls_gguf_value_float(&e, &d) && d == 1e30f);
  LS_TEST_OK(ls_gguf_get_array(&g, "a.bool", LS_GGUF_BOOL, 1, &a, NULL, &err));
  int want_b[4] = {1, 0, 0, 1};
  for (int k = 0; k < 4; k++) ck_assert(ls_gguf_array_at(&a, (uint64_t)k, &e) && ls_gguf_value_bool(&e, &b) && b == want_b[k]);
  LS_TEST_OK(ls_gguf_get_array(&g, "a.str", LS_GGUF_STRING, 1, &a, NULL, &err));
  const char *want_s[3] = {"a", "", "long string with \xe2\x96\x81"};
  const uint8_t *cur = NULL;
  int k = 0;
  while (ls_gguf_array_next(&a, &cur, &e)) {
    ck_assert(ls_gguf_value_str(&e, &s, &len));
    ck_assert_uint_eq(len, strlen(want_s[k]));
    ck_assert(!memcmp(s, want_s[k], len));
    k++;
  }
  ck_assert_int_eq(k, 3);
  LS_TEST_OK(ls_gguf_get_array(&g, "a.empty", LS_GGUF_UINT64, 1, &a, NULL, &err));
  ck_assert_uint_eq(a.arr_n, 0);
  cur = NULL;
  ck_assert(!ls_gguf_array_next(&a, &cur, &e));
  /* nested: [[1,2],[],[3]] */
  LS_TEST_OK(ls_gguf_get_array(&g, "a.nested", LS_GGUF_ARRAY, 1, &a, NULL, &err));
  ck_assert_uint_eq(a.arr_n, 3);
  uint64_t inner_n[3] = {2, 0, 1};
  int64_t inner_v[3][2] = {{1, 2}, {0, 0}, {3, 0}};
  for (k = 0; k < 3; k++) {
    ck_assert(ls_gguf_array_at(&a, (uint64_t)k, &e));
    ck_assert_uint_eq(e.type, LS_GGUF_ARRAY);
    ck_assert_uint_eq(e.arr_type, LS_GGUF_UINT16);
    ck_assert_uint_eq(e.arr_n, inner_n[k]);
    for (uint64_t j = 0; j < inner_n[k]; j++) {
      ls_gguf_value x;
      ck_assert(ls_gguf_array_at(&e, j, &x) && ls_gguf_value_int(&x, &i));
      ck_assert_int_eq(i, inner_v[k][j]);
    }
  }
  /* [[["x"],["y","zz"]]] */
  LS_TEST_OK(ls_gguf_get_array(&g, "a.nested3", LS_GGUF_ARRAY, 1, &a, NULL, &err));
  ck_assert_uint_eq(a.arr_n, 1);
  ls_gguf_value l1, l2, l3;
  ck_assert(ls_gguf_array_at(&a, 0, &l1) && l1.arr_type == LS_GGUF_ARRAY && l1.arr_n == 2);
  ck_assert(ls_gguf_array_at(&l1, 1, &l2) && l2.arr_type == LS_GGUF_STRING && l2.arr_n == 2);
  ck_assert(ls_gguf_array_at(&l2, 1, &l3) && ls_gguf_value_str(&l3, &s, &len) && len == 2 && !memcmp(s, "zz", 2));
  ck_assert(ls_gguf_array_at(&l1, 0, &l2) && ls_gguf_array_at(&l2, 0, &l3) && ls_gguf_value_str(&l3, &s, &len) &&
            len == 1 && s[0] == 'x');
  /* the general.alignment the writer added, and the tensors */
  LS_TEST_OK(ls_gguf_get_int(&g, "general.alignment", 1, 1, 1 << 30, &i, NULL, &err));
  ck_assert_int_eq(i, 32);
  if (g.n_tensors) {
    ck_assert_uint_eq(g.n_tensors, 2);
    const ls_gguf_tensor *x = ls_gguf_find_tensor(&g, "x"), *y = ls_gguf_find_tensor(&g, "y");
    ck_assert(x && y);
    ck_assert_int_eq(x->ne[0], 3);
    ck_assert_int_eq(x->ne[1], 2);
    ck_assert_uint_eq(x->offset, 0);
    ck_assert_uint_eq(y->offset, 32); /* 24 bytes padded to 32 */
    ck_assert_uint_eq(y->nbytes, 10);
    float xf[6];
    memcpy(xf, x->data, 24);
    for (k = 0; k < 6; k++) ck_assert(xf[k] == (float)(k + 1));
    uint16_t h;
    memcpy(&h, (const uint8_t *)y->data + 8, 2);
    ck_assert(ls_fp16_to_fp32(h) == 4.0f);
    ck_assert_uint_eq(g.data_offset % 32, 0);
  }
#undef KV
  ls_gguf_close(&g);
}

START_TEST(metadata_round_trip) {
  const char *p = tmp("types.gguf");
  write_all_types(p, 1);
  check_all_types(p, 3);
  const char *q = tmp("types-notensor.gguf");
  write_all_types(q, 0);
  check_all_types(q, 3);
  /* no temp file is left behind */
  char t[1100];
  snprintf(t, sizeof t, "%s.tmp.%ld", p, (long)getpid());
  ck_assert_int_ne(access(t, F_OK), 0);
}
END_TEST

static void set_version(const char *src, const char *dst, uint32_t version) {
  char *buf;
  size_t len;
  ls_err err = {0};
  LS_TEST_OK(ls_read_file(src, &buf, &len, &err));
  memcpy(buf + 4, &version, 4);
  LS_TEST_OK(ls_write_file_atomic(dst, buf, len, &err));
  free(buf);
}

START_TEST(versions_2_and_3_read) {
  const char *p = tmp("v3.gguf"), *q = tmp("v2.gguf"), *r = tmp("v1.gguf"), *s = tmp("v9.gguf");
  write_all_types(p, 1);
  set_version(p, q, 2);
  check_all_types(q, 2);
  set_version(p, r, 1);
  set_version(p, s, 9);
  ls_gguf g;
  ls_err err = {0};
  ck_assert_int_eq(ls_gguf_open(&g, r, &err), LS_EUNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(err.msg, r));
  ck_assert_ptr_nonnull(strstr(err.msg, "version 1"));
  ck_assert_int_eq(ls_gguf_open(&g, s, &err), LS_EUNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(err.msg, "version 9"));
  /* the bundled v3 model read as v2 */
  const char *m2 = tmp("random-v2.gguf");
  set_version(ls_test_data(RANDOM_GGUF), m2, 2);
  ls_model m;
  LS_TEST_OK(ls_model_load(&m, m2, NULL, &err));
  ck_assert_uint_eq(m.gguf_version, 2);
  ck_assert_int_eq(m.vocab.n_tokens, 32000);
  ls_model_free(&m);
}
END_TEST

/* ---- convert ------------------------------------------------------------ */

static void same_bytes(const void *a, const void *b, size_t n, const char *what) {
  ck_assert_msg(memcmp(a, b, n) == 0, "%s differs", what);
}

static void same_mat(const ls_mat *a, const ls_mat *b, const char *what) {
  ck_assert_uint_eq(a->type, b->type);
  ck_assert_int_eq(a->rows, b->rows);
  ck_assert_int_eq(a->cols, b->cols);
  ck_assert_uint_eq(a->row_bytes, b->row_bytes);
  same_bytes(a->data, b->data, a->row_bytes * (size_t)a->rows, what);
}

START_TEST(convert_f32_is_byte_identical) {
  ls_model a, b;
  ls_err err = {0};
  LS_TEST_OK(ls_model_load(&a, ls_test_data(STORIES_BIN), ls_test_data(STORIES_TOK), &err));
  const char *out = tmp("stories-f32.gguf");
  LS_TEST_OK(ls_gguf_convert(&a, out, LS_F32, &err));
  LS_TEST_OK(ls_model_load(&b, out, NULL, &err));
  ck_assert_int_eq(b.format, LS_FMT_GGUF);
  ck_assert_str_eq(b.name, "stories260K");
  ck_assert(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0);
  ck_assert_int_eq(b.tied_output, a.tied_output);
  ck_assert_int_eq(b.tied_output, 1);
  same_mat(&a.tok_embd, &b.tok_embd, "token_embd");
  same_bytes(a.out_norm, b.out_norm, (size_t)a.cfg.dim * 4, "output_norm");
  for (int l = 0; l < a.cfg.n_layers; l++) {
    const ls_layer *x = &a.layers[l], *y = &b.layers[l];
    same_bytes(x->attn_norm, y->attn_norm, (size_t)a.cfg.dim * 4, "attn_norm");
    same_bytes(x->ffn_norm, y->ffn_norm, (size_t)a.cfg.dim * 4, "ffn_norm");
    same_mat(&x->wq, &y->wq, "wq");
    same_mat(&x->wk, &y->wk, "wk");
    same_mat(&x->wv, &y->wv, "wv");
    same_mat(&x->wo, &y->wo, "wo");
    same_mat(&x->w_gate, &y->w_gate, "w_gate");
    same_mat(&x->w_up, &y->w_up, "w_up");
    same_mat(&x->w_down, &y->w_down, "w_down");
  }
  /* the vocabulary survives (spaces -> U+2581 -> spaces) */
  ck_assert_int_eq(b.vocab.n_tokens, a.vocab.n_tokens);
  int spaces = 0;
  for (int i = 0; i < a.vocab.n_tokens; i++) {
    ck_assert_str_eq(a.vocab.tokens[i], b.vocab.tokens[i]);
    ck_assert(a.vocab.scores[i] == b.vocab.scores[i]);
    ck_assert_int_eq(a.vocab.types[i], b.vocab.types[i]);
    spaces += strchr(a.vocab.tokens[i], ' ') != NULL;
  }
  ck_assert_int_gt(spaces, 10);
  ck_assert_int_eq(b.vocab.bos_id, 1);
  ck_assert_int_eq(b.vocab.eos_id, 2);
  ck_assert_int_eq(b.vocab.types[3], LS_TOK_BYTE); /* <0x00> */
  ck_assert_int_eq(b.vocab.types[0], LS_TOK_UNKNOWN);
  ck_assert_int_eq(b.vocab.types[1], LS_TOK_CONTROL);
  ck_assert_int_eq(b.vocab.max_token_len, a.vocab.max_token_len);
  /* in the file: U+2581 for spaces and the standard keys */
  ls_gguf g;
  LS_TEST_OK(ls_gguf_open(&g, out, &err));
  const char *s;
  size_t len;
  LS_TEST_OK(ls_gguf_get_str(&g, "general.architecture", 1, &s, &len, NULL, &err));
  ck_assert(len == 5 && !memcmp(s, "llama", 5));
  int64_t v;
  LS_TEST_OK(ls_gguf_get_int(&g, "general.file_type", 1, 0, 100, &v, NULL, &err));
  ck_assert_int_eq(v, 0);
  LS_TEST_OK(ls_gguf_get_int(&g, "llama.vocab_size", 1, 0, 1 << 30, &v, NULL, &err));
  ck_assert_int_eq(v, 512);
  LS_TEST_OK(ls_gguf_get_int(&g, "llama.rope.dimension_count", 1, 0, 1 << 30, &v, NULL, &err));
  ck_assert_int_eq(v, 8);
  ck_assert_uint_eq(ls_gguf_find(&g, "llama.context_length")->val.type, LS_GGUF_UINT32);
  ck_assert_uint_eq(ls_gguf_find(&g, "llama.attention.layer_norm_rms_epsilon")->val.type, LS_GGUF_FLOAT32);
  ls_gguf_value arr, e;
  LS_TEST_OK(ls_gguf_get_array(&g, "tokenizer.ggml.tokens", LS_GGUF_STRING, 1, &arr, NULL, &err));
  int marks = 0;
  for (uint64_t i = 0; i < arr.arr_n; i++) {
    ck_assert(ls_gguf_array_at(&arr, i, &e) && ls_gguf_value_str(&e, &s, &len));
    ck_assert_ptr_null(memchr(s, ' ', len));
    marks += len >= 3 && memmem(s, len, "\xe2\x96\x81", 3) != NULL;
  }
  ck_assert_int_eq(marks, spaces);
  ck_assert_ptr_null(ls_gguf_find_tensor(&g, "output.weight"));
  ck_assert_uint_eq(ls_gguf_find_tensor(&g, "blk.4.ffn_down.weight")->type, LS_F32);
  ck_assert_uint_eq(ls_gguf_find_tensor(&g, "blk.0.attn_norm.weight")->n_dims, 1);
  ls_gguf_close(&g);
  ls_model_free(&a);
  ls_model_free(&b);
}
END_TEST

/* Every element of a Q8_0 row is within half a quantisation step (plus fp16 rounding of the scale). */
static void check_q8(const ls_mat *src, const ls_mat *q, const char *what) {
  ck_assert_int_eq(src->rows, q->rows);
  ck_assert_int_eq(src->cols, q->cols);
  float *x = malloc((size_t)src->cols * 4), *y = malloc((size_t)src->cols * 4);
  int nonzero = 0;
  for (int64_t r = 0; r < src->rows; r++) {
    ls_mat_row_f32(src, r, x);
    ls_mat_row_f32(q, r, y); /* as stored: packed for the amx kernels */
    for (int64_t b = 0; b < src->cols; b += 32) {
      float amax = 0;
      for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b + j]));
      float tol = amax / 127.0f * 0.5f + amax * 2e-3f + 1e-12f;
      for (int j = 0; j < 32; j++) {
        ck_assert_msg(fabsf(x[b + j] - y[b + j]) <= tol, "%s row %lld col %lld: %g vs %g", what, (long long)r,
                      (long long)(b + j), x[b + j], y[b + j]);
        nonzero += y[b + j] != 0;
      }
    }
  }
  ck_assert_int_gt(nonzero, 0);
  free(x);
  free(y);
}

START_TEST(convert_q8_0_dequantises_within_tolerance) {
  ls_model a, b;
  ls_err err = {0};
  LS_TEST_OK(ls_model_load(&a, ls_test_data(STORIES_BIN), ls_test_data(STORIES_TOK), &err));
  const char *out = tmp("stories-q8.gguf");
  LS_TEST_OK(ls_gguf_convert(&a, out, LS_Q8_0, &err));
  LS_TEST_OK(ls_model_load(&b, out, NULL, &err));
  ck_assert_uint_eq(b.tok_embd.type, LS_Q8_0);
  check_q8(&a.tok_embd, &b.tok_embd, "token_embd");
  ck_assert_int_eq(b.tied_output, 1);
  for (int l = 0; l < a.cfg.n_layers; l++) {
    const ls_layer *x = &a.layers[l], *y = &b.layers[l];
    ck_assert_uint_eq(y->wq.type, LS_Q8_0);
    check_q8(&x->wq, &y->wq, "wq");
    check_q8(&x->wk, &y->wk, "wk");
    check_q8(&x->wv, &y->wv, "wv");
    check_q8(&x->wo, &y->wo, "wo");
    check_q8(&x->w_gate, &y->w_gate, "w_gate");
    check_q8(&x->w_up, &y->w_up, "w_up");
    /* 172 columns is not a whole number of Q8_0 blocks: stays F32, byte for byte */
    same_mat(&x->w_down, &y->w_down, "w_down");
    same_bytes(x->attn_norm, y->attn_norm, (size_t)a.cfg.dim * 4, "attn_norm");
  }
  ls_gguf g;
  LS_TEST_OK(ls_gguf_open(&g, out, &err));
  int64_t v;
  LS_TEST_OK(ls_gguf_get_int(&g, "general.file_type", 1, 0, 100, &v, NULL, &err));
  ck_assert_int_eq(v, 7);
  ls_gguf_close(&g);
  ls_model_free(&a);
  ls_model_free(&b);
}
END_TEST

/* ---- synth -------------------------------------------------------------- */

static void synth(const char *path, uint32_t type, uint64_t seed, int tied) {
  ls_synth_opts o = {.dim = 64, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 160,
                     .vocab_size = 300, .seq_len = 128, .type = type, .seed = seed, .tied = tied};
  ls_err err = {0};
  LS_TEST_OK(ls_synth_write(&o, path, &err));
}

START_TEST(synth_shape_and_determinism) {
  const uint32_t types[4] = {LS_F32, LS_F16, LS_Q8_0, LS_Q4_0};
  ls_model ref;
  ls_err err = {0};
  synth(tmp("s-f32.gguf"), LS_F32, 7, 0);
  LS_TEST_OK(ls_model_load(&ref, tmp("s-f32.gguf"), NULL, &err));
  for (int t = 0; t < 4; t++) {
    char name[64];
    snprintf(name, sizeof name, "s-%d.gguf", t);
    synth(tmp(name), types[t], 7, 0);
    ls_model m;
    LS_TEST_OK(ls_model_load(&m, tmp(name), NULL, &err));
    ck_assert_int_eq(m.cfg.dim, 64);
    ck_assert_int_eq(m.cfg.n_layers, 3);
    ck_assert_int_eq(m.cfg.n_heads, 4);
    ck_assert_int_eq(m.cfg.n_kv_heads, 2);
    ck_assert_int_eq(m.cfg.hidden_dim, 160);
    ck_assert_int_eq(m.cfg.vocab_size, 300);
    ck_assert_int_eq(m.cfg.seq_len, 128);
    ck_assert_int_eq(m.tied_output, 0);
    ck_assert_uint_eq(m.tok_embd.type, types[t]);
    ck_assert_uint_eq(m.layers[2].wk.type, types[t]);
    ck_assert_int_eq(m.layers[2].wk.rows, 32);
    ck_assert_int_eq(m.layers[2].wk.cols, 64);
    /* 160 columns = 5 blocks, so w_down is quantised too */
    ck_assert_uint_eq(m.layers[2].w_down.type, types[t]);
    ck_assert_int_eq(m.layers[2].w_down.cols, 160);
    for (int i = 0; i < 64; i++) ck_assert(m.layers[1].ffn_norm[i] == 1.0f && m.out_norm[i] == 1.0f);
    /* same seed: the same values before encoding, so each type is close to F32 */
    float x[160], y[160];
    double sum2 = 0;
    int n = 0;
    for (int64_t r = 0; r < m.layers[1].w_down.rows; r++) {
      ls_dequantize_row(LS_F32, (const char *)ref.layers[1].w_down.data + r * ref.layers[1].w_down.row_bytes, x, 160);
      ls_mat_row_f32(&m.layers[1].w_down, r, y); /* as stored: packed for the amx kernels */
      for (int j = 0; j < 160; j++) {
        ck_assert(fabsf(x[j]) < 0.02f * 3.5f);
        ck_assert_msg(fabsf(x[j] - y[j]) <= (types[t] == LS_Q4_0 ? 0.01f : 0.001f), "type %u: %g vs %g", types[t],
                      x[j], y[j]);
        sum2 += (double)x[j] * x[j];
        n++;
      }
    }
    double sd = sqrt(sum2 / n);
    ck_assert_msg(sd > 0.015 && sd < 0.025, "stddev %g", sd);
    /* vocabulary: specials, bytes, fillers */
    ck_assert_int_eq(m.vocab.n_tokens, 300);
    ck_assert_str_eq(m.vocab.tokens[1], "<s>");
    ck_assert_str_eq(m.vocab.tokens[3 + 'A'], "<0x41>");
    ck_assert_int_eq(m.vocab.types[3 + 'A'], LS_TOK_BYTE);
    ck_assert_str_eq(m.vocab.tokens[259], " ");
    ck_assert_str_eq(m.vocab.tokens[260], "e");
    for (int i = 0; i < 300; i++)
      for (int j = i + 1; j < 300; j++) ck_assert_str_ne(m.vocab.tokens[i], m.vocab.tokens[j]);
    ls_model_free(&m);
  }
  ls_model_free(&ref);
  /* deterministic from the seed; another seed differs */
  char h1[65], h2[65], h3[65];
  synth(tmp("s-a.gguf"), LS_Q8_0, 42, 0);
  synth(tmp("s-b.gguf"), LS_Q8_0, 42, 0);
  synth(tmp("s-c.gguf"), LS_Q8_0, 43, 0);
  LS_TEST_OK(ls_sha256_file(tmp("s-a.gguf"), h1, &err));
  LS_TEST_OK(ls_sha256_file(tmp("s-b.gguf"), h2, &err));
  LS_TEST_OK(ls_sha256_file(tmp("s-c.gguf"), h3, &err));
  ck_assert_str_eq(h1, h2);
  ck_assert_str_ne(h1, h3);
  /* tied: no output.weight */
  synth(tmp("s-tied.gguf"), LS_Q4_0, 1, 1);
  ls_model m;
  LS_TEST_OK(ls_model_load(&m, tmp("s-tied.gguf"), NULL, &err));
  ck_assert_int_eq(m.tied_output, 1);
  ck_assert_ptr_eq(m.output.data, m.tok_embd.data);
  ls_model_free(&m);
}
END_TEST

START_TEST(synth_refuses_bad_shapes) {
  ls_synth_opts o = {.dim = 64, .n_layers = 1, .n_heads = 3, .n_kv_heads = 1, .hidden_dim = 64,
                     .vocab_size = 300, .seq_len = 16, .type = LS_F32};
  ls_err err = {0};
  const char *p = tmp("bad-synth.gguf");
  ck_assert_int_ne(ls_synth_write(&o, p, &err), LS_OK);
  ck_assert_ptr_nonnull(strstr(err.msg, p));
  ck_assert_ptr_nonnull(strstr(err.msg, "head count"));
  ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

/* A GGUF without a tokenizer loads with an empty vocabulary. */
START_TEST(gguf_without_tokenizer_loads) {
  ls_model a, b;
  ls_err err = {0};
  LS_TEST_OK(ls_model_load(&a, ls_test_data(STORIES_BIN), NULL, &err));
  ck_assert_int_eq(a.vocab.n_tokens, 0);
  LS_TEST_OK(ls_gguf_convert(&a, tmp("notok.gguf"), LS_F32, &err));
  LS_TEST_OK(ls_model_load(&b, tmp("notok.gguf"), NULL, &err));
  ck_assert_int_eq(b.vocab.n_tokens, 0);
  ck_assert_int_eq(b.cfg.vocab_size, 512);
  ls_model_free(&b);
  /* and -z replaces it */
  LS_TEST_OK(ls_model_load(&b, tmp("notok.gguf"), ls_test_data(STORIES_TOK), &err));
  ck_assert_int_eq(b.vocab.n_tokens, 512);
  ls_model_free(&b);
  ls_model_free(&a);
}
END_TEST

/* Runs 16 tokens through the engine and returns a copy of all their logits. */
static float *run_logits(const ls_model *m, int n) {
  ls_err err = {0};
  ls_ctx *c;
  ls_ctx_params p = {.n_ctx = 32, .max_batch = 16, .n_threads = 1};
  LS_TEST_OK(ls_ctx_new(m, &p, &c, &err));
  int toks[16];
  for (int i = 0; i < n; i++) toks[i] = i == 0 ? 1 : (i * 37 + 11) % m->cfg.vocab_size;
  LS_TEST_OK(ls_forward(c, toks, n, 0, NULL, 1, &err));
  size_t len = (size_t)n * (size_t)m->cfg.vocab_size;
  float *out = malloc(len * sizeof *out);
  memcpy(out, ls_ctx_logits(c), len * sizeof *out);
  ls_ctx_free(c);
  for (size_t i = 0; i < len; i++) ck_assert_msg(isfinite(out[i]), "logit %zu is not finite", i);
  return out;
}

/* The converted F32 GGUF computes exactly what the checkpoint computes; the
 * other files the engine can run (F16, Q8_0, Q4_0) give finite logits. */
START_TEST(engine_runs_converted_and_synth_models) {
  ls_model a, b;
  ls_err err = {0};
  LS_TEST_OK(ls_model_load(&a, ls_test_data(STORIES_BIN), ls_test_data(STORIES_TOK), &err));
  LS_TEST_OK(ls_gguf_convert(&a, tmp("fw-f32.gguf"), LS_F32, &err));
  LS_TEST_OK(ls_gguf_convert(&a, tmp("fw-q8.gguf"), LS_Q8_0, &err));
  LS_TEST_OK(ls_model_load(&b, tmp("fw-f32.gguf"), NULL, &err));
  float *x = run_logits(&a, 16), *y = run_logits(&b, 16);
  ck_assert(memcmp(x, y, 16 * 512 * sizeof(float)) == 0);
  ls_model_free(&b);
  LS_TEST_OK(ls_model_load(&b, tmp("fw-q8.gguf"), NULL, &err));
  float *q = run_logits(&b, 16);
  int agree = 0;
  for (int t = 0; t < 16; t++) {
    int ix = 0, iq = 0;
    for (int j = 1; j < 512; j++) {
      if (x[t * 512 + j] > x[t * 512 + ix]) ix = j;
      if (q[t * 512 + j] > q[t * 512 + iq]) iq = j;
    }
    agree += ix == iq;
  }
  ck_assert_msg(agree >= 14, "Q8_0 agrees with F32 on %d of 16 top-1 tokens", agree);
  free(x);
  free(y);
  free(q);
  ls_model_free(&b);
  ls_model_free(&a);
  LS_TEST_OK(ls_model_load(&b, ls_test_data(RANDOM_GGUF), NULL, &err));
  free(run_logits(&b, 4));
  ls_model_free(&b);
  synth(tmp("fw-q4.gguf"), LS_Q4_0, 3, 0);
  LS_TEST_OK(ls_model_load(&b, tmp("fw-q4.gguf"), NULL, &err));
  free(run_logits(&b, 8));
  ls_model_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gguf");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, bundled_random_gguf_loads);
  tcase_add_test(tc, bundled_random_gguf_view);
  tcase_add_test(tc, metadata_round_trip);
  tcase_add_test(tc, versions_2_and_3_read);
  tcase_add_test(tc, convert_f32_is_byte_identical);
  tcase_add_test(tc, convert_q8_0_dequantises_within_tolerance);
  tcase_add_test(tc, synth_shape_and_determinism);
  tcase_add_test(tc, synth_refuses_bad_shapes);
  tcase_add_test(tc, gguf_without_tokenizer_loads);
  tcase_add_test(tc, engine_runs_converted_and_synth_models);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
