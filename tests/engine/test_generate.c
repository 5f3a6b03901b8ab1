/* Tokenizer, sampler and generation on the bundled stories260K model. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "ls_engine.h"
#include "ls_test.h"
#include "ls_util.h"

/* The engine holds pointers into itself: open it in place, never copy it. */
static void open_stories(ls_engine *e, int threads) {
  ls_err err = {0};
  ls_engine_params p = {.model_path = ls_test_data("models/stories260K/stories260K.bin"),
                        .tokenizer_path = ls_test_data("models/stories260K/tok512.bin"),
                        .n_threads = threads, .top_p = 1.0f, .need_tokenizer = 1};
  int rc = ls_engine_open(e, &p, &err);
  ck_assert_msg(rc == LS_OK, "open: %s", err.msg);
}

static char *expected_greedy(void) {
  char *text = NULL;
  size_t len = 0;
  ls_err err = {0};
  ck_assert_int_eq(ls_read_file(ls_test_data("models/stories260K/expected-greedy-empty-n200.txt"), &text, &len, &err), 0);
  /* llama2.c prints a newline after the text */
  ck_assert(len > 0 && text[len - 1] == '\n');
  text[len - 1] = '\0';
  return text;
}

START_TEST(golden_greedy_empty_prompt) {
  ls_engine e;
  open_stories(&e, 1);
  ls_err err = {0};
  /* -n 200 counts positions from BOS: BOS + 199 more positions are fed, 200 tokens come out */
  ls_gen_request req = {.prompt = "", .max_new_tokens = 200};
  ls_gen_output out;
  ck_assert_msg(ls_engine_generate(&e, &req, &out, &err) == LS_OK, "%s", err.msg);
  char *want = expected_greedy();
  ck_assert_int_eq(out.n_prompt, 1);
  ck_assert_str_eq(out.text, want);
  ck_assert_int_eq(out.stop, LS_STOP_MAX_TOKENS);
  for (int i = 0; i < out.n_generated; i++) ck_assert(out.confidence[i] > 0.0f && out.confidence[i] <= 1.0f);
  free(want);
  ls_engine_close(&e);
}
END_TEST

START_TEST(greedy_same_for_1_2_3_threads) {
  char *texts[3];
  for (int t = 1; t <= 3; t++) {
    ls_engine e;
  open_stories(&e, t);
    ls_err err = {0};
    ls_gen_request req = {.prompt = "Lily went to the park", .max_new_tokens = 120};
    ls_gen_output out;
    ck_assert_msg(ls_engine_generate(&e, &req, &out, &err) == LS_OK, "%s", err.msg);
    texts[t - 1] = strdup(out.text);
    ls_engine_close(&e);
  }
  ck_assert_str_eq(texts[0], texts[1]);
  ck_assert_str_eq(texts[0], texts[2]);
  for (int i = 0; i < 3; i++) free(texts[i]);
}
END_TEST

