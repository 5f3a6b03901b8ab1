/* Byte-level BPE tokenizer against llama.cpp: for each vocab file in
 * tests/data/tokenizer, our ids equal the ids llama.cpp's llama-tokenize gave
 * for every fixture string (NAME.expected, made by make_expected.py), and
 * decoding gives the text back. Plus the refusals: unsupported tokenizer,
 * pre-tokenizer and architecture, over-long text, too small an output. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "ls_model.h"
#include "ls_test.h"
#include "ls_tokenizer.h"
#include "ls_util.h"

static const char *fixture(const char *name) {
  char rel[512];
  snprintf(rel, sizeof rel, "tests/data/tokenizer/%s", name);
  return ls_test_source(rel);
}

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* One NAME.expected line: INPUT_HEX \t ADD_SPECIAL \t ids. */
typedef struct fixture_case {
  char text[4096];
  int add_special;
  int ids[1024];
  int n_ids;
} fixture_case;

static int parse_case(char *line, fixture_case *c) {
  char *hex = strtok(line, "\t"), *add = strtok(NULL, "\t"), *ids = strtok(NULL, "\n");
  if (!hex || !add) return 0;
  size_t n = strlen(hex) / 2;
  if (n >= sizeof c->text) return 0;
  for (size_t i = 0; i < n; i++) c->text[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
  c->text[n] = '\0';
  c->add_special = atoi(add);
  c->n_ids = 0;
  for (char *t = ids ? strtok(ids, " ") : NULL; t && c->n_ids < 1024; t = strtok(NULL, " ")) c->ids[c->n_ids++] = atoi(t);
  return 1;
}

/* What decoding must give: the text with each byte that does not start a
 * complete UTF-8 sequence replaced by U+FFFD (the fixtures' invalid strings
 * use only such bytes: no overlong forms or surrogates). */
static void expect_decoded(const char *in, char *out) {
  const unsigned char *s = (const unsigned char *)in;
  size_t n = strlen(in), i = 0, o = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    int ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xC0) == 0x80;
    if (ok) {
      memcpy(out + o, s + i, len);
      o += len;
      i += len;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  out[o] = '\0';
}

static void check_vocab(const char *name) {
  char file[256], expected[256];
  snprintf(file, sizeof file, "ggml-vocab-%s.gguf", name);
  snprintf(expected, sizeof expected, "%s.expected", name);
  ls_vocab v;
  ls_tokenizer t;
  ls_err err = {0};
  LS_TEST_OK(ls_vocab_load_gguf(&v, fixture(file), &err));
  ck_assert_int_eq(v.kind, LS_VOCAB_BPE);
  LS_TEST_OK(ls_tokenizer_init(&t, &v, &err));
  FILE *f = fopen(fixture(expected), "r");
  ck_assert_msg(f != NULL, "cannot open %s", fixture(expected));
  static char line[16384];
  static fixture_case c;
  static char decoded[16384], want[16384];
  int ids[1024], n, cases = 0, round_trips = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    ck_assert_msg(parse_case(line, &c), "%s: bad line", expected);
    LS_TEST_OK(ls_tokenize(&t, c.text, c.add_special, ids, 1024, &n, &err));
    int same = n == c.n_ids && !memcmp(ids, c.ids, (size_t)n * sizeof *ids);
    if (!same) {
      int k = 0;
      while (k < n && k < c.n_ids && ids[k] == c.ids[k]) k++;
      ck_abort_msg("%s: '%s' (add_special %d): %d ids, llama.cpp %d; first difference at %d: %d vs %d", name, c.text,
                   c.add_special, n, c.n_ids, k, k < n ? ids[k] : -1, k < c.n_ids ? c.ids[k] : -1);
    }
    cases++;
    /* decoding: special-token text decodes to "" for control tokens, so only
     * texts without '<' are compared */
    if (!c.add_special && !strchr(c.text, '<')) {
      size_t at = 0;
      for (int i = 0; i < n; i++) {
        const char *p = ls_token_piece(&t, i ? ids[i - 1] : -1, ids[i]);
        size_t pl = strlen(p);
        ck_assert(at + pl < sizeof decoded);
        memcpy(decoded + at, p, pl);
        at += pl;
      }
      decoded[at] = '\0';
      expect_decoded(c.text, want);
      ck_assert_msg(!strcmp(decoded, want), "%s: '%s' decodes to '%s'", name, c.text, decoded);
      round_trips++;
    }
  }
  fclose(f);
  ck_assert_int_gt(cases, 150);
  ck_assert_int_gt(round_trips, 50);
  ls_tokenizer_free(&t);
  ls_vocab_free(&v);
}

