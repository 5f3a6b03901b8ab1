/* The multi-stage chain on stories260K with the story template: schedules,
 * skip masks and early exit change what runs, and nothing else. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ls_dataset.h"
#include "ls_pipeline.h"
#include "ls_schedule.h"
#include "ls_strbuf.h"
#include "ls_template.h"
#include "ls_test.h"

static ls_engine eng;
static ls_template *tmpl;
static ls_dataset *ds;

static void setup(void) {
  ls_err err = {0};
  ls_engine_params p = {.model_path = ls_test_data("models/stories260K/stories260K.bin"),
                        .tokenizer_path = ls_test_data("models/stories260K/tok512.bin"),
                        .n_threads = 1, .top_p = 1.0f, .need_tokenizer = 1, .fingerprint = 1};
  ck_assert_msg(ls_engine_open(&eng, &p, &err) == 0, "%s", err.msg);
  ck_assert_msg(ls_template_load(ls_test_data("templates/story.json"), &tmpl, &err) == 0, "%s", err.msg);
  ck_assert_msg(ls_dataset_load(ls_test_data("corpora/tinystories_val_subset.txt"), LS_DS_STORIES, &ds, &err) == 0,
                "%s", err.msg);
  ck_assert_int_eq(ls_dataset_select(ds, 6, 0, 1, &err), 0);
}

static void teardown(void) {
  ls_dataset_free(ds);
  ls_template_free(tmpl);
  ls_engine_close(&eng);
}

START_TEST(empty_schedule_equals_plain_generation) {
  ls_err err = {0};
  ls_schedule *s;
  ck_assert_int_eq(ls_schedule_for_template(tmpl, &s, &err), 0);
  int n_layers = eng.model.cfg.n_layers;
  uint8_t *masks = calloc((size_t)tmpl->n_stages * n_layers, 1);
  ls_stage_plan plans[LS_TEMPLATE_MAX_STAGES];
  ck_assert_int_eq(ls_plans_from_schedule(s, n_layers, masks, plans, &err), 0);
  for (int i = 0; i < ds->n; i++) {
    ls_example_result a, b;
    ck_assert_int_eq(ls_pipeline_run(&eng, tmpl, &ds->ex[i], plans, &a, &err), 0);
    ck_assert_int_eq(ls_pipeline_run(&eng, tmpl, &ds->ex[i], NULL, &b, &err), 0);
    ls_strbuf prompt;
    ls_strbuf_init(&prompt);
    ck_assert_int_eq(ls_template_render(tmpl, 0, &ds->ex[i], NULL, 0, &prompt, &err), 0);
    /* stage 1 by hand: plain generation with the stage's limits */
    ls_gen_request req = {.prompt = ls_strbuf_cstr(&prompt), .max_new_tokens = tmpl->stages[0].max_new_tokens,
                          .stops = (const char *const *)tmpl->stages[0].stop, .n_stops = tmpl->stages[0].n_stop,
                          .keep_stop = tmpl->stages[0].keep_stop};
    ls_gen_output out;
    ck_assert_int_eq(ls_engine_generate(&eng, &req, &out, &err), 0);
    ck_assert_str_eq(out.text, a.stages[0].calls[0].text);
    for (int st = 0; st < tmpl->n_stages; st++) {
      ck_assert_str_eq(a.stages[st].calls[0].text, b.stages[st].calls[0].text);
      ck_assert_int_eq(a.stages[st].n_generated, b.stages[st].n_generated);
      ck_assert_int_eq(a.stages[st].sublayers_executed, 2 * n_layers);
    }
    ls_strbuf_free(&prompt);
    ls_example_result_free(&a);
    ls_example_result_free(&b);
  }
  free(masks);
  ls_schedule_free(s);
}
END_TEST

/* Only the work is asserted: a test that compares times fails without a bug on
 * a loaded machine. What skipping gains in seconds is measured by bench/. */
