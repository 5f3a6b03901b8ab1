/* qwen2 (Q/K/V biases, NEOX rope, tied classifier) and llama with Llama 3
 * rope scaling (rope_freqs tensor or rope.scaling.* keys, untied classifier)
 * against llama.cpp: the tiny random models in tests/data/archs and the
 * logits llama.cpp computed for them (tests/data/archs/oracle, made by
 * shared llama-logits-oracle; README.md there says how).
 *
 * Tolerance: every weight is F32 and the models are 64 wide, so the only
 * differences are float summation order and rope angle arithmetic. The
 * largest difference measured (any kernel level: ref, avx2, avx512) is
 * 2.3e-5 (qwen2) and 2.5e-5 (llama3) for logits of magnitude up to ~10; the
 * tests allow LOGIT_TOL = 1e-3 absolute (40x that). Greedy tokens must be
 * equal (llama.cpp's smallest greedy top-1 margin: 0.006 for llama3-tiny,
 * 0.038 for qwen2-tiny). rope_variants_are_sensitive shows that a wrong rope
 * variant or missing biases move the logits by more than 4, so the
 * comparison can fail. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_forward.h"
#include "ls_model.h"
#include "ls_test.h"
#include "ls_test_oracle.h"
#include "ls_tokenizer.h"
#include "ls_util.h"

#define LOGIT_TOL 1e-3f

static const char *data_path(const char *name) {
  char rel[512];
  snprintf(rel, sizeof rel, "tests/data/archs/%s", name);
  return ls_test_source(rel);
}

/* Our tokenizer gives llama.cpp's ids for the oracle's texts (BOS as the
 * vocabulary asks). */
static void check_tokens(const ls_model *m, const ls_test_oracle *o) {
  ls_tokenizer t;
  ls_err err = {0};
  int ids[256], n;
  LS_TEST_OK(ls_tokenizer_init(&t, &m->vocab, &err));
  const char *seq_text = json_string_value(json_object_get(o->root, "seq_text"));
  LS_TEST_OK(ls_tokenize(&t, seq_text, 1, ids, 256, &n, &err));
  ck_assert_int_ge(n, o->n_seq);
  for (int i = 0; i < o->n_seq; i++) ck_assert_int_eq(ids[i], o->seq[i]);
  LS_TEST_OK(ls_tokenize(&t, json_string_value(json_object_get(o->root, "prompt")), 1, ids, 256, &n, &err));
  ck_assert_int_eq(n, o->n_prompt);
  for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], o->prompt[i]);
  ls_tokenizer_free(&t);
}

/* Largest logit difference from llama.cpp over the seq run (one batch, all
 * logits) and the greedy run (prompt batch, then one token at a time); the
 * greedy tokens must be llama.cpp's. */
static double compare(const ls_model *m, const ls_test_oracle *o, int check_greedy) {
  ls_ctx *c;
  ls_err err = {0};
  ls_ctx_params cp = {.n_ctx = 256, .max_batch = 64, .n_threads = 2};
  LS_TEST_OK(ls_ctx_new(m, &cp, &c, &err));
  ck_assert_int_eq(m->cfg.vocab_size, o->n_vocab);
  int nv = o->n_vocab;
  double worst = 0;
  LS_TEST_OK(ls_forward(c, o->seq, o->n_seq, 0, NULL, 1, &err));
  for (int i = 0; i < o->n_seq; i++)
    worst = fmax(worst, ls_test_max_diff(ls_ctx_logits(c) + (size_t)i * nv, o->seq_logits + (size_t)i * nv, nv));
  LS_TEST_OK(ls_forward(c, o->prompt, o->n_prompt, 0, NULL, 0, &err));
  int pos = o->n_prompt;
  for (int i = 0; i < o->n_greedy; i++) {
    const float *l = ls_ctx_logits(c);
    worst = fmax(worst, ls_test_max_diff(l, o->greedy_logits + (size_t)i * nv, nv));
    int next = ls_argmax(l, nv);
    if (check_greedy) ck_assert_msg(next == o->greedy[i], "greedy token %d: %d, llama.cpp %d", i, next, o->greedy[i]);
    LS_TEST_OK(ls_forward(c, &o->greedy[i], 1, pos++, NULL, 0, &err));
  }
  ls_ctx_free(c);
  return worst;
}

