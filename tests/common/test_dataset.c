/* Dataset loaders: counts of the bundled files, field values, deterministic shards that
 * partition the data, --limit/--shard parsing, and file:line errors for malformed input. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_dataset.h"
#include "ls_test.h"

static ls_dataset *load(const char *path, int format) {
  ls_dataset *ds = NULL;
  ls_err err = {0};
  int rc = ls_dataset_load(path, format, &ds, &err);
  ck_assert_msg(rc == LS_OK, "%s", err.msg);
  return ds;
}

static const struct {
  const char *rel;
  int format;   /* what auto-detection must find */
  int count;
  int n_options;
} FILES[] = {
    {"datasets/obqa/dev.jsonl", LS_DS_OBQA, 500, 4},
    {"datasets/csqa/dev_rand_split.jsonl", LS_DS_CSQA, 1221, 5},
    {"datasets/strategyqa/bigbench/task.json", LS_DS_BIGBENCH, 2290, 2},
    {"datasets/strategyqa/kard_split/test.json", LS_DS_KARD, 687, 2},
};

START_TEST(counts_and_detection) {
  for (size_t f = 0; f < sizeof FILES / sizeof FILES[0]; f++) {
    ls_dataset *ds = load(ls_test_data(FILES[f].rel), LS_DS_AUTO);
    ck_assert_msg(ds->format == FILES[f].format, "%s detected as %s", FILES[f].rel, ls_dataset_format_name(ds->format));
    ck_assert_int_eq(ds->n, FILES[f].count);
    ck_assert_int_eq(ds->n_total, FILES[f].count);
    for (int i = 0; i < ds->n; i++) {
      const ls_example *ex = &ds->ex[i];
      ck_assert_int_eq(ex->n_options, FILES[f].n_options);
      ck_assert(ex->answer >= 0 && ex->answer < ex->n_options);
      ck_assert(ex->id && ex->id[0] && ex->question && ex->question[0]);
      ck_assert_ptr_null(ex->opening);
      ck_assert_int_gt(ex->line, 0);
    }
    /* naming the format gives the same result */
    ls_dataset *named = load(ls_test_data(FILES[f].rel), FILES[f].format);
    ck_assert_int_eq(named->n, ds->n);
    ck_assert_str_eq(named->ex[ds->n - 1].question, ds->ex[ds->n - 1].question);
    ls_dataset_free(named);
    ls_dataset_free(ds);
  }
}
END_TEST

START_TEST(field_values) {
  ls_dataset *ds = load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO);
  /* line 2: "7-57", "Gas can fill any container it is given, and liquid", A "is standard weight and size" */
  ck_assert_str_eq(ds->ex[1].id, "7-57");
  ck_assert_str_eq(ds->ex[1].question, "Gas can fill any container it is given, and liquid");
  ck_assert_str_eq(ds->ex[1].options[0], "is standard weight and size");
  ck_assert_int_eq(ds->ex[1].line, 2);
  ls_dataset_free(ds);

  ds = load(ls_test_data("datasets/strategyqa/bigbench/task.json"), LS_DS_AUTO);
  /* examples[0] Yes 1 (line 19 of the file), examples[1] "Hydrogen's atomic number squared exceeds number of
   * Spice Girls?" No 1 */
  ck_assert_str_eq(ds->ex[0].options[0], "yes");
  ck_assert_str_eq(ds->ex[0].options[1], "no");
  ck_assert_int_eq(ds->ex[0].answer, 0);
  ck_assert_int_eq(ds->ex[0].line, 19);
  ck_assert_str_eq(ds->ex[1].question, "Hydrogen's atomic number squared exceeds number of Spice Girls?");
  ck_assert_int_eq(ds->ex[1].answer, 1);
  ck_assert_str_eq(ds->ex[1].id, "bigbench-1");
  ls_dataset_free(ds);

  ds = load(ls_test_data("datasets/strategyqa/kard_split/test.json"), LS_DS_AUTO);
  ck_assert_str_eq(ds->ex[0].id, "test-00000");
  ck_assert_str_eq(ds->ex[0].options[0], "yes");
  ck_assert_str_eq(ds->ex[0].options[1], "no");
  ls_dataset_free(ds);
}
END_TEST

