/* Schedules: round trip (write, read, write gives identical bytes and fields), masks, and one
 * distinct error for every kind of invalid schedule, each naming the schedule file. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_schedule.h"
#include "ls_util.h"
#include "ls_test.h"


static ls_template *obqa(void) {
  ls_template *t;
  ls_err err = {0};
  ck_assert_msg(ls_template_load(ls_test_data("templates/obqa.json"), &t, &err) == LS_OK, "%s", err.msg);
  return t;
}

#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static ls_schedule *full_schedule(const ls_template *t) {
  ls_schedule *s;
  ls_err err = {0};
  ck_assert_int_eq(ls_schedule_for_template(t, &s, &err), LS_OK);
  ck_assert_int_eq(ls_schedule_set_str(&s->model_name, "stories260K", &err), LS_OK);
  ck_assert_int_eq(ls_schedule_set_str(&s->model_fingerprint, FP, &err), LS_OK);
  ck_assert_int_eq(ls_schedule_set_str(&s->objective, "fidelity", &err), LS_OK);
  s->target = 0.95;
  s->achieved_score = 0.9612345678901234;
  s->reference_score = 1.0;
  s->predicted_latency_ms = 12.5;
  s->measured_latency_ms = 13.25;
  s->speedup = 1.3;
  ck_assert_int_eq(ls_schedule_set_str(&s->prov_job, "jobs/story.json", &err), LS_OK);
  ck_assert_int_eq(ls_schedule_set_str(&s->prov_results_file, "results \"quoted\".h5", &err), LS_OK);
  s->prov_candidate_id = 42;
  ck_assert_int_eq(ls_schedule_set_str(&s->prov_date, "2026-11-25T10:31:11Z", &err), LS_OK);
  ck_assert_int_eq(ls_schedule_set_str(&s->prov_commit, "abcdef123456", &err), LS_OK);
  ck_assert_int_eq(ls_sched_stage_add_skip(&s->stages[0], "L3.attn", &err), LS_OK);
  ck_assert_int_eq(ls_sched_stage_add_skip(&s->stages[0], "L1.ffn", &err), LS_OK);
  s->stages[0].ee_window = 4;
  s->stages[0].ee_threshold = 0.3f;
  ck_assert_int_eq(ls_sched_stage_add_skip(&s->stages[2], "L4.ffn", &err), LS_OK);
  return s;
}

static void assert_same(const ls_schedule *a, const ls_schedule *b) {
#define SEQ(f) ck_assert_msg((a->f == NULL && b->f == NULL) || (a->f && b->f && !strcmp(a->f, b->f)), #f)
#define NEQ(f) ck_assert_msg((isnan(a->f) && isnan(b->f)) || a->f == b->f, #f " %.17g %.17g", a->f, b->f)
  ck_assert_int_eq(a->schema_version, b->schema_version);
  SEQ(model_name);
  SEQ(model_fingerprint);
  SEQ(template_name);
  SEQ(template_path);
  SEQ(objective);
  NEQ(target);
  NEQ(achieved_score);
  NEQ(reference_score);
  NEQ(predicted_latency_ms);
  NEQ(measured_latency_ms);
  NEQ(speedup);
  SEQ(prov_job);
  SEQ(prov_results_file);
  SEQ(prov_date);
  SEQ(prov_commit);
  ck_assert_int_eq(a->prov_candidate_id, b->prov_candidate_id);
  ck_assert_int_eq(a->n_stages, b->n_stages);
  for (int i = 0; i < a->n_stages; i++) {
    ck_assert_str_eq(a->stages[i].name, b->stages[i].name);
    ck_assert_int_eq(a->stages[i].n_skip, b->stages[i].n_skip);
    for (int k = 0; k < a->stages[i].n_skip; k++) ck_assert_str_eq(a->stages[i].skip[k], b->stages[i].skip[k]);
    ck_assert_int_eq(a->stages[i].ee_window, b->stages[i].ee_window);
    ck_assert(a->stages[i].ee_threshold == b->stages[i].ee_threshold);
  }
#undef SEQ
#undef NEQ
}

START_TEST(round_trip) {
  ls_template *t = obqa();
  ls_schedule *s = full_schedule(t), *r = NULL;
  ls_err err = {0};
  const char *p1 = ls_test_tmp_path("s1.json"), *p2 = ls_test_tmp_path("s2.json");
  ck_assert_int_eq(ls_schedule_write(s, p1, &err), LS_OK);
  ck_assert_msg(ls_schedule_read(p1, &r, &err) == LS_OK, "%s", err.msg);
  assert_same(s, r);
  ck_assert_str_eq(r->path, p1);
  ck_assert_msg(ls_schedule_check(r, FP, 5, t, 0, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(ls_schedule_write(r, p2, &err), LS_OK);
  char *a, *b;
  size_t na, nb;
  ck_assert_int_eq(ls_read_file(p1, &a, &na, &err), LS_OK);
  ck_assert_int_eq(ls_read_file(p2, &b, &nb, &err), LS_OK);
  ck_assert_str_eq(a, b);
  /* people read these files: short reals, one-line skip lists */
  ck_assert_ptr_nonnull(strstr(a, "\"early_exit\": {\"window\": 4, \"threshold\": 0.3}"));
  ck_assert_ptr_nonnull(strstr(a, "\"skip\": [\"L3.attn\", \"L1.ffn\"]"));
  ck_assert_ptr_nonnull(strstr(a, "\"speedup\": 1.3,"));
  /* to_string/parse give the same */
  char *text;
  ls_schedule *q;
  ck_assert_int_eq(ls_schedule_to_string(s, &text, &err), LS_OK);
  ck_assert_str_eq(text, a);
  ck_assert_int_eq(ls_schedule_parse(text, "stored", &q, &err), LS_OK);
  assert_same(s, q);
  ck_assert_ptr_null(q->path);
  free(text);
  free(a);
  free(b);
  ls_schedule_free(q);
  ls_schedule_free(r);

  /* unknown values are null and read back as unknown */
  ls_schedule *e, *er;
  ck_assert_int_eq(ls_schedule_for_template(t, &e, &err), LS_OK);
  ck_assert_int_eq(ls_schedule_write(e, p1, &err), LS_OK);
  ck_assert_int_eq(ls_schedule_read(p1, &er, &err), LS_OK);
  assert_same(e, er);
  ck_assert(isnan(er->speedup));
  ck_assert_int_eq((int)er->prov_candidate_id, -1);
  ck_assert_ptr_null(er->model_fingerprint);
  /* no fingerprint: nothing to compare */
  ck_assert_int_eq(ls_schedule_check(er, FP, 5, t, 0, &err), LS_OK);
  ls_schedule_free(e);
  ls_schedule_free(er);
  ls_schedule_free(s);
  ls_template_free(t);
}
END_TEST

