/* Stage templates: byte-exact TinyThinker prompts for one OBQA, one CSQA and one StrategyQA
 * example at every stage (expected strings written by hand from the dataset lines), answer
 * extraction, stop strings, the story template, and load errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_dataset.h"
#include "ls_strbuf.h"
#include "ls_template.h"
#include "ls_test.h"

static ls_template *load_template(const char *rel) {
  ls_template *t = NULL;
  ls_err err = {0};
  int rc = ls_template_load(ls_test_data(rel), &t, &err);
  ck_assert_msg(rc == LS_OK, "%s", err.msg);
  return t;
}

static ls_dataset *load_data(const char *rel, int format) {
  ls_dataset *ds = NULL;
  ls_err err = {0};
  int rc = ls_dataset_load(ls_test_data(rel), format, &ds, &err);
  ck_assert_msg(rc == LS_OK, "%s", err.msg);
  return ds;
}

/* Renders every stage with fixed stage outputs and compares byte for byte. The raw outputs have
 * surrounding whitespace to check the trimming rule; analyses lack or have the final period. */
static void check_chain(const char *tmpl, const ls_example *ex, const char *const *analyses, const char *want_recall,
                        const char *const *want_analyze, const char *want_summarize) {
  ls_template *t = load_template(tmpl);
  ls_strbuf b;
  ls_strbuf_init(&b);
  ls_err err = {0};
  ck_assert_int_eq(t->n_stages, 3);
  ck_assert_str_eq(t->stages[0].name, "recall");
  ck_assert_str_eq(t->stages[1].name, "analyze");
  ck_assert_str_eq(t->stages[2].name, "summarize");
  ck_assert_int_eq(t->stages[1].per_option, 1);
  for (int s = 0; s < 3; s++) ck_assert_int_eq(t->stages[s].max_new_tokens, 200);

  ck_assert_int_eq(ls_template_render(t, 0, ex, NULL, -1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), want_recall);

  const char *recall_raw[1] = {" Recalled fact one.\n "};
  ls_stage_text prev[2] = {{1, recall_raw}, {ex->n_options, analyses}};
  for (int o = 0; o < ex->n_options; o++) {
    ck_assert_msg(ls_template_render(t, 1, ex, prev, o, &b, &err) == LS_OK, "%s", err.msg);
    ck_assert_str_eq(ls_strbuf_cstr(&b), want_analyze[o]);
  }
  ck_assert_msg(ls_template_render(t, 2, ex, prev, -1, &b, &err) == LS_OK, "%s", err.msg);
  ck_assert_str_eq(ls_strbuf_cstr(&b), want_summarize);
  ls_strbuf_free(&b);
  ls_template_free(t);
}

START_TEST(obqa_prompts) {
  ls_dataset *ds = load_data("datasets/obqa/dev.jsonl", LS_DS_AUTO);
  /* line 1: {"id": "8-376", "question": {"stem": "Frilled sharks and angler fish live far beneath the surface of
   * the ocean, which is why they are known as", "choices": [Deep sea animals, fish, Long Sea Fish, Far Sea
   * Animals]}, "answerKey": "A"} */
  const ls_example *ex = &ds->ex[0];
  ck_assert_str_eq(ex->id, "8-376");
  ck_assert_int_eq(ex->answer, 0);
  const char *an[4] = {" deep sea animals live far down", " fish is too general.", "\nnot a term ", ""};
#define Q "Frilled sharks and angler fish live far beneath the surface of the ocean, which is why they are known as\n" \
          "(A) Deep sea animals (B) fish (C) Long Sea Fish (D) Far Sea Animals\n"
  const char *want_an[4] = {Q "Recall: Recalled fact one.\nAnalyze: For option A,",
                            Q "Recall: Recalled fact one.\nAnalyze: For option B,",
                            Q "Recall: Recalled fact one.\nAnalyze: For option C,",
                            Q "Recall: Recalled fact one.\nAnalyze: For option D,"};
  check_chain("templates/obqa.json", ex, an, Q "Recall:", want_an,
              Q "Recall: Recalled fact one.\nAnalyze: For option A, deep sea animals live far down. For option B, fish "
                "is too general. For option C, not a term. For option D, .\nSummarize:");
#undef Q
  ls_dataset_free(ds);
}
END_TEST

