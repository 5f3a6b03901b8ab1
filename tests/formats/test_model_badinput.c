/* Bad model files: truncated at many offsets, wrong magic, absurd counts and
 * dimensions, tensors past the end, unknown types, huge strings, bad
 * alignment. Each must return an error code (never crash; run under the
 * sanitizer build too) with a one-line message naming the file and problem. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "ls_model.h"
#include "ls_quant.h"
#include "ls_util.h"
#include "ls_test.h"

static const char *tmp(const char *name) { return ls_test_tmp_path(name); }

#define RANDOM_GGUF "models/tiny-random-gguf/llama-2-tiny-random.gguf"
#define STORIES_BIN "models/stories260K/stories260K.bin"
#define STORIES_TOK "models/stories260K/tok512.bin"

static void read_all(const char *path, char **buf, size_t *len) {
  ls_err err = {0};
  ck_assert_msg(ls_read_file(path, buf, len, &err) == LS_OK, "%s", err.msg);
}

/* Loading must fail with a one-line message naming the file (and `what`, if given). */
static void expect_fail_tok(const char *path, const char *tok, const char *named, const char *what) {
  ls_model m;
  ls_err err = {0};
  int rc = ls_model_load(&m, path, tok, &err);
  ck_assert_msg(rc != LS_OK, "%s loaded but should fail (%s)", path, what ? what : "");
  ck_assert_int_eq(rc, err.code);
  ck_assert_msg(strstr(err.msg, named) != NULL, "message does not name %s: %s", named, err.msg);
  ck_assert_msg(strchr(err.msg, '\n') == NULL, "message has a newline: %s", err.msg);
  if (what) ck_assert_msg(strstr(err.msg, what) != NULL, "message does not say '%s': %s", what, err.msg);
  ck_assert_ptr_null(m.map); /* freed on failure */
  ck_assert_ptr_null(m.layers);
}

static void expect_fail(const char *path, const char *what) { expect_fail_tok(path, NULL, path, what); }

