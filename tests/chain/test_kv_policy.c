/* KV policies and per-option batching on stories260K: `reuse` gives every
 * stage's tokens exactly as `recompute` does (story template with the
 * committed schedule, with a schedule whose stages all have different masks,
 * and OBQA's Recall / Analyze per option / Summarize), while actually reusing
 * cached prompt positions; options decoded together in one batch give the
 * tokens each option gets alone, also when one option stops early (early
 * exit) and the others go on; several examples at once likewise. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_dataset.h"
#include "ls_gen_memo.h"
#include "ls_pipeline.h"
#include "ls_schedule.h"
#include "ls_template.h"
#include "ls_test.h"

static void open_engine(ls_engine *e, int n_seq) {
  ls_err err = {0};
  ls_engine_params p = {.model_path = ls_test_data("models/stories260K/stories260K.bin"),
                        .tokenizer_path = ls_test_data("models/stories260K/tok512.bin"),
                        .n_threads = 2, .n_seq = n_seq, .top_p = 1.0f, .need_tokenizer = 1};
  ck_assert_msg(ls_engine_open(e, &p, &err) == 0, "%s", err.msg);
}

/* Every call of every stage: same prompt tokens, same generated tokens, same stop. */
static void assert_same_tokens(const ls_example_result *a, const ls_example_result *b, const char *what) {
  ck_assert_int_eq(a->n_stages, b->n_stages);
  for (int s = 0; s < a->n_stages; s++) {
    ck_assert_int_eq(a->stages[s].n_calls, b->stages[s].n_calls);
    for (int k = 0; k < a->stages[s].n_calls; k++) {
      const ls_call_result *x = &a->stages[s].calls[k], *y = &b->stages[s].calls[k];
      ck_assert_msg(x->n_prompt == y->n_prompt && x->n_generated == y->n_generated && x->stop == y->stop,
                    "%s: stage %d call %d: %d+%d tokens (stop %d) vs %d+%d (stop %d)", what, s, k, x->n_prompt,
                    x->n_generated, x->stop, y->n_prompt, y->n_generated, y->stop);
      ck_assert_msg(!memcmp(x->prompt_tokens, y->prompt_tokens, sizeof(int) * (size_t)x->n_prompt), "%s", what);
      ck_assert_msg(!memcmp(x->tokens, y->tokens, sizeof(int) * (size_t)x->n_generated),
                    "%s: stage %d call %d: different tokens", what, s, k);
      ck_assert_str_eq(x->text, y->text);
    }
  }
}

static long reused(const ls_example_result *r) {
  long n = 0;
  for (int s = 0; s < r->n_stages; s++) n += r->stages[s].reused_tokens;
  return n;
}

/* Runs the dataset under `recompute` on engine a and under `policy` on engine
 * b and compares; returns the prompt positions b reused. */