START_TEST(stories) {
  ls_dataset *ds = load(ls_test_data("corpora/tinystories_val_subset.txt"), LS_DS_STORIES);
  /* no <|endoftext|> separators in this file: stories start at paragraphs beginning "Once upon a time" (713) or
   * "Once there " (the rest) */
  ck_assert_int_ge(ds->n, 713);
  ck_assert_int_lt(ds->n, 800);
  for (int i = 0; i < ds->n; i++) {
    const ls_example *ex = &ds->ex[i];
    ck_assert_ptr_nonnull(ex->opening);
    ck_assert_ptr_eq(ex->question, ex->opening);
    ck_assert_int_eq(ex->n_options, 0);
    ck_assert_int_eq(ex->answer, -1);
    ck_assert_msg(strncmp(ex->opening, "Once", 4) == 0, "%s", ex->opening);
    size_t n = strlen(ex->opening);
    ck_assert_ptr_null(strchr(ex->opening, '\n'));
    /* one sentence: ends with its punctuation (maybe a closing quote) */
    ck_assert_msg(strchr(".!?\"'", ex->opening[n - 1]) != NULL || (unsigned char)ex->opening[n - 1] >= 0x80,
                  "story %d: %s", i, ex->opening);
  }
  ck_assert_str_eq(ds->ex[0].opening, "Once upon a time, in a big forest, there lived a rhinoceros named Roxy.");
  ls_dataset_free(ds);

  /* <|endoftext|>-separated text (the original TinyStories files) */
  const char *p = ls_test_write_tmp("s.txt", "Tom had a dog. It was big.\n\nThe end.<|endoftext|>\n  Sue ran! She fell.\n"
                                     "<|endoftext|>\n\n\"Hi.\" said Bo. Yes.");
  ds = load(p, LS_DS_STORIES);
  ck_assert_int_eq(ds->n, 3);
  ck_assert_str_eq(ds->ex[0].opening, "Tom had a dog.");
  ck_assert_int_eq(ds->ex[0].line, 1);
  ck_assert_str_eq(ds->ex[1].opening, "Sue ran!");
  ck_assert_int_eq(ds->ex[1].line, 4);
  ck_assert_str_eq(ds->ex[2].opening, "\"Hi.\"");
  ck_assert_int_eq(ds->ex[2].line, 7);
  ls_dataset_free(ds);

  /* a text file is not detected automatically */
  ls_err err = {0};
  ck_assert_int_eq(ls_dataset_load(ls_test_data("corpora/tinystories_val_subset.txt"), LS_DS_AUTO, &ds, &err), LS_EFORMAT);
  ck_assert_ptr_nonnull(strstr(err.msg, "--format stories"));
}
END_TEST

START_TEST(plain_jsonl) {
  const char *p = ls_test_write_tmp("plain.jsonl",
                            "{\"id\": \"q1\", \"question\": \"2+2?\", \"options\": [\"3\", \"4\"], \"answer\": \"B\"}\n"
                            "\n"
                            "{\"id\": 7, \"question\": \"Sky?\", \"options\": [\"blue\", \"red\", \"green\"], \"answer\": 0}\n"
                            "{\"question\": \"Unlabelled?\", \"options\": [\"a\"]}\r\n"
                            "{\"question\": \"Null?\", \"options\": [\"a\", \"b\"], \"answer\": null}\n");
  ls_dataset *ds = load(p, LS_DS_AUTO);
  ck_assert_int_eq(ds->format, LS_DS_PLAIN);
  ck_assert_int_eq(ds->n, 4);
  ck_assert_str_eq(ds->ex[0].id, "q1");
  ck_assert_int_eq(ds->ex[0].answer, 1);
  ck_assert_str_eq(ds->ex[1].id, "7");
  ck_assert_int_eq(ds->ex[1].answer, 0);
  ck_assert_int_eq(ds->ex[1].line, 3);
  ck_assert_str_eq(ds->ex[2].id, "2");
  ck_assert_int_eq(ds->ex[2].answer, -1);
  ck_assert_int_eq(ds->ex[2].line, 4);
  ck_assert_int_eq(ds->ex[3].answer, -1);
  ls_dataset_free(ds);
}
END_TEST