START_TEST(csqa_prompts) {
  ls_dataset *ds = load_data("datasets/csqa/dev_rand_split.jsonl", LS_DS_AUTO);
  /* line 1: "A revolving door is convenient for two direction travel, but it also serves as a security measure
   * at a what?" A bank, B library, C department store, D mall, E new york; answerKey A */
  const ls_example *ex = &ds->ex[0];
  ck_assert_str_eq(ex->id, "1afa02df02c908a558b4036e80242fac");
  ck_assert_int_eq(ex->n_options, 5);
  ck_assert_int_eq(ex->answer, 0);
  const char *an[5] = {" banks need security.", " a", " b", " c", " new york is a city"};
#define Q "A revolving door is convenient for two direction travel, but it also serves as a security measure at a " \
          "what?\n(A) bank (B) library (C) department store (D) mall (E) new york\n"
  const char *want_an[5] = {
      Q "Recall: Recalled fact one.\nAnalyze: For option A,", Q "Recall: Recalled fact one.\nAnalyze: For option B,",
      Q "Recall: Recalled fact one.\nAnalyze: For option C,", Q "Recall: Recalled fact one.\nAnalyze: For option D,",
      Q "Recall: Recalled fact one.\nAnalyze: For option E,"};
  check_chain("templates/csqa.json", ex, an, Q "Recall:", want_an,
              Q "Recall: Recalled fact one.\nAnalyze: For option A, banks need security. For option B, a. For option "
                "C, b. For option D, c. For option E, new york is a city.\nSummarize:");
#undef Q
  ls_dataset_free(ds);
}
END_TEST

START_TEST(strategyqa_prompts) {
  ls_dataset *ds = load_data("datasets/strategyqa/bigbench/task.json", LS_DS_AUTO);
  /* examples[0]: "Is it common to see frost during some college commencements?", target_scores Yes 1 */
  const ls_example *ex = &ds->ex[0];
  ck_assert_int_eq(ex->answer, 0);
  const char *an[2] = {" frost happens in December.", " no is wrong"};
#define Q "Is it common to see frost during some college commencements?\n(A) yes (B) no\n"
  const char *want_an[2] = {Q "Recall: Recalled fact one.\nAnalyze: For option A,",
                            Q "Recall: Recalled fact one.\nAnalyze: For option B,"};
  const char *want_sum =
      Q "Recall: Recalled fact one.\nAnalyze: For option A, frost happens in December. For option B, no is wrong.\n"
        "Summarize:";
  check_chain("templates/strategyqa.json", ex, an, Q "Recall:", want_an, want_sum);
#undef Q
  ls_dataset_free(ds);

  /* KARD line 1: {"id": "test-00000", "sent1": "Was ship that recovered Apollo 13 named after a World War II
   * battle?", "ending0": "yes", "ending1": "no", "label": 0} renders the same way */
  ds = load_data("datasets/strategyqa/kard_split/test.json", LS_DS_AUTO);
  ls_template *t = load_template("templates/strategyqa.json");
  ls_strbuf b;
  ls_strbuf_init(&b);
  ls_err err = {0};
  ck_assert_int_eq(ls_template_render(t, 0, &ds->ex[0], NULL, -1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b),
                   "Was ship that recovered Apollo 13 named after a World War II battle?\n(A) yes (B) no\nRecall:");
  ls_strbuf_free(&b);
  ls_template_free(t);
  ls_dataset_free(ds);
}
END_TEST