static void check_model(const char *file, const char *oracle_name, int arch) {
  ls_model m;
  ls_err err = {0};
  ls_test_oracle o;
  LS_TEST_OK(ls_model_load(&m, data_path(file), NULL, &err));
  ck_assert_int_eq(m.cfg.arch, arch);
  ls_test_oracle_load(&o, data_path("oracle"), oracle_name);
  ck_assert_ptr_nonnull(o.greedy_logits);
  check_tokens(&m, &o);
  double d = compare(&m, &o, 1);
  ck_assert_msg(d <= LOGIT_TOL, "%s: logits differ from llama.cpp's by %g", file, d);
  ls_test_oracle_free(&o);
  ls_model_free(&m);
}

START_TEST(qwen2_matches_llama_cpp) {
  check_model("qwen2-tiny.gguf", "qwen2-tiny", LS_ARCH_QWEN2);
  ls_model m;
  ls_err err = {0};
  LS_TEST_OK(ls_model_load(&m, data_path("qwen2-tiny.gguf"), NULL, &err));
  ck_assert_ptr_nonnull(m.layers[0].bq);
  ck_assert_int_eq(m.tied_output, 1);
  ck_assert_int_eq(m.vocab.add_bos, 0);
  ls_model_free(&m);
}
END_TEST

START_TEST(llama3_rope_matches_llama_cpp) {
  check_model("llama3-tiny.gguf", "llama3-tiny", LS_ARCH_LLAMA);
  /* the rope.scaling.* keys give the same divisors as the tensor */
  check_model("llama3-keys-tiny.gguf", "llama3-tiny", LS_ARCH_LLAMA);
  ls_model a, b;
  ls_err err = {0};
  LS_TEST_OK(ls_model_load(&a, data_path("llama3-tiny.gguf"), NULL, &err));
  LS_TEST_OK(ls_model_load(&b, data_path("llama3-keys-tiny.gguf"), NULL, &err));
  ck_assert_ptr_nonnull(a.rope_freqs);
  ck_assert_ptr_nonnull(b.rope_freqs);
  ck_assert_int_eq(a.tied_output, 0);
  for (int i = 0; i < a.cfg.rope_dim / 2; i++) ck_assert_float_eq_tol(a.rope_freqs[i], b.rope_freqs[i], 1e-6f);
  ck_assert_float_eq(a.rope_freqs[0], 1.0f);                    /* short wavelengths kept */
  ck_assert_float_eq(a.rope_freqs[a.cfg.rope_dim / 2 - 1], 8.0f); /* long ones slowed by factor */
  ls_model_free(&a);
  ls_model_free(&b);
}
END_TEST

/* Without the rope variant the logits leave the tolerance: the comparison
 * above would catch a wrong rope. */
START_TEST(rope_variants_are_sensitive) {
  ls_model m;
  ls_err err = {0};
  ls_test_oracle o;
  LS_TEST_OK(ls_model_load(&m, data_path("llama3-tiny.gguf"), NULL, &err));
  ls_test_oracle_load(&o, data_path("oracle"), "llama3-tiny");
  m.rope_freqs = NULL;
  ck_assert_double_gt(compare(&m, &o, 0), 10 * LOGIT_TOL);
  ls_test_oracle_free(&o);
  ls_model_free(&m);
  LS_TEST_OK(ls_model_load(&m, data_path("qwen2-tiny.gguf"), NULL, &err));
  ls_test_oracle_load(&o, data_path("oracle"), "qwen2-tiny");
  m.cfg.rope_neox = 0;
  ck_assert_double_gt(compare(&m, &o, 0), 10 * LOGIT_TOL);
  m.cfg.rope_neox = 1;
  m.layers[1].bk = NULL; /* biases matter too (all three are applied together) */
  m.layers[1].bq = NULL;
  ck_assert_double_gt(compare(&m, &o, 0), 10 * LOGIT_TOL);
  ls_test_oracle_free(&o);
  ls_model_free(&m);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("archs");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, qwen2_matches_llama_cpp);
  tcase_add_test(tc, llama3_rope_matches_llama_cpp);
  tcase_add_test(tc, rope_variants_are_sensitive);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ls_test_run(suite()); }