/* Text that JSON cannot hold (not UTF-8, e.g. a name from a damaged store) is refused by the
 * writer, naming the field, instead of becoming a null that does not read back. */
START_TEST(non_utf8_text_refused) {
  ls_template *t = obqa();
  ls_schedule *s = full_schedule(t);
  ls_err err = {0};
  ck_assert_int_eq(ls_schedule_set_str(&s->stages[1].name, "Analyze\xff", &err), LS_OK);
  char *text = NULL;
  ck_assert_int_eq(ls_schedule_to_string(s, &text, &err), LS_EFORMAT);
  ck_assert_ptr_null(text);
  ck_assert_msg(strstr(err.msg, "a stage's name is not UTF-8 text") != NULL, "%s", err.msg);
  const char *p = ls_test_tmp_path("bad-utf8.json");
  ck_assert_int_eq(ls_schedule_write(s, p, &err), LS_EFORMAT);
  ck_assert_int_ne(access(p, F_OK), 0); /* nothing written */
  ls_schedule_free(s);
  ls_template_free(t);
}
END_TEST

START_TEST(masks_and_names) {
  ls_err err = {0};
  int layer, kind;
  ck_assert_int_eq(ls_sublayer_name_parse("L0.attn", 5, &layer, &kind, &err), LS_OK);
  ck_assert_int_eq(layer, 0);
  ck_assert_int_eq(kind, LS_SUBLAYER_ATTN);
  ck_assert_int_eq(ls_sublayer_name_parse("L17.ffn", 0, &layer, &kind, &err), LS_OK);
  ck_assert_int_eq(layer, 17);
  ck_assert_int_eq(kind, LS_SUBLAYER_FFN);
  const char *bad[] = {"L5.attn", "l3.attn", "L3.Attn", "L3.att", "L3", "3.attn", "L03.ffn", "L-1.ffn", "L+1.ffn",
                       "L3.attn ", " L3.attn", "L.ffn", "", "L3.ffnx", "L99999999999.ffn"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(ls_sublayer_name_parse(bad[i], 5, &layer, &kind, &err) == LS_EINVAL, "accepted \"%s\"", bad[i]);
    ck_assert_ptr_nonnull(strstr(err.msg, "sub-layer"));
  }
  char buf[24];
  for (int l = 0; l < 30; l++)
    for (int k = LS_SUBLAYER_ATTN; k <= LS_SUBLAYER_FFN; k++) {
      ls_sublayer_name_format(l, k, buf, sizeof buf);
      ck_assert_int_eq(ls_sublayer_name_parse(buf, 30, &layer, &kind, &err), LS_OK);
      ck_assert_int_eq(layer, l);
      ck_assert_int_eq(kind, k);
    }
  /* a sub-layer index (2 * layer + (0 attn, 1 ffn)) names the same sub-layer */
  for (int i = 0; i < 60; i++) {
    ls_sublayer_index_name(i, buf, sizeof buf);
    ck_assert_int_eq(ls_sublayer_name_parse(buf, 30, &layer, &kind, &err), LS_OK);
    ck_assert_int_eq(2 * layer + (kind == LS_SUBLAYER_FFN), i);
  }

  ls_schedule *s;
  ck_assert_int_eq(ls_schedule_new(1, &s, &err), LS_OK);
  uint8_t mask[5] = {LS_SUBLAYER_ATTN, 0, LS_SUBLAYER_ATTN | LS_SUBLAYER_FFN, 0, LS_SUBLAYER_FFN}, back[5];
  ck_assert_int_eq(ls_sched_stage_set_mask(&s->stages[0], mask, 5, &err), LS_OK);
  ck_assert_int_eq(s->stages[0].n_skip, 4);
  ck_assert_str_eq(s->stages[0].skip[0], "L0.attn");
  ck_assert_str_eq(s->stages[0].skip[1], "L2.attn");
  ck_assert_str_eq(s->stages[0].skip[2], "L2.ffn");
  ck_assert_str_eq(s->stages[0].skip[3], "L4.ffn");
  memset(back, 0xff, sizeof back);
  ck_assert_int_eq(ls_sched_stage_mask(&s->stages[0], 5, back, &err), LS_OK);
  ck_assert_mem_eq(back, mask, 5);
  /* a mask for a smaller model refuses the layer it lacks */
  ck_assert_int_eq(ls_sched_stage_mask(&s->stages[0], 4, back, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "L4.ffn"));
  ls_schedule_free(s);
}
END_TEST

