/* The search's latency prediction counts decode calls, not generated tokens
 * (docs/latency.md, "Counting decode calls"):
 * - ls_call_decode_calls agrees with the engine: over real story-chain runs of stories260K, the
 *   tokens every sub-layer processed (prompt tokens not taken from the KV cache plus one per
 *   decode call, counted by the forward pass's statistics hook) equal
 *   sum(n_prompt - n_reused + ls_call_decode_calls) over the calls;
 * - ls_search_predict_ms predicts each stage's calls as one group (ls_predict_group_ms: a
 *   per-option stage's calls run together) with those decode calls and the stage's mask (a stage
 *   that stops on max tokens after G tokens is G - 1 decode steps), charging only the prompt
 *   positions a call did not take from the KV cache. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_dataset.h"
#include "ls_engine.h"
#include "ls_pipeline.h"
#include "ls_profile.h"
#include "ls_search.h"
#include "ls_template.h"
#include "ls_test.h"

static ls_engine eng;
static ls_template *tmpl;
static ls_dataset *ds;
static ls_profile prof;

static void setup(void) {
  ls_err err;
  ls_engine_params p = {.model_path = ls_test_data("models/stories260K/stories260K.bin"),
                        .tokenizer_path = ls_test_data("models/stories260K/tok512.bin"),
                        .n_threads = 1, .top_p = 1.0f, .need_tokenizer = 1};
  ck_assert_msg(ls_engine_open(&eng, &p, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_template_load(ls_test_data("templates/story.json"), &tmpl, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_dataset_load(ls_test_data("corpora/tinystories_val_subset.txt"), LS_DS_STORIES, &ds, &err) == LS_OK,
                "%s", err.msg);
  char path[4096];
  snprintf(path, sizeof path, "%s/jobs/profiles/stories260K.json", getenv("LS_SOURCE_DIR") ? getenv("LS_SOURCE_DIR") : ".");
  ck_assert_msg(ls_profile_load(&prof, path, &err) == LS_OK, "%s", err.msg);
}

static void teardown(void) {
  ls_profile_free(&prof);
  ls_dataset_free(ds);
  ls_template_free(tmpl);
  ls_engine_close(&eng);
}

START_TEST(decode_calls_match_the_engine) {
  int L = eng.model.cfg.n_layers, n = 2 * L, non_eos = 0;
  for (int i = 0; i < 6 && i < ds->n; i++) {
    double sum[64] = {0};
    int64_t cnt[64] = {0};
    ck_assert_int_le(n, 64);
    ls_sublayer_stats stats = {n, sum, cnt};
    ls_ctx_set_stats(eng.ctx, &stats);
    ls_example_result res;
    ls_err err;
    int rc = ls_pipeline_run(&eng, tmpl, &ds->ex[i], NULL, &res, &err);
    ls_ctx_set_stats(eng.ctx, NULL);
    ck_assert_msg(rc == LS_OK, "%s", err.msg);
    int64_t want = 0;
    for (int st = 0; st < res.n_stages; st++)
      for (int k = 0; k < res.stages[st].n_calls; k++) {
        const ls_call_result *c = &res.stages[st].calls[k];
        want += c->n_prompt - c->n_reused + ls_call_decode_calls(c); /* reused positions are not prefilled */
        non_eos += c->stop != LS_STOP_EOS && c->n_generated > 0;
      }
    for (int j = 0; j < n; j++) ck_assert_int_eq(cnt[j], want);
    ls_example_result_free(&res);
  }
  ck_assert_int_gt(non_eos, 0); /* the G - 1 case was exercised */
}
END_TEST

START_TEST(prediction_uses_decode_calls) {
  int L = prof.n_layers;
  ls_call_result calls[3] = {{.n_prompt = 20, .n_generated = 8, .stop = LS_STOP_MAX_TOKENS},
                             {.n_prompt = 15, .n_generated = 5, .stop = LS_STOP_EOS},
                             {.n_prompt = 12, .n_generated = 3, .stop = LS_STOP_STRING}};
  ls_stage_result stages[2] = {{.n_calls = 1, .calls = &calls[0]}, {.n_calls = 2, .calls = &calls[1]}};
  ls_example_result res = {.n_stages = 2, .stages = stages};
  ck_assert_int_eq(ls_call_decode_calls(&calls[0]), 7);
  ck_assert_int_eq(ls_call_decode_calls(&calls[1]), 5);
  ck_assert_int_eq(ls_call_decode_calls(&calls[2]), 2);
  uint8_t *masks = calloc((size_t)2 * L, 1);
  masks[L + 1] = LS_SKIP_FFN; /* stage 1 skips one FFN */
  ls_stage_call two[2] = {{masks + L, 15, 0, 5}, {masks + L, 12, 0, 2}};
  double want = ls_predict_stage_ms(&prof, masks, 20, 0, 7) + ls_predict_group_ms(&prof, masks + L, 0, 0, two, 2);
  ck_assert_double_eq_tol(ls_search_predict_ms(&prof, &res, masks, L), want, 1e-9 * want);
  ls_stage_call two_full[2] = {{NULL, 15, 0, 5}, {NULL, 12, 0, 2}};
  double full = ls_predict_stage_ms(&prof, NULL, 20, 0, 7) + ls_predict_group_ms(&prof, NULL, 0, 0, two_full, 2);
  ck_assert_double_eq_tol(ls_search_predict_ms(&prof, &res, NULL, L), full, 1e-9 * full);
  /* the second stage's calls took their first 10 positions from the cache: the first call ran 4
   * of them (positions 6..9) once for both */
  calls[1].n_reused = calls[2].n_reused = 10;
  calls[1].n_cached = 6;
  calls[2].n_cached = 10;
  ls_stage_call suffixes[2] = {{masks + L, 5, 10, 5}, {masks + L, 2, 10, 2}};
  double reused = ls_predict_stage_ms(&prof, masks, 20, 0, 7) + ls_predict_group_ms(&prof, masks + L, 4, 6, suffixes, 2);
  ck_assert_double_eq_tol(ls_search_predict_ms(&prof, &res, masks, L), reused, 1e-9 * reused);
  ck_assert(reused < want);
  free(masks);
}
END_TEST

int main(void) {
  Suite *s = suite_create("predict");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, decode_calls_match_the_engine);
  tcase_add_test(tc, prediction_uses_decode_calls);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