START_TEST(llama_bpe_matches_llama_cpp) { check_vocab("llama-bpe"); }
END_TEST
START_TEST(qwen2_matches_llama_cpp) { check_vocab("qwen2"); }
END_TEST
START_TEST(gpt2_matches_llama_cpp) { check_vocab("gpt-2"); }
END_TEST
START_TEST(smollm_matches_llama_cpp) { check_vocab("smollm"); }
END_TEST
START_TEST(default_matches_llama_cpp) { check_vocab("default"); }
END_TEST

/* The vocabulary's flags as llama.cpp reads them. */
START_TEST(special_ids_and_flags) {
  ls_vocab v;
  ls_err err = {0};
  LS_TEST_OK(ls_vocab_load_gguf(&v, fixture("ggml-vocab-llama-bpe.gguf"), &err));
  ck_assert_int_eq(v.pre, LS_PRE_LLAMA3);
  ck_assert_str_eq(v.pre_name, "llama-bpe");
  ck_assert_int_eq(v.bos_id, 128000);
  ck_assert_int_eq(v.eos_id, 128001);
  ck_assert_int_eq(v.add_bos, 1);
  ck_assert_int_eq(v.add_eos, 0);
  ck_assert_str_eq(v.tokens[v.eot_id], "<|eot_id|>");
  ck_assert_int_eq(v.n_merges, 280147);
  ls_vocab_free(&v);
  LS_TEST_OK(ls_vocab_load_gguf(&v, fixture("ggml-vocab-qwen2.gguf"), &err));
  ck_assert_int_eq(v.pre, LS_PRE_QWEN2);
  ck_assert_int_eq(v.add_bos, 0); /* qwen2 adds no BOS */
  ck_assert_str_eq(v.tokens[v.eot_id], "<|im_end|>");
  ls_vocab_free(&v);
}
END_TEST

static void write_vocab(const char *path, const char *model, const char *pre) {
  ls_gguf_writer *w;
  ls_err err = {0};
  const char *tokens[] = {"a", "b", "ab"};
  const char *merges[] = {"a b"};
  LS_TEST_OK(ls_gguf_writer_open(&w, path, &err));
  LS_TEST_OK(ls_gguf_writer_kv_str(w, "tokenizer.ggml.model", model, &err));
  if (pre) LS_TEST_OK(ls_gguf_writer_kv_str(w, "tokenizer.ggml.pre", pre, &err));
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "tokenizer.ggml.tokens", LS_GGUF_STRING, 3, tokens, &err));
  LS_TEST_OK(ls_gguf_writer_kv_array(w, "tokenizer.ggml.merges", LS_GGUF_STRING, 1, merges, &err));
  LS_TEST_OK(ls_gguf_writer_finish(w, &err));
  ls_gguf_writer_free(w);
}

START_TEST(refuses_unsupported_tokenizers) {
  const char *dir = ls_test_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/vocab.gguf", dir);
  ls_vocab v;
  ls_err err = {0};
  write_vocab(path, "gpt2", "tekken");
  ck_assert_int_eq(ls_vocab_load_gguf(&v, path, &err), LS_EUNSUPPORTED);
  ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "tokenizer.ggml.pre 'tekken' is not supported"), "%s", err.msg);
  write_vocab(path, "t5", NULL);
  ck_assert_int_eq(ls_vocab_load_gguf(&v, path, &err), LS_EUNSUPPORTED);
  ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "tokenizer.ggml.model 't5' is not supported"), "%s", err.msg);
  /* a minimal supported one: no pre-tokenizer key means "default" */
  write_vocab(path, "gpt2", NULL);
  LS_TEST_OK(ls_vocab_load_gguf(&v, path, &err));
  ck_assert_int_eq(v.pre, LS_PRE_DEFAULT);
  ls_tokenizer t;
  int ids[8], n;
  LS_TEST_OK(ls_tokenizer_init(&t, &v, &err));
  LS_TEST_OK(ls_tokenize(&t, "abba", 0, ids, 8, &n, &err));
  ck_assert_int_eq(n, 3); /* ab, b, a */
  ck_assert_int_eq(ids[0], 2);
  ck_assert_int_eq(ids[1], 1);
  ck_assert_int_eq(ids[2], 0);
  ls_tokenizer_free(&t);
  ls_vocab_free(&v);
  unlink(path);
  rmdir(dir);
}
END_TEST