static int cmp_desc(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Truncates a copy of src at every offset in [lo, hi) and at `spread` more
 * offsets through the file (descending, so one copy is truncated in place). */
static int truncations(const char *src, const char *dst, size_t lo, size_t hi, int spread, const char *tok) {
  char *buf;
  size_t len;
  read_all(src, &buf, &len);
  ls_test_write_file(dst, buf, len);
  free(buf);
  if (hi > len) hi = len;
  size_t *offs = malloc((hi - lo + (size_t)spread + 1) * sizeof *offs);
  int n = 0;
  offs[n++] = len - 1;
  for (int k = spread; k >= 1; k--) offs[n++] = len / (size_t)(spread + 1) * (size_t)k + (size_t)k * 7;
  for (size_t o = hi; o-- > lo;) offs[n++] = o;
  qsort(offs, (size_t)n, sizeof *offs, cmp_desc);
  int tested = 0;
  size_t last = len;
  for (int k = 0; k < n; k++) {
    if (offs[k] >= last) continue; /* each offset once, descending */
    last = offs[k];
    ck_assert_int_eq(truncate(dst, (off_t)offs[k]), 0);
    if (tok) expect_fail_tok(dst, tok, dst, NULL);
    else expect_fail(dst, NULL);
    tested++;
  }
  free(offs);
  return tested;
}

/* A small valid GGUF (the stories260K checkpoint converted to F32). */
static const char *stories_gguf(void) {
  static char path[1024];
  if (!path[0]) {
    ls_model m;
    ls_err err = {0};
    ck_assert_msg(ls_model_load(&m, ls_test_data(STORIES_BIN), ls_test_data(STORIES_TOK), &err) == LS_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s", tmp("stories.gguf"));
    ck_assert_msg(ls_gguf_convert(&m, path, LS_F32, &err) == LS_OK, "%s", err.msg);
    ls_model_free(&m);
  }
  return path;
}

START_TEST(gguf_truncated_everywhere) {
  const char *src = stories_gguf();
  ls_gguf g;
  ls_err err = {0};
  ck_assert_msg(ls_gguf_open(&g, src, &err) == LS_OK, "%s", err.msg);
  size_t data_off = g.data_offset;
  ls_gguf_close(&g);
  /* every offset through the whole metadata and tensor-info region, and 50 more */
  int n = truncations(src, tmp("stories-trunc.gguf"), 0, data_off + 256, 50, NULL);
  ck_assert_int_ge(n, (int)data_off + 256);
}
END_TEST

START_TEST(bundled_gguf_truncated) {
  const char *src = ls_test_data(RANDOM_GGUF);
  ls_gguf g;
  ls_err err = {0};
  ck_assert_msg(ls_gguf_open(&g, src, &err) == LS_OK, "%s", err.msg);
  size_t data_off = g.data_offset;
  ls_gguf_close(&g);
  /* the header and first keys, then the tensor infos (12 of them, < 1 KiB) up to the data */
  int n = truncations(src, tmp("random-trunc.gguf"), data_off - 1024, data_off + 64, 50, NULL);
  n += truncations(src, tmp("random-trunc2.gguf"), 0, 4096, 0, NULL);
  ck_assert_int_ge(n, 4096 + 1088);
}
END_TEST

START_TEST(bin_truncated_everywhere) {
  int n = truncations(ls_test_data(STORIES_BIN), tmp("stories-trunc.bin"), 0, 2048, 50, NULL);
  ck_assert_int_ge(n, 2048);
}
END_TEST

START_TEST(tokenizer_truncated_everywhere) {
  char *buf;
  size_t len;
  read_all(ls_test_data(STORIES_TOK), &buf, &len);
  free(buf);
  /* the checkpoint is fine, the tokenizer is cut short: the message names the tokenizer */
  const char *dst = tmp("tok-trunc.bin");
  char *tb;
  size_t tl;
  read_all(ls_test_data(STORIES_TOK), &tb, &tl);
  ls_test_write_file(dst, tb, tl);
  free(tb);
  for (size_t o = len; o-- > 0;) {
    ck_assert_int_eq(truncate(dst, (off_t)o), 0);
    expect_fail_tok(ls_test_data(STORIES_BIN), dst, dst, NULL);
  }
  expect_fail_tok(ls_test_data(STORIES_BIN), tmp("no-such-tokenizer.bin"), "no-such-tokenizer.bin", "cannot open");
}
END_TEST

/* ---- patched GGUF files ------------------------------------------------- */

typedef struct {
  char *buf;
  size_t len;
} image;

static image load_image(const char *path) {
  image im;
  read_all(path, &im.buf, &im.len);
  return im;
}

static size_t find(const image *im, const char *s) {
  const char *p = memmem(im->buf, im->len, s, strlen(s));
  ck_assert_msg(p != NULL, "'%s' not in the file", s);
  return (size_t)(p - im->buf);
}

/* Offset of the value of metadata key `key` (just after its u32 type). */
static size_t kv_value(const image *im, const char *key) { return find(im, key) + strlen(key) + 4; }
static size_t kv_type(const image *im, const char *key) { return find(im, key) + strlen(key); }

/* Offsets inside a tensor info: n_dims, ne[d], type, offset. */
static size_t ti_ndims(const image *im, const char *name) { return find(im, name) + strlen(name); }
static size_t ti_ne(const image *im, const char *name, int d) { return ti_ndims(im, name) + 4 + 8 * (size_t)d; }
static size_t ti_type(const image *im, const char *name) {
  uint32_t nd;
  memcpy(&nd, im->buf + ti_ndims(im, name), 4);
  return ti_ndims(im, name) + 4 + 8 * nd;
}
static size_t ti_offset(const image *im, const char *name) { return ti_type(im, name) + 4; }

static void put32(image *im, size_t off, uint32_t v) { memcpy(im->buf + off, &v, 4); }
static void put64(image *im, size_t off, uint64_t v) { memcpy(im->buf + off, &v, 8); }

/* Writes a patched copy of the small model and expects `what` in the error. */
typedef void (*patch_fn)(image *im);

static int n_case;

static void bad_case(patch_fn patch, const char *what, int code) {
  image im = load_image(stories_gguf());
  patch(&im);
  char name[64];
  snprintf(name, sizeof name, "bad-%d.gguf", n_case++);
  const char *p = tmp(name);
  ls_test_write_file(p, im.buf, im.len);
  free(im.buf);
  expect_fail(p, what);
  if (code) {
    ls_model m;
    ls_err err = {0};
    ck_assert_int_eq(ls_model_load(&m, p, NULL, &err), code);
  }
}

static void p_magic(image *im) { memcpy(im->buf, "GGUX", 4); }
static void p_version1(image *im) { put32(im, 4, 1); }
static void p_version_big_endian(image *im) { put32(im, 4, 0x03000000u); }
static void p_nkv(image *im) { put64(im, 16, 1ull << 40); }
static void p_ntensors(image *im) { put64(im, 8, 1ull << 40); }
static void p_nkv_max(image *im) { put64(im, 16, UINT64_MAX); }
static void p_key_len(image *im) { put64(im, 24, 1ull << 62); }
static void p_key_len_max(image *im) { put64(im, 24, UINT64_MAX); }
static void p_str_len(image *im) { put64(im, kv_value(im, "general.name"), UINT64_MAX - 3); }
static void p_arr_count(image *im) { put64(im, kv_value(im, "tokenizer.ggml.tokens") + 4, 1ull << 61); }
static void p_arr_count2(image *im) { put64(im, kv_value(im, "tokenizer.ggml.scores") + 4, 1ull << 50); }
static void p_value_type(image *im) { put32(im, kv_type(im, "general.name"), 13); }
static void p_arr_type(image *im) { put32(im, kv_value(im, "tokenizer.ggml.scores"), 99); }
static void p_bool(image *im) { im->buf[kv_value(im, "tokenizer.ggml.add_bos_token")] = 2; }
static void p_align48(image *im) { put32(im, kv_value(im, "general.alignment"), 48); }
static void p_align0(image *im) { put32(im, kv_value(im, "general.alignment"), 0); }
static void p_align_type(image *im) { put32(im, kv_type(im, "general.alignment"), LS_GGUF_FLOAT32); }
static void p_misaligned(image *im) {
  size_t o = ti_offset(im, "blk.0.attn_q.weight");
  uint64_t v;
  memcpy(&v, im->buf + o, 8);
  put64(im, o, v + 4);
}
static void p_past_end(image *im) { put64(im, ti_offset(im, "blk.4.ffn_down.weight"), 1ull << 40); }
static void p_past_end_max(image *im) { put64(im, ti_offset(im, "blk.4.ffn_down.weight"), UINT64_MAX - 31); }
static void p_past_end_near(image *im) {
  /* just past: the file's last bytes belong to the last tensor */
  size_t o = ti_offset(im, "blk.4.ffn_down.weight");
  uint64_t v;
  memcpy(&v, im->buf + o, 8);
  put64(im, o, v + 1024);
}
static void p_unknown_type(image *im) { put32(im, ti_type(im, "blk.2.attn_k.weight"), 99); }
static void p_removed_type(image *im) { put32(im, ti_type(im, "blk.2.attn_k.weight"), 4); }
static void p_unsupported_type(image *im) { put32(im, ti_type(im, "blk.2.attn_k.weight"), 24); /* I8 */ }
static void p_block_type(image *im) { put32(im, ti_type(im, "blk.2.attn_k.weight"), 12); /* Q4_K, 64 cols */ }
static void p_norm_q8(image *im) { put32(im, ti_type(im, "blk.1.ffn_norm.weight"), LS_Q8_0); }
static void p_dims_huge(image *im) { put64(im, ti_ne(im, "token_embd.weight", 1), 1ull << 62); }
static void p_dims_overflow(image *im) {
  put64(im, ti_ne(im, "token_embd.weight", 0), 1ull << 40);
  put64(im, ti_ne(im, "token_embd.weight", 1), 1ull << 40);
}
static void p_dims_zero(image *im) { put64(im, ti_ne(im, "token_embd.weight", 0), 0); }
static void p_ndims(image *im) { put32(im, ti_ndims(im, "token_embd.weight"), 7); }
static void p_shape(image *im) { put64(im, ti_ne(im, "blk.0.attn_q.weight", 0), 32); }
static void p_missing(image *im) { im->buf[find(im, "blk.3.ffn_up.weight") + 11] = 'q'; }
static void p_duplicate(image *im) { im->buf[find(im, "blk.3.attn_k.weight") + 11] = 'q'; }
static void p_dup_key(image *im) { im->buf[find(im, "tokenizer.ggml.eos_token_id") + 15] = 'b'; }
static void p_arch(image *im) { memcpy(im->buf + kv_value(im, "general.architecture") + 8, "gemma", 5); }
static void p_dim(image *im) { put32(im, kv_value(im, "llama.embedding_length"), 1u << 30); }
static void p_layers(image *im) { put32(im, kv_value(im, "llama.block_count"), 100000); }
static void p_heads0(image *im) { put32(im, kv_value(im, "llama.attention.head_count"), 0); }
static void p_heads_uint32_max(image *im) { put32(im, kv_value(im, "llama.attention.head_count"), UINT32_MAX); }
static void p_heads_type(image *im) { put32(im, kv_type(im, "llama.attention.head_count"), LS_GGUF_FLOAT32); }
static void p_bos(image *im) { put32(im, kv_value(im, "tokenizer.ggml.bos_token_id"), 5000); }
static void p_vocab_size(image *im) { put32(im, kv_value(im, "llama.vocab_size"), 511); }
static void p_toktype(image *im) { put32(im, kv_value(im, "tokenizer.ggml.token_type"), LS_GGUF_FLOAT32); }
static void p_no_arch(image *im) { memcpy(im->buf + find(im, "general.architecture"), "general.archive_xyz!", 20); }

START_TEST(gguf_patched) {
  bad_case(p_magic, NULL, 0);
  bad_case(p_version1, "version 1", LS_EUNSUPPORTED);
  bad_case(p_version_big_endian, "big-endian", LS_EUNSUPPORTED);
  bad_case(p_nkv, "absurd metadata count", LS_EFORMAT);
  bad_case(p_nkv_max, "absurd metadata count", LS_EFORMAT);
  bad_case(p_ntensors, "absurd tensor count", LS_EFORMAT);
  bad_case(p_key_len, "string length", LS_EFORMAT);
  bad_case(p_key_len_max, "string length", LS_EFORMAT);
  bad_case(p_str_len, "general.name", LS_EFORMAT);
  bad_case(p_arr_count, "tokenizer.ggml.tokens", LS_EFORMAT);
  bad_case(p_arr_count2, "tokenizer.ggml.scores", LS_EFORMAT);
  bad_case(p_value_type, "unknown value type 13", LS_EFORMAT);
  bad_case(p_arr_type, "unknown value type 99", LS_EFORMAT);
  bad_case(p_bool, "bool", LS_EFORMAT);
  bad_case(p_align48, "general.alignment", LS_EFORMAT);
  bad_case(p_align0, "general.alignment", LS_EFORMAT);
  bad_case(p_align_type, "general.alignment", LS_EFORMAT);
  bad_case(p_misaligned, "blk.0.attn_q.weight", LS_EFORMAT);
  bad_case(p_misaligned, "alignment", 0);
  bad_case(p_past_end, "blk.4.ffn_down.weight", LS_EFORMAT);
  bad_case(p_past_end, "past the end", 0);
  bad_case(p_past_end_max, "past the end", LS_EFORMAT);
  bad_case(p_past_end_near, "past the end", LS_EFORMAT);
  bad_case(p_unknown_type, "tensor 'blk.2.attn_k.weight' has unknown type 99", LS_EFORMAT);
  bad_case(p_removed_type, "unknown type 4", LS_EFORMAT);
  bad_case(p_unsupported_type, "blk.2.attn_k.weight has type I8 (24)", LS_EUNSUPPORTED);
  bad_case(p_block_type, "Q4_K", LS_EFORMAT);
  bad_case(p_norm_q8, "blk.1.ffn_norm.weight", 0);
  bad_case(p_dims_huge, "token_embd.weight", LS_EFORMAT);
  bad_case(p_dims_overflow, "absurd shape", LS_EFORMAT);
  bad_case(p_dims_zero, "absurd dimension", LS_EFORMAT);
  bad_case(p_ndims, "7 dimensions", LS_EFORMAT);
  bad_case(p_shape, "blk.0.attn_q.weight", LS_EMISMATCH);
  bad_case(p_missing, "missing tensor blk.3.ffn_up.weight", LS_EFORMAT);
  bad_case(p_duplicate, "duplicate tensor name 'blk.3.attn_q.weight'", LS_EFORMAT);
  bad_case(p_dup_key, "duplicate metadata key 'tokenizer.ggml.bos_token_id'", LS_EFORMAT);
  bad_case(p_arch, "architecture 'gemma'", LS_EUNSUPPORTED);
  bad_case(p_no_arch, "general.architecture", LS_EFORMAT);
  bad_case(p_dim, NULL, 0);
  bad_case(p_layers, "layer count", LS_EFORMAT);
  bad_case(p_heads0, "llama.attention.head_count", LS_EFORMAT);
  bad_case(p_heads_uint32_max, "llama.attention.head_count", LS_EFORMAT);
  bad_case(p_heads_type, "llama.attention.head_count", LS_EFORMAT);
  bad_case(p_bos, "bos_token_id", LS_EFORMAT);
  bad_case(p_vocab_size, "llama.vocab_size", LS_EMISMATCH);
  bad_case(p_toktype, "token_type", LS_EFORMAT);
}
END_TEST

/* Written with the writer: structures the patcher cannot make. */
START_TEST(gguf_written_bad) {
  ls_err err = {0};
  ls_gguf_writer *w;
  /* arrays nested deeper than the reader allows */
  const char *p = tmp("deep.gguf");
  ck_assert_int_eq(ls_gguf_writer_open(&w, p, &err), LS_OK);
  ls_strbuf b = {0};
  for (int d = 0; d < LS_GGUF_MAX_NESTING; d++) {
    ls_gguf_put_u32(&b, LS_GGUF_ARRAY);
    ls_gguf_put_u64(&b, 1);
  }
  ls_gguf_put_u32(&b, LS_GGUF_UINT8);
  ls_gguf_put_u64(&b, 0);
  ck_assert_int_eq(ls_gguf_writer_kv_raw(w, "deep", LS_GGUF_ARRAY, b.buf, b.len, &err), LS_OK);
  ls_strbuf_free(&b);
  ck_assert_int_eq(ls_gguf_writer_finish(w, &err), LS_OK);
  ls_gguf_writer_free(w);
  expect_fail(p, "nested");
  /* a GGUF without the llama keys */
  p = tmp("nokeys.gguf");
  ck_assert_int_eq(ls_gguf_writer_open(&w, p, &err), LS_OK);
  ck_assert_int_eq(ls_gguf_writer_kv_str(w, "general.architecture", "llama", &err), LS_OK);
  ck_assert_int_eq(ls_gguf_writer_finish(w, &err), LS_OK);
  ls_gguf_writer_free(w);
  expect_fail(p, "missing metadata key llama.context_length");
  /* the writer refuses what it cannot write, and leaves no file */
  p = tmp("refused.gguf");
  ck_assert_int_eq(ls_gguf_writer_open(&w, p, &err), LS_OK);
  int64_t ne[2] = {33, 2};
  ck_assert_int_ne(ls_gguf_writer_tensor(w, "x", LS_Q8_0, 2, ne, &err), LS_OK);
  ck_assert_ptr_nonnull(strstr(err.msg, p));
  ck_assert_int_ne(ls_gguf_writer_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123456789",
                                         LS_F32, 2, ne, &err), LS_OK);
  ne[0] = 32;
  ck_assert_int_eq(ls_gguf_writer_tensor(w, "x", LS_Q8_0, 2, ne, &err), LS_OK);
  ck_assert_int_ne(ls_gguf_writer_finish(w, &err), LS_OK); /* no data for x */
  ls_gguf_writer_free(w);
  ck_assert_int_ne(access(p, F_OK), 0);
  char t[1100];
  snprintf(t, sizeof t, "%s.tmp.%ld", p, (long)getpid());
  ck_assert_int_ne(access(t, F_OK), 0);
}
END_TEST

/* ---- llama2.c checkpoints ----------------------------------------------- */

static void bin_case(const int32_t h[7], const char *what) {
  char *buf;
  size_t len;
  read_all(ls_test_data(STORIES_BIN), &buf, &len);
  memcpy(buf, h, 28);
  char name[64];
  snprintf(name, sizeof name, "bad-%d.bin", n_case++);
  const char *p = tmp(name);
  ls_test_write_file(p, buf, len);
  free(buf);
  expect_fail(p, what);
}

START_TEST(bin_patched) {
  /* dim, hidden, layers, heads, kv_heads, vocab, seq_len (stories260K: 64 172 5 8 4 512 512) */
  bin_case((int32_t[7]){1 << 30, 172, 5, 8, 4, 512, 512}, "embedding length");
  bin_case((int32_t[7]){64, 172, 5, 8, 4, 1 << 30, 512}, "vocabulary size");
  bin_case((int32_t[7]){64, 172, 100000, 8, 4, 512, 512}, "layer count");
  bin_case((int32_t[7]){64, 172, -1, 8, 4, 512, 512}, "layer count");
  bin_case((int32_t[7]){64, 172, 5, 7, 4, 512, 512}, "head count");
  bin_case((int32_t[7]){64, 172, 5, 8, 3, 512, 512}, "KV head count");
  bin_case((int32_t[7]){64, 172, 5, 8, 4, 512, 0}, "context length");
  bin_case((int32_t[7]){64, 172, 50, 8, 4, 512, 512}, "truncated");     /* more layers than bytes */
  bin_case((int32_t[7]){64, 1 << 19, 5, 8, 4, 512, 512}, "truncated");  /* big FFN */
  bin_case((int32_t[7]){64, 172, 5, 8, 4, -512, 512}, "classifier");   /* separate classifier missing */
  bin_case((int32_t[7]){64, 172, 5, 8, 4, INT32_MIN, 512}, "vocabulary size"); /* -INT32_MIN overflows */
  bin_case((int32_t[7]){0x46554747, 172, 5, 8, 4, 512, 512}, NULL);     /* "GGUF" little-endian in the wrong place */
  /* wrong magic, empty file, a directory, no file */
  const char *p = tmp("garbage.bin");
  ls_test_write_file(p, "this is not a model at all, just some text\n", 43);
  expect_fail(p, NULL);
  p = tmp("empty.bin");
  ls_test_write_file(p, "", 0);
  expect_fail(p, "empty");
  expect_fail(ls_test_tmpdir(), NULL);
  expect_fail(tmp("nonexistent.gguf"), "cannot open");
}
END_TEST

int main(void) {
  Suite *s = suite_create("model_badinput");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, gguf_truncated_everywhere);
  tcase_add_test(tc, bundled_gguf_truncated);
  tcase_add_test(tc, bin_truncated_everywhere);
  tcase_add_test(tc, tokenizer_truncated_everywhere);
  tcase_add_test(tc, gguf_patched);
  tcase_add_test(tc, gguf_written_bad);
  tcase_add_test(tc, bin_patched);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