START_TEST(answer_extraction) {
  ls_template *t = load_template("templates/obqa.json");
  int o = 99;
  /* match */
  ck_assert_int_eq(ls_template_extract_answer(t, " So the answer is option C.", &o), 1);
  ck_assert_int_eq(o, 2);
  /* no match: no period, wrong words, empty */
  ck_assert_int_eq(ls_template_extract_answer(t, "the answer is option C", &o), 0);
  ck_assert_int_eq(o, -1);
  ck_assert_int_eq(ls_template_extract_answer(t, "I think it is C.", &o), 0);
  ck_assert_int_eq(o, -1);
  ck_assert_int_eq(ls_template_extract_answer(t, "", &o), 0);
  /* several matches: the first counts */
  ck_assert_int_eq(ls_template_extract_answer(t, "the answer is option B. No, the answer is option D.", &o), 1);
  ck_assert_int_eq(o, 1);
  /* the phrase is case-insensitive ... */
  ck_assert_int_eq(ls_template_extract_answer(t, "The answer is option A.", &o), 1);
  ck_assert_int_eq(o, 0);
  ck_assert_int_eq(ls_template_extract_answer(t, "THE ANSWER IS OPTION E.", &o), 1);
  ck_assert_int_eq(o, 4);
  /* ... the letter is not: a lower-case letter is no answer, and a later upper-case one still counts */
  ck_assert_int_eq(ls_template_extract_answer(t, "The answer is option b.", &o), 0);
  ck_assert_int_eq(o, -1);
  ck_assert_int_eq(ls_template_extract_answer(t, "the answer is option b. so the answer is option D.", &o), 1);
  ck_assert_int_eq(o, 3);
  /* a letter beyond the options is returned as is (it never equals the gold answer) */
  ck_assert_int_eq(ls_template_extract_answer(t, "the answer is option Z.", &o), 1);
  ck_assert_int_eq(o, 25);
  ls_template_free(t);

  /* the story template has no answer regex */
  t = load_template("templates/story.json");
  ck_assert_int_eq(ls_template_extract_answer(t, "the answer is option A.", &o), 0);
  ck_assert_int_eq(o, -1);
  ls_template_free(t);

  /* without answer_ignore_case the regex is case-sensitive */
  ls_err err = {0};
  const char *p = ls_test_write_tmp("cs.json", "{\"name\": \"cs\", \"stages\": [{\"name\": \"a\", \"prompt\": \"{question}\", "
                                       "\"max_new_tokens\": 5, \"answer_regex\": \"answer: ([A-Z])\"}]}");
  ck_assert_msg(ls_template_load(p, &t, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(ls_template_extract_answer(t, "Answer: B", &o), 0);
  ck_assert_int_eq(ls_template_extract_answer(t, "answer: B", &o), 1);
  ck_assert_int_eq(o, 1);
  ls_template_free(t);
}
END_TEST

/* An answer regex that can match the empty string at the end of the text: the
 * search for a letter stops there instead of reading past the end (the text sits
 * right before an unmapped page). */
START_TEST(answer_regex_empty_match_at_end) {
  const char *p = ls_test_write_tmp("opt.json", "{\"name\": \"opt\", \"stages\": [{\"name\": \"a\", \"prompt\": \"{question}\", "
                                        "\"max_new_tokens\": 5, \"answer_regex\": \"([A-Z])?$\"}]}");
  ls_template *t;
  ls_err err = {0};
  ck_assert_msg(ls_template_load(p, &t, &err) == LS_OK, "%s", err.msg);
  static const struct {
    const char *text;
    int found, option;
  } cases[] = {{"abc", 0, -1}, {"abC", 1, 2}, {"", 0, -1}, {"x\n", 0, -1}, {"Z", 1, 25}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *text = ls_test_guarded_str(cases[i].text);
    int o = 99;
    ck_assert_int_eq(ls_template_extract_answer(t, text, &o), cases[i].found);
    ck_assert_int_eq(o, cases[i].option);
    ls_test_guarded_free(text);
  }
  ls_template_free(t);
}
END_TEST

/* Template text -> the load error, for the size limits of stop strings and answer regexes. */
static void expect_load_error(const char *json, const char *want) {
  const char *p = ls_test_write_tmp("limits.json", json);
  ls_template *t = (ls_template *)1;
  ls_err err = {0};
  ck_assert_msg(ls_template_load(p, &t, &err) == LS_EFORMAT, "loaded: %.200s", json);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err.msg, p) != NULL, "message does not name the file: %s", err.msg);
  ck_assert_msg(strstr(err.msg, want) != NULL, "\"%s\" not in: %s", want, err.msg);
  ck_assert(strchr(err.msg, '\n') == NULL);
}

static char *template_with(const char *field_json) {
  static const char head[] = "{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", "
                             "\"max_new_tokens\": 5, ";
  size_t n = strlen(head) + strlen(field_json) + 8;
  char *s = malloc(n);
  ck_assert_ptr_nonnull(s);
  snprintf(s, n, "%s%s}]}", head, field_json);
  return s;
}

static void expect_field_error(const char *field_json, const char *want) {
  char *s = template_with(field_json);
  expect_load_error(s, want);
  free(s);
}

static void expect_field_ok(const char *field_json) {
  char *s = template_with(field_json);
  const char *p = ls_test_write_tmp("ok-limits.json", s);
  ls_template *t;
  ls_err err = {0};
  ck_assert_msg(ls_template_load(p, &t, &err) == LS_OK, "%s", err.msg);
  ls_template_free(t);
  free(s);
}

