/* The tokenizer's O(n log n) merge against the quadratic rescan it replaced
 * (kept here as the reference, written from llama2.c's rule): identical tokens
 * on the three bundled vocabularies (stories260K's tok512, Llama-2's 32000,
 * the tiny random GGUF's) and on a synthetic vocabulary made of ties, over
 * fixed edge cases, random strings (ASCII, UTF-8, invalid bytes, repeats) and
 * long slices of the bundled corpus; plus the early refusal of a prompt that
 * cannot fit, and an empty text without BOS. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_model.h"
#include "ls_test.h"
#include "ls_tokenizer.h"
#include "ls_util.h"

/* ---- the reference: llama2.c's quadratic merge ------------------------------ */

/* Code points (at most 4 bytes: a lead byte and its continuation bytes) as
 * tokens, or their bytes as <0xNN> tokens (unknown token without one). */
static int ref_initial(const ls_tokenizer *t, const char *text, int *ids) {
  const unsigned char *s = (const unsigned char *)text;
  char cp[8];
  int n = 0;
  while (*s) {
    size_t len = 1;
    while (len < 4 && (s[len] & 0xC0) == 0x80) len++;
    memcpy(cp, s, len);
    cp[len] = '\0';
    int id = ls_token_lookup(t, cp);
    if (id >= 0) ids[n++] = id;
    else
      for (size_t i = 0; i < len; i++) ids[n++] = t->byte_id[s[i]] >= 0 ? t->byte_id[s[i]] : t->vocab->unk_id;
    s += len;
  }
  return n;
}

/* Rescans all pairs and merges the best (first among equals) until none merges. */
static int ref_merge(const ls_tokenizer *t, int *ids, int n) {
  const ls_vocab *v = t->vocab;
  char *buf = malloc(2 * (size_t)v->max_token_len + 2 * 64 + 8);
  for (;;) {
    float best_score = -1e30f;
    int best_id = -1, best_idx = -1;
    for (int i = 0; i + 1 < n; i++) {
      sprintf(buf, "%s%s", v->tokens[ids[i]], v->tokens[ids[i + 1]]);
      int id = ls_token_lookup(t, buf);
      if (id >= 0 && v->scores[id] > best_score) {
        best_score = v->scores[id];
        best_id = id;
        best_idx = i;
      }
    }
    if (best_idx < 0) break;
    ids[best_idx] = best_id;
    memmove(&ids[best_idx + 1], &ids[best_idx + 2], (size_t)(n - best_idx - 2) * sizeof *ids);
    n--;
  }
  free(buf);
  return n;
}

/* Reference tokens of text (BOS and space prefix as ls_tokenize); returns the count. */
static int ref_tokenize(const ls_tokenizer *t, const char *text, int add_bos, int *ids) {
  const ls_vocab *v = t->vocab;
  int n = 0;
  if (add_bos && v->add_bos && v->bos_id >= 0) ids[n++] = v->bos_id;
  int first = n;
  if (text[0] && v->add_space_prefix && ls_token_lookup(t, " ") >= 0) ids[n++] = ls_token_lookup(t, " ");
  n += ref_initial(t, text, ids + n);
  return first + ref_merge(t, ids + first, n - first);
}

/* ---- comparing --------------------------------------------------------------- */

static int compared, compared_tokens;