/* A valid schedule text with one substitution, for the error table. */
static const char *VALID =
    "{\n"
    "  \"schema_version\": 1,\n"
    "  \"model\": {\"name\": \"m\", \"fingerprint\": \"" FP "\"},\n"
    "  \"template\": {\"name\": \"obqa-tinythinker\", \"path\": \"t.json\"},\n"
    "  \"objective\": \"accuracy\",\n"
    "  \"stages\": [\n"
    "    {\"name\": \"recall\", \"skip\": [\"L1.attn\"], \"early_exit\": {\"window\": 4, \"threshold\": 0.5}},\n"
    "    {\"name\": \"analyze\", \"skip\": []},\n"
    "    {\"name\": \"summarize\", \"skip\": [\"L4.ffn\"]}\n"
    "  ]\n"
    "}\n";

static const char *replaced(const char *from, const char *to) {
  static char buf[4096];
  const char *p = strstr(VALID, from);
  ck_assert_msg(p != NULL, "%s", from);
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - VALID), VALID, to, p + strlen(from));
  return buf;
}

START_TEST(invalid_schedules) {
  ls_template *t = obqa();
  ls_err err = {0};
  /* the unmodified text is valid for a 5-layer model */
  const char *ok = ls_test_write_tmp("ok.json", VALID);
  ls_schedule *s;
  ck_assert_msg(ls_schedule_read(ok, &s, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_schedule_check(s, FP, 5, t, 0, &err) == LS_OK, "%s", err.msg);
  ls_schedule_free(s);

  /* errors found when reading */
  static const struct {
    const char *from, *to, *want;
    int code;
  } rd[] = {
      {"\"objective\": \"accuracy\",", "\"objective\": \"accuracy\"", ":6:", LS_EFORMAT},
      {"\"schema_version\": 1", "\"schema_version\": 2", "schema_version 2 is not supported", LS_EUNSUPPORTED},
      {"\"schema_version\": 1,\n", "", "missing key \"schema_version\"", LS_EFORMAT},
      {"\"objective\"", "\"objectiv\"", "unknown key \"objectiv\"", LS_EFORMAT},
      {"\"fingerprint\": \"0123", "\"fingerprint\": \"X123", "is not a SHA-256", LS_EFORMAT},
      {"[\"L1.attn\"]", "[\"L1.att\"]", "stages[0]: sub-layer \"L1.att\": expected L<layer>.attn", LS_EFORMAT},
      {"[\"L1.attn\"]", "[\"L01.attn\"]", "leading zero", LS_EFORMAT},
      {"[\"L1.attn\"]", "[\"L1.attn\", \"L1.attn\"]", "sub-layer \"L1.attn\" is listed twice", LS_EFORMAT},
      {"[\"L1.attn\"]", "[1]", "skip[0] is not a string", LS_EFORMAT},
      {"\"window\": 4", "\"window\": 65", "early-exit window 65 is out of range", LS_EFORMAT},
      {"\"window\": 4", "\"window\": -2", "early-exit window -2 is out of range", LS_EFORMAT},
      {"\"window\": 4", "\"window\": 4.5", "key \"window\": expected an integer", LS_EFORMAT},
      {"\"threshold\": 0.5", "\"threshold\": 1.5", "early-exit threshold 1.5 is out of range", LS_EFORMAT},
      {"\"threshold\": 0.5", "\"threshold\": -0.5", "early-exit threshold -0.5 is out of range", LS_EFORMAT},
      {"\"threshold\": 0.5", "\"threshold\": \"0.5\"", "key \"threshold\": expected a number", LS_EFORMAT},
      {", \"threshold\": 0.5", "", "missing key \"threshold\"", LS_EFORMAT},
      {"{\"name\": \"analyze\", \"skip\": []}", "{\"name\": \"recall\", \"skip\": []}", "duplicate stage name \"recall\"",
       LS_EFORMAT},
      {"{\"name\": \"analyze\", \"skip\": []}", "{\"skip\": []}", "stages[1]: missing key \"name\"", LS_EFORMAT},
  };
  for (size_t i = 0; i < sizeof rd / sizeof rd[0]; i++) {
    const char *p = ls_test_write_tmp("bad.json", replaced(rd[i].from, rd[i].to));
    s = (ls_schedule *)1;
    int rc = ls_schedule_read(p, &s, &err);
    ck_assert_msg(rc == rd[i].code, "read case %zu: rc %d: %s", i, rc, err.msg);
    ck_assert_ptr_null(s);
    ck_assert_msg(strncmp(err.msg, p, strlen(p)) == 0, "read case %zu: file not named: %s", i, err.msg);
    ck_assert_msg(strstr(err.msg, rd[i].want) != NULL, "read case %zu: \"%s\" not in: %s", i, rd[i].want, err.msg);
  }

  /* errors found when checking against the model and the template */
  static const struct {
    const char *from, *to, *want;
  } ck[] = {
      {"\"fingerprint\": \"0123", "\"fingerprint\": \"1123", "made for model fingerprint 1123456789ab..., but this model "
                                                            "is 0123456789ab..."},
      {"[\"L4.ffn\"]", "[\"L5.ffn\"]", "stage \"summarize\": sub-layer \"L5.ffn\": layer 5 does not exist (the model "
                                       "has 5 layers"},
      {"    {\"name\": \"summarize\", \"skip\": [\"L4.ffn\"]}\n", "", "x"},
      {"\"name\": \"analyze\"", "\"name\": \"analyse\"", "stage 1 is \"analyse\", but template"},
  };
  for (size_t i = 0; i < sizeof ck / sizeof ck[0]; i++) {
    const char *text = replaced(ck[i].from, ck[i].to);
    char fixed[4096];
    /* the stage-count case: drop the trailing comma left behind */
    snprintf(fixed, sizeof fixed, "%s", text);
    char *comma = strstr(fixed, "[]},\n  ]");
    if (comma) memmove(comma + 3, comma + 4, strlen(comma + 4) + 1);
    const char *p = ls_test_write_tmp("bad.json", fixed);
    ck_assert_msg(ls_schedule_read(p, &s, &err) == LS_OK, "check case %zu: %s", i, err.msg);
    int rc = ls_schedule_check(s, FP, 5, t, 0, &err);
    ck_assert_msg(rc == LS_EMISMATCH, "check case %zu: rc %d: %s", i, rc, err.msg);
    ck_assert_msg(strncmp(err.msg, p, strlen(p)) == 0, "check case %zu: file not named: %s", i, err.msg);
    if (i == 2) ck_assert_msg(strstr(err.msg, "2 stages, but template") != NULL, "%s", err.msg);
    else ck_assert_msg(strstr(err.msg, ck[i].want) != NULL, "check case %zu: \"%s\" not in: %s", i, ck[i].want, err.msg);
    if (i == 0) {
      ck_assert_ptr_nonnull(strstr(err.msg, "--ignore-fingerprint"));
      ck_assert_int_eq(ls_schedule_check(s, FP, 5, t, 1, &err), LS_OK);
    }
    ls_schedule_free(s);
  }

  /* a schedule built in memory is named "schedule"; early-exit values set in memory are checked too */
  ls_schedule *m;
  ck_assert_int_eq(ls_schedule_for_template(t, &m, &err), LS_OK);
  m->stages[1].ee_window = 100;
  ck_assert_int_eq(ls_schedule_check(m, NULL, 5, t, 0, &err), LS_EFORMAT);
  ck_assert_ptr_nonnull(strstr(err.msg, "schedule: stage \"analyze\": early-exit window 100"));
  m->stages[1].ee_window = 0;
  ck_assert_int_eq(ls_sched_stage_add_skip(&m->stages[2], "L2.mlp", &err), LS_OK);
  ck_assert_int_eq(ls_schedule_check(m, NULL, 5, t, 0, &err), LS_EFORMAT);
  ck_assert_ptr_nonnull(strstr(err.msg, "schedule: stage \"summarize\": sub-layer \"L2.mlp\""));
  ls_schedule_free(m);

  ck_assert_int_eq(ls_schedule_read("/nonexistent/s.json", &s, &err), LS_EIO);
  ls_template_free(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("schedule");
  TCase *tc = tcase_create("schedule");
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, masks_and_names);
  tcase_add_test(tc, non_utf8_text_refused);
  tcase_add_test(tc, invalid_schedules);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