START_TEST(field_size_limits) {
  /* stacked repetition: 22 '+' took 3.7 GB in regcomp */
  expect_field_error("\"answer_regex\": \"(x)++++++++++++++++++++++\"", "answer_regex \"(x)+++");
  expect_field_error("\"answer_regex\": \"(x)++\"", "stacked quantifiers at offset 3");
  expect_field_error("\"answer_regex\": \"(x*{2})\"", "stacked quantifiers at offset 2");
  expect_field_error("\"answer_regex\": \"(x){2}?\"", "stacked quantifiers at offset 3");
  /* the same blow-up through groups, and bounded repetition */
  expect_field_error("\"answer_regex\": \"((((((((((((((x+)+)+)+)+)+)+)+)+)+)+)+)+)+)\"", "compiles to about 1.64e+04");
  expect_field_error("\"answer_regex\": \"(x{1,255}){1,255}\"", "nested or bounded repetition");
  expect_field_error("\"answer_regex\": \"(x{2,}){3000}\"", "at most 4096");
  /* length */
  char re[400] = "\"answer_regex\": \"(";
  size_t k = strlen(re);
  while (k < 320) re[k++] = 'a';
  snprintf(re + k, sizeof re - k, ")\"");
  expect_field_error(re, "answer_regex is 304 bytes, at most 256");
  /* within the budget: still compiled and used */
  expect_field_ok("\"answer_regex\": \"(x{1,16}){1,16}([A-Z])\"");
  expect_field_ok("\"answer_regex\": \"[[:alpha:]+*]+ ((a|b)+|[^]x]*) ([A-Z])\\\\++\"");
  expect_field_ok("\"answer_regex\": \"the answer is option ([A-Z])\\\\.\"");

  /* a 10 MiB stop string slowed every stage 700x */
  size_t big = 10u << 20;
  char *stop = malloc(big + 64);
  ck_assert_ptr_nonnull(stop);
  k = (size_t)snprintf(stop, 64, "\"stop\": [\"\\n\", \"");
  memset(stop + k, 'x', big);
  snprintf(stop + k + big, 64, "\"]");
  expect_field_error(stop, "stage \"a\": stop[1] is 10485760 bytes, at most 256");
  free(stop);
  char ok[300];
  k = (size_t)snprintf(ok, sizeof ok, "\"stop\": [\"");
  memset(ok + k, 'y', 256);
  snprintf(ok + k + 256, sizeof ok - k - 256, "\"]");
  expect_field_ok(ok);
}
END_TEST

START_TEST(stop_strings) {
  ls_template *t = load_template("templates/obqa.json");
  size_t cut = 0;
  const char *s = "Fish live deep. For option B, no\nmore";
  /* analyze stops at the earliest of "\n" and " For option " */
  ck_assert_int_eq(ls_template_find_stop(t, 1, s, strlen(s), 0, &cut), 1);
  ck_assert_int_eq((int)cut, 15);
  /* recall only at "\n" */
  ck_assert_int_eq(ls_template_find_stop(t, 0, s, strlen(s), 0, &cut), 1);
  ck_assert_int_eq((int)cut, 32);
  /* not within the first len bytes, and not before `from` */
  ck_assert_int_eq(ls_template_find_stop(t, 0, s, 20, 0, &cut), 0);
  ck_assert_int_eq(ls_template_find_stop(t, 1, s, strlen(s), 16, &cut), 1);
  ck_assert_int_eq((int)cut, 32);
  ck_assert_int_eq((int)ls_template_max_stop_len(t, 1), 12);
  ls_template_free(t);

  /* keep_stop: the story's beginning keeps the sentence's final punctuation */
  t = load_template("templates/story.json");
  const char *b = " She had a red hat. Then";
  ck_assert_int_eq(ls_template_find_stop(t, 0, b, strlen(b), 0, &cut), 1);
  ck_assert_int_eq((int)cut, 19);
  ck_assert_int_eq(b[cut - 1], '.');
  ck_assert_int_eq(ls_template_find_stop(t, 0, " Wow! Yes.", 10, 0, &cut), 1);
  ck_assert_int_eq((int)cut, 5);
  ls_template_free(t);
}
END_TEST