START_TEST(skipping_runs_fewer_sublayers) {
  int n_layers = eng.model.cfg.n_layers;
  uint8_t mask[64] = {0};
  /* skip three of five layers entirely: 6 of 10 sub-layers */
  mask[1] = mask[2] = mask[3] = LS_SKIP_ATTN | LS_SKIP_FFN;
  ls_stage_plan plans[3] = {{.skip = mask}, {.skip = mask}, {.skip = mask}};
  ls_err err = {0};
  ls_example_result r;
  ck_assert_int_eq(ls_pipeline_run(&eng, tmpl, &ds->ex[0], plans, &r, &err), 0);
  for (int s = 0; s < r.n_stages; s++) ck_assert_int_eq(r.stages[s].sublayers_executed, 2 * n_layers - 6);
  ls_example_result_free(&r);
}
END_TEST

START_TEST(early_exit_shortens_stages) {
  ls_err err = {0};
  /* a threshold above any confidence ends every stage right after `window` tokens */
  ls_stage_plan plans[3] = {{.ee_window = 3, .ee_threshold = 1.0f},
                            {.ee_window = 3, .ee_threshold = 1.0f},
                            {.ee_window = 3, .ee_threshold = 1.0f}};
  for (int i = 0; i < ds->n; i++) {
    ls_example_result full, ee;
    ck_assert_int_eq(ls_pipeline_run(&eng, tmpl, &ds->ex[i], NULL, &full, &err), 0);
    ck_assert_int_eq(ls_pipeline_run(&eng, tmpl, &ds->ex[i], plans, &ee, &err), 0);
    for (int s = 0; s < 3; s++) {
      ck_assert_int_le(ee.stages[s].n_generated, 3);
      if (full.stages[s].n_generated > 3) {
        ck_assert_int_eq(ee.stages[s].early_exits, 1);
        ck_assert_int_lt(ee.stages[s].n_generated, full.stages[s].n_generated);
      }
    }
    /* fidelity does not reward truncation: stopping after 3 tokens loses the rest */
    double fid = 0, stage_fid[3];
    ck_assert_int_eq(ls_pipeline_fidelity(&eng, tmpl, plans, &full, &fid, stage_fid, &err), 0);
    double full_fid = 0;
    ck_assert_int_eq(ls_pipeline_fidelity(&eng, tmpl, NULL, &full, &full_fid, NULL, &err), 0);
    ck_assert(full_fid == 1.0); /* the full model reproduces itself */
    ck_assert(fid < 1.0);
    ls_example_result_free(&full);
    ls_example_result_free(&ee);
  }
}
END_TEST

START_TEST(fidelity_drops_when_skipping) {
  ls_err err = {0};
  uint8_t mask[64] = {0};
  for (int l = 0; l < eng.model.cfg.n_layers; l++) mask[l] = LS_SKIP_FFN;
  ls_stage_plan plans[3] = {{.skip = mask}, {.skip = mask}, {.skip = mask}};
  double sum = 0;
  for (int i = 0; i < ds->n; i++) {
    ls_example_result full;
    ck_assert_int_eq(ls_pipeline_run(&eng, tmpl, &ds->ex[i], NULL, &full, &err), 0);
    double fid;
    ck_assert_int_eq(ls_pipeline_fidelity(&eng, tmpl, plans, &full, &fid, NULL, &err), 0);
    ck_assert(fid >= 0.0 && fid <= 1.0);
    sum += fid;
    ls_example_result_free(&full);
  }
  ck_assert_msg(sum / ds->n < 0.95, "skipping every FFN should change predictions (mean fidelity %.3f)", sum / ds->n);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pipeline");
  TCase *tc = tcase_create("story");
  tcase_set_timeout(tc, 300);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, empty_schedule_equals_plain_generation);
  tcase_add_test(tc, skipping_runs_fewer_sublayers);
  tcase_add_test(tc, early_exit_shortens_stages);
  tcase_add_test(tc, fidelity_drops_when_skipping);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