START_TEST(refuses_unsupported_architecture) {
  ls_model m;
  ls_err err = {0};
  const char *path = fixture("ggml-vocab-gpt-2.gguf");
  ck_assert_int_eq(ls_model_load(&m, path, NULL, &err), LS_EUNSUPPORTED);
  ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "architecture 'gpt2' is not supported (llama, qwen2)"), "%s",
                err.msg);
}
END_TEST

START_TEST(refuses_long_text_and_small_output) {
  ls_vocab v;
  ls_tokenizer t;
  ls_err err = {0};
  LS_TEST_OK(ls_vocab_load_gguf(&v, fixture("ggml-vocab-qwen2.gguf"), &err));
  LS_TEST_OK(ls_tokenizer_init(&t, &v, &err));
  size_t n = (size_t)LS_TOKENIZE_MAX_BYTES + 1;
  char *text = malloc(n + 1);
  ck_assert_ptr_nonnull(text);
  memset(text, 'a', n);
  text[n] = '\0';
  int ids[4], got;
  ck_assert_int_eq(ls_tokenize(&t, text, 0, ids, 4, &got, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "longer than the tokenizer's limit"), "%s", err.msg);
  ck_assert_int_eq(ls_tokenize(&t, "one two three four five", 0, ids, 4, &got, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "needs 5 tokens but at most 4 fit"), "%s", err.msg);
  free(text);
  ls_tokenizer_free(&t);
  ls_vocab_free(&v);
}
END_TEST

/* One long word (a single pre-tokenizer piece of 200k letters) merges in
 * O(n log n) and decodes back to itself. */
START_TEST(long_word_round_trips) {
  ls_vocab v;
  ls_tokenizer t;
  ls_err err = {0};
  LS_TEST_OK(ls_vocab_load_gguf(&v, fixture("ggml-vocab-llama-bpe.gguf"), &err));
  LS_TEST_OK(ls_tokenizer_init(&t, &v, &err));
  size_t n = 200000;
  char *text = malloc(n + 1), *back = malloc(n + 1);
  int *ids = malloc(n * sizeof *ids), got;
  ck_assert(text && back && ids);
  for (size_t i = 0; i < n; i++) text[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
  text[n] = '\0';
  LS_TEST_OK(ls_tokenize(&t, text, 0, ids, (int)n, &got, &err));
  ck_assert_int_gt(got, 1000);
  size_t at = 0;
  for (int i = 0; i < got; i++) {
    const char *p = ls_token_piece(&t, -1, ids[i]);
    size_t pl = strlen(p);
    ck_assert(at + pl <= n);
    memcpy(back + at, p, pl);
    at += pl;
  }
  back[at] = '\0';
  ck_assert(!strcmp(back, text));
  free(text);
  free(back);
  free(ids);
  ls_tokenizer_free(&t);
  ls_vocab_free(&v);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("bpe");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, llama_bpe_matches_llama_cpp);
  tcase_add_test(tc, qwen2_matches_llama_cpp);
  tcase_add_test(tc, gpt2_matches_llama_cpp);
  tcase_add_test(tc, smollm_matches_llama_cpp);
  tcase_add_test(tc, default_matches_llama_cpp);
  tcase_add_test(tc, special_ids_and_flags);
  tcase_add_test(tc, refuses_unsupported_tokenizers);
  tcase_add_test(tc, refuses_unsupported_architecture);
  tcase_add_test(tc, refuses_long_text_and_small_output);
  tcase_add_test(tc, long_word_round_trips);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ls_test_run(suite()); }