START_TEST(story_prompts) {
  ls_dataset *ds = load_data("corpora/tinystories_val_subset.txt", LS_DS_STORIES);
  ls_template *t = load_template("templates/story.json");
  ck_assert_int_eq(t->n_stages, 3);
  ck_assert_str_eq(t->stages[0].name, "beginning");
  ck_assert_str_eq(t->stages[1].name, "middle");
  ck_assert_str_eq(t->stages[2].name, "end");
  ck_assert_ptr_null(t->answer_regex);
  /* the first story start in the file (line 5): "Once upon a time, in a big forest, there lived a rhinoceros named
   * Roxy. Roxy loved to climb. ..." */
  const ls_example *ex = &ds->ex[0];
  ck_assert_str_eq(ex->opening, "Once upon a time, in a big forest, there lived a rhinoceros named Roxy.");
  ck_assert_int_eq(ex->line, 5);
  ls_strbuf b;
  ls_strbuf_init(&b);
  ls_err err = {0};
  const char *beg[1] = {" Roxy loved to climb."}, *mid[1] = {" she saw an icy hill.\n"};
  ls_stage_text prev[2] = {{1, beg}, {1, mid}};
  ck_assert_int_eq(ls_template_render(t, 0, ex, NULL, -1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "Once upon a time, in a big forest, there lived a rhinoceros named Roxy.");
  ck_assert_int_eq(ls_template_render(t, 1, ex, prev, -1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "Once upon a time, in a big forest, there lived a rhinoceros named Roxy. Roxy "
                                       "loved to climb. One day,");
  ck_assert_int_eq(ls_template_render(t, 2, ex, prev, -1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "Once upon a time, in a big forest, there lived a rhinoceros named Roxy. Roxy "
                                       "loved to climb. One day, she saw an icy hill. In the end,");
  /* a QA template on a story example says what is missing */
  ls_template *q = load_template("templates/obqa.json");
  ck_assert_int_eq(ls_template_render(q, 0, ex, NULL, -1, &b, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "has no options"));
  ls_template_free(q);
  ls_strbuf_free(&b);
  ls_template_free(t);
  ls_dataset_free(ds);
}
END_TEST

START_TEST(render_errors) {
  ls_dataset *ds = load_data("datasets/obqa/dev.jsonl", LS_DS_OBQA);
  ls_template *t = load_template("templates/obqa.json");
  ls_strbuf b;
  ls_strbuf_init(&b);
  ls_err err = {0};
  /* option out of range in a per-option stage */
  const char *r[1] = {"x"};
  const char *an[4] = {"a", "b", "c", "d"};
  ls_stage_text prev[2] = {{1, r}, {4, an}};
  ck_assert_int_eq(ls_template_render(t, 1, &ds->ex[0], prev, 4, &b, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "option 4 out of range"));
  /* wrong number of per-option outputs */
  prev[1].n = 3;
  ck_assert_int_eq(ls_template_render(t, 2, &ds->ex[0], prev, -1, &b, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "needs 4 output(s), got 3"));
  /* missing earlier outputs */
  ck_assert_int_eq(ls_template_render(t, 1, &ds->ex[0], NULL, 0, &b, &err), LS_EINVAL);
  /* stage out of range */
  ck_assert_int_eq(ls_template_render(t, 3, &ds->ex[0], prev, -1, &b, &err), LS_EINVAL);
  ls_strbuf_free(&b);
  ls_template_free(t);
  ls_dataset_free(ds);
}
END_TEST

/* Every malformed template gives its own message naming the file. */
START_TEST(load_errors) {
  static const struct {
    const char *json, *want;
  } cases[] = {
      {"{\"name\": \"x\", \"stages\": [}", "bad.json:1:"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"{qestion}\", \"max_new_tokens\": 5}]}",
       "unknown placeholder \"{qestion}\""},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"{b}\", \"max_new_tokens\": 5}, {\"name\": \"b\", "
       "\"prompt\": \"q\", \"max_new_tokens\": 5}]}",
       "refers to a stage that is not before this one"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"{option}\", \"max_new_tokens\": 5}]}",
       "only allowed in a per_option stage"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"{question\", \"max_new_tokens\": 5}]}",
       "unclosed \"{\""},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q}\", \"max_new_tokens\": 5}]}", "lone \"}\""},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_token\": 5}]}",
       "unknown key \"max_new_token\""},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 0}]}",
       "max_new_tokens 0"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": \"5\"}]}",
       "key \"max_new_tokens\": expected an integer"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5, \"answer_regex\": "
       "\"(\"}]}",
       "answer_regex \"(\""},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5, \"answer_regex\": "
       "\"x\"}]}",
       "needs a group"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5, \"answer_regex\": "
       "\"(x)\"}, {\"name\": \"b\", \"prompt\": \"q\", \"max_new_tokens\": 5}]}",
       "only the last stage may have an answer_regex"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5}, {\"name\": \"a\", "
       "\"prompt\": \"q\", \"max_new_tokens\": 5}]}",
       "duplicate stage name \"a\""},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"Recall\", \"prompt\": \"q\", \"max_new_tokens\": 5}]}",
       "must match [a-z0-9_]+"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"question\", \"prompt\": \"q\", \"max_new_tokens\": 5}]}",
       "must match [a-z0-9_]+"},
      {"{\"name\": \"x\", \"stages\": []}", "0 stages"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5, \"join\": "
       "{\"item\": \"{output}\"}}]}",
       "\"join\" needs \"per_option\": true"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"per_option\": true, \"prompt\": \"q\", \"max_new_tokens\": "
       "5, \"join\": {\"item\": \"{recall}\"}}]}",
       "in join item"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5, \"stop\": [\"\"]}]}",
       "stop[0] must be a non-empty string"},
      {"{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"prompt\": \"q\", \"max_new_tokens\": 5, \"keep_stop\": "
       "true}]}",
       "keep_stop without stop strings"},
      {"{\"stages\": []}", "missing key \"name\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = ls_test_write_tmp("bad.json", cases[i].json);
    ls_template *t = (ls_template *)1;
    ls_err err = {0};
    int rc = ls_template_load(p, &t, &err);
    ck_assert_msg(rc != LS_OK, "case %zu loaded", i);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err.msg, p) != NULL, "case %zu: message does not name the file: %s", i, err.msg);
    ck_assert_msg(strstr(err.msg, cases[i].want) != NULL, "case %zu: \"%s\" not in: %s", i, cases[i].want, err.msg);
  }
  ls_err err = {0};
  ls_template *t;
  ck_assert_int_eq(ls_template_load("/nonexistent/t.json", &t, &err), LS_EIO);
}
END_TEST