static long compare_runs(ls_engine *a, ls_engine *b, int policy, const ls_template *t, const ls_dataset *ds,
                         const ls_stage_plan *plans, const char *what) {
  ls_err err = {0};
  long n_reused = 0;
  a->kv_policy = LS_KV_RECOMPUTE;
  b->kv_policy = policy;
  for (int i = 0; i < ds->n; i++) {
    ls_example_result x, y;
    ck_assert_msg(ls_pipeline_run(a, t, &ds->ex[i], plans, &x, &err) == 0, "%s", err.msg);
    ck_assert_msg(ls_pipeline_run(b, t, &ds->ex[i], plans, &y, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(reused(&x), 0);
    assert_same_tokens(&x, &y, what);
    n_reused += reused(&y);
    ls_example_result_free(&x);
    ls_example_result_free(&y);
  }
  return n_reused;
}

static void plans_for(const char *schedule_path, const char *text, const ls_template *t, int n_layers,
                      uint8_t *masks, ls_stage_plan *plans) {
  ls_err err = {0};
  ls_schedule *s;
  if (schedule_path) ck_assert_msg(ls_schedule_read(schedule_path, &s, &err) == 0, "%s", err.msg);
  else ck_assert_msg(ls_schedule_parse(text, "test schedule", &s, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(s->n_stages, t->n_stages);
  ck_assert_msg(ls_plans_from_schedule(s, n_layers, masks, plans, &err) == 0, "%s", err.msg);
  ls_schedule_free(s);
}

START_TEST(story_reuse_equals_recompute) {
  ls_err err = {0};
  ls_engine a, b;
  open_engine(&a, 1);
  open_engine(&b, 1);
  ls_template *t;
  ls_dataset *ds;
  ck_assert_int_eq(ls_template_load(ls_test_data("templates/story.json"), &t, &err), 0);
  ck_assert_int_eq(ls_dataset_load(ls_test_data("corpora/tinystories_val_subset.txt"), LS_DS_STORIES, &ds, &err), 0);
  ck_assert_int_eq(ls_dataset_select(ds, 5, 0, 1, &err), 0);
  int L = a.model.cfg.n_layers;
  uint8_t masks[LS_TEMPLATE_MAX_STAGES * 64];
  ls_stage_plan plans[LS_TEMPLATE_MAX_STAGES];
  /* the committed schedule (its last stage skips L2.attn), the full model, and
   * a schedule whose three stages all have different masks */
  char sched[4096];
  snprintf(sched, sizeof sched, "%s/../schedules/story-stories260K.json", ls_test_data(""));
  plans_for(sched, NULL, t, L, masks, plans);
  ck_assert_int_gt(compare_runs(&a, &b, LS_KV_REUSE, t, ds, plans, "committed schedule"), 0);
  ck_assert_int_gt(compare_runs(&a, &b, LS_KV_REUSE, t, ds, NULL, "full model"), 0);
  const char *diff = "{\"schema_version\": 1, \"stages\": ["
                     "{\"name\": \"beginning\", \"skip\": [\"L1.ffn\"]},"
                     "{\"name\": \"middle\", \"skip\": [\"L3.attn\", \"L0.ffn\"]},"
                     "{\"name\": \"end\", \"skip\": [\"L4.attn\"], \"early_exit\": {\"window\": 4, \"threshold\": 0.3}}]}";
  plans_for(NULL, diff, t, L, masks, plans);
  compare_runs(&a, &b, LS_KV_REUSE, t, ds, plans, "different masks");
  ls_dataset_free(ds);
  ls_template_free(t);
  ls_engine_close(&a);
  ls_engine_close(&b);
}
END_TEST

/* OBQA's chain with the token caps (40/30/12). */
static ls_template *obqa_capped(void) {
  ls_err err = {0};
  ls_template *t;
  ck_assert_int_eq(ls_template_load(ls_test_data("templates/obqa.json"), &t, &err), 0);
  const int caps[] = {40, 30, 12};
  ck_assert_int_eq(t->n_stages, 3);
  for (int s = 0; s < 3; s++) t->stages[s].max_new_tokens = caps[s];
  ck_assert(t->stages[1].per_option);
  return t;
}

START_TEST(obqa_options_batched_equal_alone) {
  ls_err err = {0};
  ls_engine alone, batched;
  open_engine(&alone, 1);
  open_engine(&batched, 4);
  ls_template *t = obqa_capped();
  ls_dataset *ds;
  ck_assert_int_eq(ls_dataset_load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO, &ds, &err), 0);
  ck_assert_int_eq(ls_dataset_select(ds, 3, 0, 1, &err), 0);
  ck_assert_int_eq(ds->ex[0].n_options, 4);
  /* one slot, every call alone and recomputed, vs four slots with reuse and recompute */
  ck_assert_int_gt(compare_runs(&alone, &batched, LS_KV_REUSE, t, ds, NULL, "obqa reuse, batched"), 0);
  compare_runs(&alone, &batched, LS_KV_RECOMPUTE, t, ds, NULL, "obqa recompute, batched");
  /* early exit on the Analyze stage: some options stop early, the others go
   * on, and each option's tokens are those it gets alone */
  int L = alone.model.cfg.n_layers;
  uint8_t masks[3 * 64];
  ls_stage_plan plans[3];
  const char *ee = "{\"schema_version\": 1, \"stages\": [{\"name\": \"recall\"},"
                   "{\"name\": \"analyze\", \"skip\": [\"L2.ffn\"], \"early_exit\": {\"window\": 3, \"threshold\": 0.3}},"
                   "{\"name\": \"summarize\", \"skip\": [\"L2.ffn\"]}]}";
  plans_for(NULL, ee, t, L, masks, plans);
  compare_runs(&alone, &batched, LS_KV_REUSE, t, ds, plans, "obqa early exit, batched");
  int mixed = 0;
  batched.kv_policy = LS_KV_REUSE;
  for (int i = 0; i < ds->n; i++) {
    ls_example_result r;
    ck_assert_int_eq(ls_pipeline_run(&batched, t, &ds->ex[i], plans, &r, &err), 0);
    int exits = r.stages[1].early_exits;
    mixed += exits > 0 && exits < r.stages[1].n_calls;
    ls_example_result_free(&r);
  }
  ck_assert_msg(mixed > 0, "no example had both early-exiting and continuing options: the test proves nothing");
  ls_dataset_free(ds);
  ls_template_free(t);
  ls_engine_close(&alone);
  ls_engine_close(&batched);
}
END_TEST

/* shared-prefix reuses positions computed under a mask that ran every
 * attention sub-layer the later stage runs, so it reuses at least as much as
 * reuse; its schedules record the policy by name. */
START_TEST(shared_prefix_and_schedule_field) {
  ls_err err = {0};
  ls_schedule *s;
  ck_assert_int_eq(ls_schedule_parse("{\"schema_version\": 1, \"kv_policy\": \"shared-prefix\", \"stages\": "
                                     "[{\"name\": \"a\"}]}", "t", &s, &err), 0);
  ck_assert_int_eq(s->kv_policy, LS_KV_SHARED_PREFIX);
  ls_schedule_free(s);
  ck_assert_int_eq(ls_schedule_parse("{\"schema_version\": 1, \"stages\": [{\"name\": \"a\"}]}", "t", &s, &err), 0);
  ck_assert_int_eq(s->kv_policy, LS_KV_REUSE);
  ls_schedule_free(s);
  ck_assert_int_ne(ls_schedule_parse("{\"schema_version\": 1, \"kv_policy\": \"keep\", \"stages\": "
                                     "[{\"name\": \"a\"}]}", "t.json", &s, &err), 0);
  ck_assert_msg(strstr(err.msg, "t.json") && strstr(err.msg, "keep"), "%s", err.msg);

  ls_engine e;
  open_engine(&e, 1);
  ls_template *t;
  ls_dataset *ds;
  ck_assert_int_eq(ls_template_load(ls_test_data("templates/story.json"), &t, &err), 0);
  ck_assert_int_eq(ls_dataset_load(ls_test_data("corpora/tinystories_val_subset.txt"), LS_DS_STORIES, &ds, &err), 0);
  ck_assert_int_eq(ls_dataset_select(ds, 4, 0, 1, &err), 0);
  uint8_t masks[3 * 64];
  ls_stage_plan plans[3];
  char sched[4096];
  snprintf(sched, sizeof sched, "%s/../schedules/story-stories260K.json", ls_test_data(""));
  plans_for(sched, NULL, t, e.model.cfg.n_layers, masks, plans);
  long by_policy[3] = {0};
  for (int pol = 0; pol < 3; pol++) {
    e.kv_policy = pol;
    for (int i = 0; i < ds->n; i++) {
      ls_example_result r;
      ck_assert_int_eq(ls_pipeline_run(&e, t, &ds->ex[i], plans, &r, &err), 0);
      by_policy[pol] += reused(&r);
      ls_example_result_free(&r);
    }
  }
  ck_assert_int_eq(by_policy[LS_KV_RECOMPUTE], 0);
  /* the last stage skips L2.attn: shared-prefix reuses the earlier stages' positions there too */
  ck_assert_int_gt(by_policy[LS_KV_SHARED_PREFIX], by_policy[LS_KV_REUSE]);
  ls_dataset_free(ds);
  ls_template_free(t);
  ls_engine_close(&e);
}
END_TEST

/* pipeline --parallel: several examples at once in shared batches (lanes of
 * slots, a finished example's lane taking the next; stages with different
 * masks in flight together) give each example the tokens it gets alone. */
START_TEST(examples_in_parallel_equal_alone) {
  ls_err err = {0};
  ls_engine alone, many;
  open_engine(&alone, 4);
  open_engine(&many, 12);
  ls_template *t = obqa_capped();
  ls_dataset *ds;
  ck_assert_int_eq(ls_dataset_load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO, &ds, &err), 0);
  ck_assert_int_eq(ls_dataset_select(ds, 4, 0, 1, &err), 0);
  uint8_t masks[3 * 64];
  ls_stage_plan plans[3];
  const char *sched = "{\"schema_version\": 1, \"stages\": [{\"name\": \"recall\", \"skip\": [\"L1.attn\"]},"
                      "{\"name\": \"analyze\", \"skip\": [\"L2.ffn\"], \"early_exit\": {\"window\": 3, \"threshold\": 0.3}},"
                      "{\"name\": \"summarize\"}]}";
  plans_for(NULL, sched, t, alone.model.cfg.n_layers, masks, plans);
  ls_example_result res[4];
  ck_assert_msg(ls_pipeline_run_many(&many, t, ds->ex, ds->n, plans, 3, res, &err) == 0, "%s", err.msg);
  for (int i = 0; i < ds->n; i++) {
    ls_example_result r;
    ck_assert_int_eq(ls_pipeline_run(&alone, t, &ds->ex[i], plans, &r, &err), 0);
    assert_same_tokens(&r, &res[i], "3 examples at once");
    ls_example_result_free(&r);
    ls_example_result_free(&res[i]);
  }
  ls_dataset_free(ds);
  ls_template_free(t);
  ls_engine_close(&alone);
  ls_engine_close(&many);
}
END_TEST

/* The search's batched scoring: teacher forcing several examples at once
 * (forced requests, a per-option stage's calls together, prefixes reused)
 * gives every example and stage the fidelity ls_pipeline_fidelity gives it
 * alone, bit for bit, for 1, 2 and 3 lanes, under reuse and recompute and
 * with stages of different masks and early exit; shared-prefix reuses more. */
START_TEST(fidelity_batched_equals_alone) {
  ls_err err = {0};
  ls_engine alone, many;
  open_engine(&alone, 1);
  open_engine(&many, 12);
  ls_template *t = obqa_capped();
  ls_dataset *ds;
  ck_assert_int_eq(ls_dataset_load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO, &ds, &err), 0);
  ck_assert_int_eq(ls_dataset_select(ds, 5, 0, 1, &err), 0);
  enum { N = 5 };
  ls_example_result ref[N];
  for (int i = 0; i < N; i++) ck_assert_int_eq(ls_pipeline_run(&alone, t, &ds->ex[i], NULL, &ref[i], &err), 0);
  uint8_t masks[3 * 64];
  ls_stage_plan plans[3];
  const char *sched = "{\"schema_version\": 1, \"stages\": [{\"name\": \"recall\", \"skip\": [\"L1.attn\"]},"
                      "{\"name\": \"analyze\", \"skip\": [\"L2.ffn\", \"L3.attn\"], "
                      "\"early_exit\": {\"window\": 3, \"threshold\": 0.3}},"
                      "{\"name\": \"summarize\", \"skip\": [\"L1.attn\"]}]}";
  plans_for(NULL, sched, t, alone.model.cfg.n_layers, masks, plans);
  const ls_stage_plan *cases[] = {NULL, plans};
  double want[2][N], want_st[2][N][3];
  alone.kv_policy = LS_KV_RECOMPUTE;
  for (int c = 0; c < 2; c++)
    for (int i = 0; i < N; i++)
      ck_assert_int_eq(ls_pipeline_fidelity(&alone, t, cases[c], &ref[i], &want[c][i], want_st[c][i], &err), 0);
  ck_assert_msg(want[1][0] < 1.0 || want[1][1] < 1.0, "the skipping plan scores as the full model: proves nothing");
  const int policies[] = {LS_KV_REUSE, LS_KV_RECOMPUTE};
  for (int pol = 0; pol < 2; pol++)
    for (int lanes = 1; lanes <= 3; lanes++)
      for (int c = 0; c < 2; c++) {
        many.kv_policy = policies[pol];
        ls_engine_clear_cache(&many);
        double got[N], got_st[N][3];
        ck_assert_msg(ls_pipeline_fidelity_many(&many, t, cases[c], ref, N, lanes, NULL, got, &got_st[0][0], &err) == 0,
                      "%s", err.msg);
        for (int i = 0; i < N; i++) {
          ck_assert_msg(got[i] == want[c][i], "policy %d, %d lanes, plan %d, example %d: %.17g vs %.17g alone", pol,
                        lanes, c, i, got[i], want[c][i]);
          ck_assert(!memcmp(got_st[i], want_st[c][i], sizeof got_st[i]));
        }
      }
  /* stages given (remembered by the caller) are not run, and the mean over stages is the same bits */
  uint8_t given[N][3];
  double part[N][3], got[N];
  for (int i = 0; i < N; i++)
    for (int st = 0; st < 3; st++) {
      given[i][st] = (uint8_t)((i + st) % 2);
      part[i][st] = given[i][st] ? want_st[1][i][st] : -1.0;
    }
  many.kv_policy = LS_KV_REUSE;
  ck_assert_msg(ls_pipeline_fidelity_many(&many, t, plans, ref, N, 2, &given[0][0], got, &part[0][0], &err) == 0, "%s",
                err.msg);
  for (int i = 0; i < N; i++) {
    ck_assert_msg(got[i] == want[1][i], "example %d with given stages: %.17g vs %.17g", i, got[i], want[1][i]);
    ck_assert(!memcmp(part[i], want_st[1][i], sizeof part[i]));
  }
  /* shared-prefix scores the later stages on the earlier stages' cache: it runs (and may differ) */
  many.kv_policy = LS_KV_SHARED_PREFIX;
  ls_engine_clear_cache(&many);
  double shared[N];
  ck_assert_msg(ls_pipeline_fidelity_many(&many, t, plans, ref, N, 2, NULL, shared, NULL, &err) == 0, "%s", err.msg);
  for (int i = 0; i < N; i++) ck_assert(shared[i] >= 0.0 && shared[i] <= 1.0);
  for (int i = 0; i < N; i++) ls_example_result_free(&ref[i]);
  ls_dataset_free(ds);
  ls_template_free(t);
  ls_engine_close(&alone);
  ls_engine_close(&many);
}
END_TEST

/* The generation memory (ls_gen_memo.h): runs of the same examples whose
 * plans differ from a remembered run's in a later stage replay the earlier
 * groups (prefilled or only held) and give every call the tokens, texts,
 * stops and reuse counts generating everything gives, under each KV policy,
 * with 2 examples at once. */
START_TEST(gen_memo_replay_equals_generation) {
  ls_err err = {0};
  ls_engine fresh, memo_e;
  open_engine(&fresh, 8);
  open_engine(&memo_e, 8);
  ls_template *t = obqa_capped();
  ls_dataset *ds;
  ck_assert_int_eq(ls_dataset_load(ls_test_data("datasets/obqa/dev.jsonl"), LS_DS_AUTO, &ds, &err), 0);
  ck_assert_int_eq(ls_dataset_select(ds, 3, 0, 1, &err), 0);
  const char *scheds[] = {
      "{\"schema_version\": 1, \"stages\": [{\"name\": \"recall\"}, {\"name\": \"analyze\"}, {\"name\": \"summarize\"}]}",
      "{\"schema_version\": 1, \"stages\": [{\"name\": \"recall\"}, {\"name\": \"analyze\"},"
      "{\"name\": \"summarize\", \"skip\": [\"L1.attn\"]}]}",
      "{\"schema_version\": 1, \"stages\": [{\"name\": \"recall\"}, {\"name\": \"analyze\", \"skip\": [\"L2.ffn\"],"
      "\"early_exit\": {\"window\": 3, \"threshold\": 0.3}}, {\"name\": \"summarize\"}]}"};
  const int policies[] = {LS_KV_REUSE, LS_KV_RECOMPUTE, LS_KV_SHARED_PREFIX};
  int n_layers = fresh.model.cfg.n_layers;
  for (int pol = 0; pol < 3; pol++) {
    fresh.kv_policy = memo_e.kv_policy = policies[pol];
    ls_gen_memo m;
    ls_gen_memo_init(&m, n_layers);
    for (int k = 0; k < 3; k++) {
      uint8_t masks[3 * 64];
      ls_stage_plan plans[3];
      plans_for(NULL, scheds[k], t, n_layers, masks, plans);
      ls_example_result a[3], b[3];
      ls_engine_clear_cache(&fresh);
      ls_engine_clear_cache(&memo_e);
      ck_assert_msg(ls_pipeline_run_many(&fresh, t, ds->ex, ds->n, plans, 2, a, &err) == 0, "%s", err.msg);
      ck_assert_msg(ls_pipeline_run_memo(&memo_e, t, ds->ex, ds->n, plans, 2, &m, 0, b, &err) == 0, "%s", err.msg);
      for (int i = 0; i < ds->n; i++) {
        assert_same_tokens(&a[i], &b[i], "replayed");
        ck_assert_int_eq(a[i].answer, b[i].answer);
        for (int st = 0; st < 3; st++)
          for (int c = 0; c < a[i].stages[st].n_calls; c++) {
            const ls_call_result *x = &a[i].stages[st].calls[c], *y = &b[i].stages[st].calls[c];
            ck_assert_msg(x->n_reused == y->n_reused && x->n_cached == y->n_cached,
                          "policy %d, plans %d, example %d stage %d call %d: reused %d/%d vs %d/%d", pol, k, i, st, c,
                          x->n_reused, x->n_cached, y->n_reused, y->n_cached);
          }
        ls_example_result_free(&a[i]);
        ls_example_result_free(&b[i]);
      }
    }
    /* the second and third runs start like the first: something was replayed, and (recompute) held */
    ck_assert_int_gt(m.groups_replayed, 0);
    if (policies[pol] == LS_KV_RECOMPUTE) ck_assert_int_eq(m.groups_held, m.groups_replayed);
    ls_gen_memo_free(&m);
  }
  ls_dataset_free(ds);
  ls_template_free(t);
  ls_engine_close(&fresh);
  ls_engine_close(&memo_e);
}
END_TEST

int main(void) {
Suite *s = suite_create("kv_policy");
  TCase *tc = tcase_create("stories260K");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, story_reuse_equals_recompute);
  tcase_add_test(tc, obqa_options_batched_equal_alone);
  tcase_add_test(tc, shared_prefix_and_schedule_field);
  tcase_add_test(tc, examples_in_parallel_equal_alone);
  tcase_add_test(tc, fidelity_batched_equals_alone);
  tcase_add_test(tc, gen_memo_replay_equals_generation);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