static void expect_same(ls_tokenizer *t, const char *text, int add_bos) {
  size_t cap = strlen(text) + 8;
  int *want = malloc(cap * sizeof *want), *got = malloc(cap * sizeof *got);
  ck_assert(want && got);
  int n_want = ref_tokenize(t, text, add_bos, want), n_got = -1;
  ls_err err = {0};
  ck_assert_msg(ls_tokenize(t, text, add_bos, got, (int)cap, &n_got, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(n_got == n_want, "%d tokens instead of %d for \"%.60s\" (%zu bytes)", n_got, n_want, text,
                strlen(text));
  for (int i = 0; i < n_want; i++)
    ck_assert_msg(got[i] == want[i], "token %d is %d instead of %d for \"%.60s\"", i, got[i], want[i], text);
  compared++;
  compared_tokens += n_want;
  free(want);
  free(got);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (unsigned)(rng % n);
}

/* A random string of up to max_len bytes mixing words, punctuation, spaces,
 * multi-byte UTF-8, stray bytes (invalid UTF-8) and runs of one character. */
static void random_text(char *out, size_t max_len) {
  static const char *const parts[] = {
      "the", " the", "a", " a", "an", "and", " once", "upon", " time", "Lily", " Tom", "play", "ing", "ed", "s",
      ".", ",", "!", "?", "\"", "'", " ", "  ", "\n", "\t", "0", "42", "caf\xc3\xa9", " \xe2\x82\xac",
      "\xf0\x9f\x98\x80", "\xe4\xb8\xad\xe6\x96\x87", "\xc3", "\x80\x80", "\xff", "\x01", "<0x41>", "<unk>", "aaaa",
      "abab", "ll", "ee"};
  size_t n = 0, target = rnd((unsigned)max_len + 1);
  while (n < target) {
    const char *p = parts[rnd(sizeof parts / sizeof parts[0])];
    char run[16];
    if (rnd(8) == 0) { /* a run of one random byte */
      size_t k = 1 + rnd(12);
      memset(run, 1 + (int)rnd(255), k);
      run[k] = '\0';
      p = run;
    }
    size_t k = strlen(p);
    if (n + k > max_len) break;
    memcpy(out + n, p, k);
    n += k;
  }
  out[n] = '\0';
}

static void compare_many(ls_tokenizer *t, const char *corpus, size_t corpus_len, int n_random, int n_slices,
                         size_t slice) {
  static const char *const fixed[] = {"", " ", "a", "  ", "\n\n", "Once upon a time, there was a little girl.",
                                      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 \x01",
                                      "\xff\xfe\x80\x80\x80\x80\x80", "\xc3", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                      "ababababababababababababab", "the the the the the the the the"};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    expect_same(t, fixed[i], 1);
    expect_same(t, fixed[i], 0);
  }
  char buf[512];
  for (int i = 0; i < n_random; i++) {
    random_text(buf, sizeof buf - 1);
    expect_same(t, buf, (int)rnd(2));
  }
  /* long slices of real text: where the merge order matters most */
  char *s = malloc(slice + 1);
  for (int k = 0; k < n_slices; k++) {
    size_t at = rnd((unsigned)(corpus_len - slice));
    memcpy(s, corpus + at, slice);
    s[slice] = '\0';
    expect_same(t, s, 1);
  }
  free(s);
  fprintf(stderr, "%d texts, %d tokens identical to the reference (cpu %.1f s)\n", compared, compared_tokens, (double)clock() / CLOCKS_PER_SEC);
}

static char *corpus(size_t *len) {
  char *text = NULL;
  ls_err err = {0};
  ck_assert_msg(ls_read_file(ls_test_data("corpora/tinystories_val_subset.txt"), &text, len, &err) == LS_OK, "%s",
                err.msg);
  return text;
}

/* A tokenizer.bin vocabulary of n tokens and its tokenizer. */
static void open_bin(const char *rel, int n, ls_vocab *v, ls_tokenizer *t) {
  ls_err err = {0};
  memset(v, 0, sizeof *v);
  ck_assert_msg(ls_vocab_load_tokenizer_bin(v, ls_test_data(rel), n, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_tokenizer_init(t, v, &err) == LS_OK, "%s", err.msg);
}

static void close_bin(ls_vocab *v, ls_tokenizer *t) {
  ls_tokenizer_free(t);
  ls_vocab_free(v);
}

START_TEST(same_tokens_tok512) {
  ls_vocab v;
  ls_tokenizer t;
  open_bin("models/stories260K/tok512.bin", 512, &v, &t);
  size_t len;
  char *text = corpus(&len);
  compare_many(&t, text, len, 300, 3, 2000);
  free(text);
  close_bin(&v, &t);
}
END_TEST

START_TEST(same_tokens_llama2) {
  ls_vocab v;
  ls_tokenizer t;
  open_bin("models/llama2-tokenizer/tokenizer.bin", 32000, &v, &t);
  size_t len;
  char *text = corpus(&len);
  compare_many(&t, text, len, 150, 2, 1500);
  free(text);
  close_bin(&v, &t);
}
END_TEST

START_TEST(same_tokens_gguf_vocab) {
  ls_model m;
  memset(&m, 0, sizeof m);
  ls_err err = {0};
  ck_assert_msg(ls_model_load(&m, ls_test_data("models/tiny-random-gguf/llama-2-tiny-random.gguf"), NULL, &err) ==
                    LS_OK, "%s", err.msg);
  ls_tokenizer t;
  ck_assert_int_eq(ls_tokenizer_init(&t, &m.vocab, &err), LS_OK);
  size_t len;
  char *text = corpus(&len);
  compare_many(&t, text, len, 50, 1, 1000);
  free(text);
  ls_tokenizer_free(&t);
  ls_model_free(&m);
}
END_TEST

/* A vocabulary over {a, b, ' '} whose scores are drawn from three values (so
 * most choices are ties), with a few at or below the -1e30 threshold, -inf and
 * NaN (never merged): the order of merges and the tie rule decide everything. */
START_TEST(same_tokens_on_ties) {
  for (int trial = 0; trial < 10; trial++) {
    ls_vocab v = {0};
    int cap = 200;
    v.tokens = calloc((size_t)cap, sizeof *v.tokens);
    v.scores = calloc((size_t)cap, sizeof *v.scores);
    v.types = calloc((size_t)cap, sizeof *v.types);
    v.tokens[v.n_tokens++] = strdup("<unk>");
    v.tokens[v.n_tokens++] = strdup("<s>");
    v.bos_id = 1, v.eos_id = -1, v.unk_id = 0, v.add_bos = 1, v.add_space_prefix = trial % 2;
    /* every string over the alphabet up to length 4, each kept with probability 3/4 (singles always) */
    const char alpha[3] = {'a', 'b', ' '};
    for (int len = 1; len <= 4; len++) {
      int count = 1;
      for (int k = 0; k < len; k++) count *= 3;
      for (int c = 0; c < count && v.n_tokens < cap; c++) {
        if (len > 1 && rnd(4) == 0) continue;
        char s[8];
        for (int k = 0, x = c; k < len; k++, x /= 3) s[k] = alpha[x % 3];
        s[len] = '\0';
        static const float values[] = {-1.0f, -2.0f, -3.0f, -1e30f, -2e30f, -INFINITY, NAN, 0.0f, -0.0f};
        v.scores[v.n_tokens] = values[rnd(len > 1 ? 9 : 3)];
        v.tokens[v.n_tokens++] = strdup(s);
        if (len > v.max_token_len) v.max_token_len = len;
      }
    }
    ls_tokenizer t;
    ls_err err = {0};
    ck_assert_int_eq(ls_tokenizer_init(&t, &v, &err), LS_OK);
    char buf[300];
    for (int i = 0; i < 120; i++) {
      size_t n = rnd(sizeof buf);
      for (size_t k = 0; k < n; k++) buf[k] = rnd(7) == 0 ? 'c' : alpha[rnd(3)]; /* 'c' falls back to <unk> */
      buf[n] = '\0';
      expect_same(&t, buf, 1);
    }
    ls_tokenizer_free(&t);
    ls_vocab_free(&v);
  }
}
END_TEST

/* A prompt longer than max_tokens times the longest token is refused before
 * any work; a shorter one that still needs too many tokens after merging is
 * refused too; one that fits is accepted at exactly its size. */
START_TEST(length_refused_early) {
  ls_vocab v;
  ls_tokenizer t;
  ls_err err = {0};
  open_bin("models/stories260K/tok512.bin", 512, &v, &t);
  ck_assert_int_gt(t.max_token_bytes, 0);
  size_t big = 1u << 19; /* within LS_TOKENIZE_MAX_BYTES */
  char *text = malloc(big + 1);
  memset(text, 'a', big);
  text[big] = '\0';
  int toks[512], n = -1;
  ck_assert_int_eq(ls_tokenize(&t, text, 1, toks, 512, &n, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "prompt of 524289 bytes needs at least") != NULL, "%s", err.msg);
  ck_assert_ptr_nonnull(strstr(err.msg, "at most 512 fit"));
  ck_assert_int_eq(n, -1);
  /* short enough for the bound, too many tokens after merging */
  text[600] = '\0';
  memset(text, '\x01', 600); /* byte tokens, no merges */
  ck_assert_int_eq(ls_tokenize(&t, text, 1, toks, 512, &n, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "prompt needs 602 tokens but at most 512 fit"));
  text[510] = '\0';
  ck_assert_int_eq(ls_tokenize(&t, text, 1, toks, 512, &n, &err), LS_OK);
  ck_assert_int_eq(n, 512);
  free(text);
  close_bin(&v, &t);
}
END_TEST

/* Empty text without BOS: no tokens, nothing read or written (UBSan caught
 * NULL + 0 and a memcpy from NULL here). */
START_TEST(empty_without_bos) {
  ls_vocab v;
  ls_tokenizer t;
  ls_err err = {0};
  open_bin("models/stories260K/tok512.bin", 512, &v, &t);
  int toks[4] = {7, 7, 7, 7}, n = -1;
  ck_assert_int_eq(ls_tokenize(&t, "", 0, toks, 4, &n, &err), LS_OK);
  ck_assert_int_eq(n, 0);
  ck_assert_int_eq(toks[0], 7);
  ck_assert_int_eq(ls_tokenize(&t, "", 0, NULL, 0, &n, &err), LS_OK);
  ck_assert_int_eq(n, 0);
  close_bin(&v, &t);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("tokenizer");
  TCase *tc = tcase_create("tokenizer");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, empty_without_bos);
  tcase_add_test(tc, length_refused_early);
  tcase_add_test(tc, same_tokens_on_ties);
  tcase_add_test(tc, same_tokens_tok512);
  tcase_add_test(tc, same_tokens_llama2);
  tcase_add_test(tc, same_tokens_gguf_vocab);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ls_test_run(suite()); }