static void round_trip(ls_tokenizer *tok, const char *text) {
  int toks[4096], n = 0;
  ls_err err = {0};
  ck_assert_msg(ls_tokenize(tok, text, 1, toks, 4096, &n, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_ge(n, 1);
  ck_assert_int_eq(toks[0], tok->vocab->bos_id);
  char buf[8192] = "";
  size_t len = 0;
  for (int i = 1; i < n; i++) {
    const char *piece = ls_token_piece(tok, toks[i - 1], toks[i]);
    size_t pl = strlen(piece);
    ck_assert(len + pl < sizeof buf);
    memcpy(buf + len, piece, pl);
    len += pl;
  }
  buf[len] = '\0';
  ck_assert_str_eq(buf, text);
}

START_TEST(tokenizer_round_trips_tok512) {
  ls_engine e;
  open_stories(&e, 1);
  round_trip(&e.tok, "");
  round_trip(&e.tok, "Once upon a time, there was a little girl named Lily.");
  round_trip(&e.tok, "Tabs\tand\nnewlines, \"quotes\" & symbols: {}[]~^`|");
  round_trip(&e.tok, "bytes \x01\x7f and UTF-8: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87");
  /* a few merges happen: far fewer tokens than bytes for plain English */
  int toks[256], n = 0;
  ls_err err = {0};
  ck_assert_int_eq(ls_tokenize(&e.tok, "Once upon a time there was a girl", 1, toks, 256, &n, &err), 0);
  ck_assert_int_lt(n, 20);
  /* an empty prompt is BOS alone */
  ck_assert_int_eq(ls_tokenize(&e.tok, "", 1, toks, 256, &n, &err), 0);
  ck_assert_int_eq(n, 1);
  /* too many tokens for the buffer is an error, not an overflow */
  ck_assert_int_eq(ls_tokenize(&e.tok, "Once upon a time there was a girl", 1, toks, 3, &n, &err), LS_EINVAL);
  ls_engine_close(&e);
}
END_TEST

START_TEST(tokenizer_round_trips_llama2_vocab) {
  ls_model m = {0};
  ls_err err = {0};
  /* the 32000-token Llama-2 vocabulary, loaded as if for a model of that vocab size */
  ck_assert_int_eq(ls_vocab_load_tokenizer_bin(&m.vocab, ls_test_data("models/llama2-tokenizer/tokenizer.bin"), 32000, &err), 0);
  ls_tokenizer t;
  ck_assert_int_eq(ls_tokenizer_init(&t, &m.vocab, &err), 0);
  round_trip(&t, "The quick brown fox jumps over the lazy dog.");
  round_trip(&t, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 \x01");
  round_trip(&t, "");
  int toks[64], n = 0;
  ck_assert_int_eq(ls_tokenize(&t, "Hello world", 1, toks, 64, &n, &err), 0);
  /* SentencePiece Llama-2: BOS, "▁Hello" (15043), "▁world" (3186) */
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(toks[1], 15043);
  ck_assert_int_eq(toks[2], 3186);
  ls_tokenizer_free(&t);
  ls_vocab_free(&m.vocab);
}
END_TEST

START_TEST(sampler_confidence_and_seed) {
  float logits[5] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  float conf;
  /* first index wins ties; confidence is the max softmax probability */
  ck_assert_int_eq(ls_argmax_confidence(logits, 5, &conf), 1);
  double z = exp(1 - 3.0) + 1 + exp(2 - 3.0) + 1 + exp(-1 - 3.0);
  ck_assert(fabs(conf - 1.0 / z) < 1e-6);
  ls_sampler a, b;
  ls_err err = {0};
  ck_assert_int_eq(ls_sampler_init(&a, 5, 1.0f, 0.9f, 7, &err), 0);
  ck_assert_int_eq(ls_sampler_init(&b, 5, 1.0f, 0.9f, 7, &err), 0);
  int seen[5] = {0};
  for (int i = 0; i < 200; i++) {
    int x = ls_sample(&a, logits, NULL), y = ls_sample(&b, logits, NULL);
    ck_assert_int_eq(x, y); /* same seed, same stream */
    seen[x]++;
  }
  ck_assert_int_eq(seen[4], 0); /* outside the top-p nucleus */
  ck_assert(seen[1] > 0 && seen[3] > 0);
  ls_sampler_free(&a);
  ck_assert_int_eq(ls_sampler_init(&a, 5, -1.0f, 0.9f, 7, &err), LS_EINVAL);
  ck_assert_int_eq(ls_sampler_init(&a, 5, 1.0f, 0.0f, 7, &err), LS_EINVAL);
  ls_sampler_free(&b);
}
END_TEST

START_TEST(stop_string_and_early_exit) {
  ls_engine e;
  open_stories(&e, 1);
  ls_err err = {0};
  const char *stops[] = {"."};
  ls_gen_request req = {.prompt = "", .max_new_tokens = 200, .stops = stops, .n_stops = 1};
  ls_gen_output out;
  ck_assert_int_eq(ls_engine_generate(&e, &req, &out, &err), 0);
  ck_assert_int_eq(out.stop, LS_STOP_STRING);
  ck_assert_str_eq(out.text, "Once upon a time, there was a little girl named Lily");
  /* early exit with a threshold above every confidence fires right after `window` tokens */
  ls_gen_request ee = {.prompt = "", .max_new_tokens = 200, .ee_window = 4, .ee_threshold = 1.0f};
  ck_assert_int_eq(ls_engine_generate(&e, &ee, &out, &err), 0);
  ck_assert_int_eq(out.stop, LS_STOP_EARLY_EXIT);
  ck_assert_int_eq(out.n_generated, 4);
  ls_engine_close(&e);
}
END_TEST

/* Sampling (temperature > 0): each request has its own stream from the seed,
 * so a request's tokens are the same alone, after other calls, or batched
 * with other requests in any order. */
static void open_sampling(ls_engine *e, int n_seq) {
  ls_err err = {0};
  ls_engine_params p = {.model_path = ls_test_data("models/stories260K/stories260K.bin"),
                        .tokenizer_path = ls_test_data("models/stories260K/tok512.bin"), .n_threads = 2,
                        .n_seq = n_seq, .temperature = 1.0f, .top_p = 0.95f, .seed = 7, .need_tokenizer = 1};
  ck_assert_msg(ls_engine_open(e, &p, &err) == LS_OK, "open: %s", err.msg);
}

START_TEST(sampled_requests_same_alone_and_batched) {
  enum { N = 3, LEN = 40 };
  static const char *prompts[N] = {"Lily", "Tom went to the", "Once upon"};
  int alone[N][LEN], n_alone[N];
  ls_err err = {0};
  ls_engine e;
  open_sampling(&e, N);
  ls_gen_request reqs[N];
  ls_gen_output outs[N];
  for (int i = 0; i < N; i++) reqs[i] = (ls_gen_request){.prompt = prompts[i], .max_new_tokens = LEN};
  for (int i = 0; i < N; i++) {
    ck_assert_msg(ls_engine_generate(&e, &reqs[i], &outs[0], &err) == LS_OK, "%s", err.msg);
    n_alone[i] = outs[0].n_generated;
    memcpy(alone[i], outs[0].tokens + outs[0].n_prompt, sizeof(int) * (size_t)n_alone[i]);
  }
  /* batched, in reverse order (request i in slot N-1-i) */
  ls_gen_request rev[N];
  for (int i = 0; i < N; i++) rev[i] = reqs[N - 1 - i];
  ck_assert_msg(ls_engine_generate_multi(&e, rev, N, outs, &err) == LS_OK, "%s", err.msg);
  for (int i = 0; i < N; i++) {
    const ls_gen_output *o = &outs[N - 1 - i];
    ck_assert_int_eq(o->n_generated, n_alone[i]);
    ck_assert_msg(!memcmp(o->tokens + o->n_prompt, alone[i], sizeof(int) * (size_t)n_alone[i]),
                  "request %d: sampled tokens differ batched", i);
  }
  /* it really samples: the first request's tokens are not the greedy ones */
  ls_engine_close(&e);
  ls_engine g;
  open_stories(&g, 2);
  ls_gen_output go;
  ck_assert_msg(ls_engine_generate(&g, &reqs[0], &go, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(go.n_generated != n_alone[0] ||
                    memcmp(go.tokens + go.n_prompt, alone[0], sizeof(int) * (size_t)n_alone[0]),
                "temperature 1 gave the greedy tokens");
  ls_engine_close(&g);
}
END_TEST

START_TEST(teacher_forcing_matches_generation) {
  ls_engine e;
  open_stories(&e, 2);
  ls_err err = {0};
  ls_gen_request req = {.prompt = "The cat", .max_new_tokens = 60};
  ls_gen_output out;
  ck_assert_int_eq(ls_engine_generate(&e, &req, &out, &err), 0);
  int n_prompt = out.n_prompt, n_gen = out.n_generated;
  int *all = malloc((size_t)(n_prompt + n_gen) * sizeof *all);
  float *conf_gen = malloc((size_t)n_gen * sizeof *conf_gen);
  memcpy(all, out.tokens, (size_t)(n_prompt + n_gen) * sizeof *all);
  memcpy(conf_gen, out.confidence, (size_t)n_gen * sizeof *conf_gen);
  int *pred = malloc((size_t)n_gen * sizeof *pred);
  float *conf = malloc((size_t)n_gen * sizeof *conf);
  ck_assert_int_eq(ls_engine_teacher_force(&e, all, n_prompt, all + n_prompt, n_gen, NULL, pred, conf, &err), 0);
  /* greedy generation is its own teacher: every prediction equals the generated token */
  for (int i = 0; i < n_gen; i++) {
    ck_assert_int_eq(pred[i], all[n_prompt + i]);
    ck_assert(fabsf(conf[i] - conf_gen[i]) < 1e-3f);
  }
  free(all);
  free(conf_gen);
  free(pred);
  free(conf);
  ls_engine_close(&e);
}
END_TEST

START_TEST(missing_tokenizer_is_an_error) {
  ls_engine e;
  ls_err err = {0};
  ls_engine_params p = {.model_path = ls_test_data("models/stories260K/stories260K.bin"), .need_tokenizer = 1, .top_p = 1};
  ck_assert_int_eq(ls_engine_open(&e, &p, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "stories260K.bin"));
  ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer"));
  p.tokenizer_path = "/nonexistent/tok.bin";
  ck_assert_int_eq(ls_engine_open(&e, &p, &err), LS_EIO);
  ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/tok.bin"));
}
END_TEST

/* Q8_0 conversion keeps teacher-forced top-1 agreement >= 0.98 with F32 over 200 tokens. */
START_TEST(q8_0_agrees_with_f32_over_200_tokens) {
  ls_engine f32;
  open_stories(&f32, 1);
  ls_err err = {0};
  ls_gen_request req = {.prompt = "", .max_new_tokens = 200};
  ls_gen_output out;
  ck_assert_int_eq(ls_engine_generate(&f32, &req, &out, &err), 0);
  ck_assert_int_eq(out.n_generated, 200);
  int all[256];
  memcpy(all, out.tokens, (size_t)(out.n_prompt + out.n_generated) * sizeof *all);
  char path[512];
  snprintf(path, sizeof path, "%s/stories260K-q8_0.gguf", ls_test_tmpdir());
  ck_assert_msg(ls_gguf_convert(&f32.model, path, LS_Q8_0, &err) == 0, "%s", err.msg);
  ls_engine q8;
  ls_engine_params p = {.model_path = path, .n_threads = 1, .top_p = 1.0f, .need_tokenizer = 1};
  ck_assert_msg(ls_engine_open(&q8, &p, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(q8.model.layers[0].wq.type, LS_Q8_0);
  int pred[200];
  float conf[200];
  ck_assert_int_eq(ls_engine_teacher_force(&q8, all, 1, all + 1, 200, NULL, pred, conf, &err), 0);
  int agree = 0;
  for (int i = 0; i < 200; i++) agree += pred[i] == all[1 + i];
  ck_assert_msg(agree >= 196, "Q8_0 top-1 agreement %d/200 < 0.98", agree);
  ls_engine_close(&q8);
  ls_engine_close(&f32);
  remove(path);
}
END_TEST

int main(void) {
  Suite *s = suite_create("generate");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, golden_greedy_empty_prompt);
  tcase_add_test(tc, greedy_same_for_1_2_3_threads);
  tcase_add_test(tc, tokenizer_round_trips_tok512);
  tcase_add_test(tc, tokenizer_round_trips_llama2_vocab);
  tcase_add_test(tc, sampler_confidence_and_seed);
  tcase_add_test(tc, stop_string_and_early_exit);
  tcase_add_test(tc, sampled_requests_same_alone_and_batched);
  tcase_add_test(tc, teacher_forcing_matches_generation);
  tcase_add_test(tc, missing_tokenizer_is_an_error);
  tcase_add_test(tc, q8_0_agrees_with_f32_over_200_tokens);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