/* every example in exactly one shard, in order, sizes within one */
static void check_partition(const char *path, int n) {
  ls_dataset *full = load(path, LS_DS_AUTO);
  int *seen = calloc((size_t)full->n, sizeof *seen);
  int next = 0, min = full->n, max = 0;
  for (int i = 0; i < n; i++) {
    ls_dataset *ds = load(path, LS_DS_AUTO);
    ls_err err = {0};
    ck_assert_msg(ls_dataset_shard(ds, i, n, &err) == LS_OK, "%s", err.msg);
    if (ds->n < min) min = ds->n;
    if (ds->n > max) max = ds->n;
    for (int j = 0; j < ds->n; j++) {
      int src = ds->source_index[j];
      ck_assert_int_eq(src, next++); /* contiguous and in order */
      seen[src]++;
      ck_assert_str_eq(ds->ex[j].id, full->ex[src].id);
    }
    ls_dataset_free(ds);
  }
  for (int j = 0; j < full->n; j++) ck_assert_msg(seen[j] == 1, "N=%d: example %d in %d shards", n, j, seen[j]);
  ck_assert_int_le(max - min, 1);
  free(seen);
  ls_dataset_free(full);
}

START_TEST(shards_partition) {
  int ns[] = {1, 2, 3, 7};
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) check_partition(ls_test_data("datasets/csqa/dev_rand_split.jsonl"), ns[k]);
  /* more shards than a small file has examples: some shards are empty, none overlap */
  char text[8192] = "";
  for (int i = 0; i < 37; i++)
    snprintf(text + strlen(text), sizeof text - strlen(text), "{\"id\": \"e%d\", \"question\": \"q\", \"options\": [\"a\"]}\n", i);
  const char *p = ls_test_write_tmp("small.jsonl", text);
  int small[] = {5, 36, 37, 50};
  for (size_t k = 0; k < sizeof small / sizeof small[0]; k++) check_partition(p, small[k]);
  /* the bounds alone, for many N over the CSQA size */
  for (int n = 1; n <= 1500; n += 7) {
    int prev_end = 0;
    for (int i = 0; i < n; i++) {
      int b, e;
      ls_err err = {0};
      ck_assert_int_eq(ls_shard_bounds(1221, i, n, &b, &e, &err), LS_OK);
      ck_assert_int_eq(b, prev_end);
      ck_assert(e - b == 1221 / n || e - b == 1221 / n + 1);
      prev_end = e;
    }
    ck_assert_int_eq(prev_end, 1221);
  }
}
END_TEST

START_TEST(limit_then_shard) {
  int covered = 0;
  for (int i = 0; i < 4; i++) {
    ls_dataset *ds = load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO);
    ls_err err = {0};
    ck_assert_int_eq(ls_dataset_select(ds, 10, i, 4, &err), LS_OK);
    for (int j = 0; j < ds->n; j++) ck_assert_int_eq(ds->source_index[j], covered + j);
    covered += ds->n;
    ls_dataset_free(ds);
  }
  ck_assert_int_eq(covered, 10);
  ls_dataset *ds = load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO);
  ls_err err = {0};
  ck_assert_int_eq(ls_dataset_select(ds, 3, 0, 0, &err), LS_OK);
  ck_assert_int_eq(ds->n, 3);
  ck_assert_int_eq(ls_dataset_shard(ds, 4, 4, &err), LS_EINVAL);
  ls_dataset_free(ds);

  int a, b;
  ck_assert_int_eq(ls_shard_parse("2/8", &a, &b, &err), LS_OK);
  ck_assert_int_eq(a, 2);
  ck_assert_int_eq(b, 8);
  const char *bad[] = {"8/8", "-1/4", "1/0", "1", "a/b", "1/4x", "", "/4", "1/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(ls_shard_parse(bad[i], &a, &b, &err) == LS_EINVAL, "accepted %s", bad[i]);
  ck_assert_int_eq(ls_shard_bounds(10, 3, 4, &a, &b, &err), LS_OK);
  ck_assert_int_eq(a, 7);
  ck_assert_int_eq(b, 10);
}
END_TEST