START_TEST(braces_and_join_defaults) {
  const char *p = ls_test_write_tmp("ok.json",
                            "{\"name\": \"ok\", \"stages\": [{\"name\": \"one\", \"per_option\": true, \"prompt\": "
                            "\"{{{question}}} {option}={option_text}\", \"max_new_tokens\": 3}, {\"name\": \"two\", "
                            "\"prompt\": \"[{one}]\", \"max_new_tokens\": 3}]}");
  ls_template *t;
  ls_err err = {0};
  ck_assert_msg(ls_template_load(p, &t, &err) == LS_OK, "%s", err.msg);
  const char *opts[2] = {"x", "y"};
  ls_example ex = {.id = "e", .question = "Q", .options = opts, .n_options = 2, .answer = -1};
  ls_strbuf b;
  ls_strbuf_init(&b);
  ck_assert_int_eq(ls_template_render(t, 0, &ex, NULL, 1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "{Q} B=y");
  const char *outs[2] = {" first ", "second."};
  ls_stage_text prev[1] = {{2, outs}};
  ck_assert_int_eq(ls_template_render(t, 1, &ex, prev, -1, &b, &err), LS_OK);
  ck_assert_str_eq(ls_strbuf_cstr(&b), "[first second.]");
  ls_strbuf_free(&b);
  ls_template_free(t);
}
END_TEST

START_TEST(shipped_templates_load) {
  const char *names[] = {"templates/obqa.json", "templates/csqa.json", "templates/strategyqa.json",
                         "templates/story.json"};
  for (int i = 0; i < 4; i++) {
    ls_template *t = load_template(names[i]);
    ck_assert_int_eq(t->n_stages, 3);
    ck_assert_int_eq(t->has_answer_re, i < 3);
    ls_template_free(t);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("template");
  TCase *tc = tcase_create("template");
  tcase_add_test(tc, obqa_prompts);
  tcase_add_test(tc, csqa_prompts);
  tcase_add_test(tc, strategyqa_prompts);
  tcase_add_test(tc, answer_extraction);
  tcase_add_test(tc, answer_regex_empty_match_at_end);
  tcase_add_test(tc, field_size_limits);
  tcase_add_test(tc, stop_strings);
  tcase_add_test(tc, story_prompts);
  tcase_add_test(tc, render_errors);
  tcase_add_test(tc, load_errors);
  tcase_add_test(tc, braces_and_join_defaults);
  tcase_add_test(tc, shipped_templates_load);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