/* A malformed record names the file and its line. */
START_TEST(malformed_lines) {
  static const struct {
    const char *text;
    int format;
    const char *want; /* after "PATH" */
  } cases[] = {
      {"{\"id\": \"a\", \"question\": {\"stem\": \"s\", \"choices\": [{\"label\": \"A\", \"text\": \"x\"}]}, "
       "\"answerKey\": \"A\"}\n{\"id\": \"b\", \"question\": {\"stem\": \"s\"}}\n",
       LS_DS_AUTO, ":2: missing key \"choices\""},
      {"{\"id\": \"a\", \"question\": {\"stem\": \"s\", \"choices\": [{\"label\": \"A\", \"text\": \"x\"}]}, "
       "\"answerKey\": \"A\"}\n\n{\"id\": \"b\", \"question\": {\"stem\": \"s\", \"choices\": [{\"label\": \"A\", "
       "\"text\": \"x\"}]}, \"answerKey\": \"A\"\n",
       LS_DS_AUTO, ":3:"},
      {"{\"id\": \"a\", \"question\": {\"stem\": \"s\", \"choices\": [{\"label\": \"B\", \"text\": \"x\"}]}}\n",
       LS_DS_OBQA, ":1: choices[0]: label \"B\", expected \"A\""},
      {"{\"id\": \"a\", \"question\": {\"stem\": \"s\", \"choices\": [{\"label\": \"A\", \"text\": \"x\"}]}, "
       "\"answerKey\": \"C\"}\n",
       LS_DS_OBQA, ":1: answerKey \"C\""},
      {"{\"id\": \"t\", \"sent1\": \"q\", \"ending0\": \"yes\", \"ending1\": \"no\", \"label\": 0}\n"
       "{\"id\": \"u\", \"sent1\": \"q\", \"ending0\": \"yes\", \"ending1\": \"no\", \"label\": 2}\n",
       LS_DS_AUTO, ":2: label 2"},
      {"{\"id\": \"t\", \"sent1\": \"q\", \"ending0\": \"yes\", \"ending1\": \"no\", \"label\": \"0\"}\n", LS_DS_KARD,
       ":1: key \"label\": expected an integer"},
      {"{\"question\": \"q\", \"options\": [\"a\", \"b\"], \"answer\": \"C\"}\n", LS_DS_AUTO, ":1: answer \"C\""},
      {"{\"question\": \"q\", \"options\": [\"a\", \"b\"], \"answer\": 2}\n", LS_DS_PLAIN, ":1: answer 2"},
      {"{\"question\": \"q\", \"options\": [\"a\", 3]}\n", LS_DS_PLAIN, ":1: options[1] is not a string"},
      {"{\"question\": \"q\", \"options\": []}\n", LS_DS_PLAIN, ":1: 0 options"},
      {"{\"question\": \"q\", \"options\": [\"a\"]}\n[1, 2]\n", LS_DS_PLAIN, ":2: expected a JSON object"},
      {"{\"what\": 1}\n", LS_DS_AUTO, ":1: cannot tell the dataset format"},
      {"{\"examples\": [\n {\"input\": \"q\", \"target_scores\": {\"Yes\": 1, \"No\": 0}},\n {\"input\": \"q\", "
       "\"target_scores\": {\"Yes\": 1, \"No\": 1}}\n]}\n",
       LS_DS_AUTO, ":3: examples[1]: target_scores"},
      {"{\"examples\": [\n {\"input\": \"q\", \"target_scores\": {\"Yes\": 1, \"No\": 0}},\n {\"target_scores\": "
       "{\"Yes\": 1, \"No\": 0}}\n]}\n",
       LS_DS_BIGBENCH, ":3: examples[1]: missing key \"input\""},
      {"  \n\n", LS_DS_AUTO, ": the file holds only blank lines (4 bytes of whitespace), no examples"},
      {"", LS_DS_AUTO, ": the file is empty"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = ls_test_write_tmp("bad.jsonl", cases[i].text);
    char want[1024];
    snprintf(want, sizeof want, "%s%s", p, cases[i].want);
    ls_dataset *ds = (ls_dataset *)1;
    ls_err err = {0};
    int rc = ls_dataset_load(p, cases[i].format, &ds, &err);
    ck_assert_msg(rc == LS_EFORMAT, "case %zu: rc %d (%s)", i, rc, err.msg);
    ck_assert_ptr_null(ds);
    ck_assert_msg(strstr(err.msg, want) != NULL, "case %zu: \"%s\" not in: %s", i, want, err.msg);
  }
  ls_dataset *ds;
  ls_err err = {0};
  ck_assert_int_eq(ls_dataset_load("/nonexistent.jsonl", LS_DS_AUTO, &ds, &err), LS_EIO);
  int f;
  ck_assert_int_eq(ls_dataset_format_parse("kard", &f, &err), LS_OK);
  ck_assert_int_eq(f, LS_DS_KARD);
  ck_assert_int_eq(ls_dataset_format_parse("jsonl", &f, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "--format jsonl"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("dataset");
  TCase *tc = tcase_create("dataset");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, counts_and_detection);
  tcase_add_test(tc, field_values);
  tcase_add_test(tc, stories);
  tcase_add_test(tc, plain_jsonl);
  tcase_add_test(tc, shards_partition);
  tcase_add_test(tc, limit_then_shard);
  tcase_add_test(tc, malformed_lines);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
