/* litestage-run pipeline: the multi-stage chain over a dataset, with a schedule. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_cli.h"
#include "commands.h"
#include "ls_dataset.h"
#include "ls_pipeline.h"
#include "ls_schedule.h"
#include "ls_strbuf.h"
#include "ls_template.h"
#include "ls_util.h"

typedef struct {
  ls_engine_params ep;
  const char *stages, *data, *schedule, *out;
  int format, limit, shard_i, shard_n, compare_full, ignore_fingerprint, quiet;
  int kv_policy; /* -1: the schedule's */
  int parallel;  /* examples at once */
} pipeline_opts;

/* The dataset layer's parsers name the flag themselves. */
static int parse_format(const char *flag, const char *v, void *dest, ls_err *err) {
  (void)flag;
  return ls_dataset_format_parse(v, dest, err);
}

static int parse_shard(const char *flag, const char *v, void *dest, ls_err *err) {
  (void)flag;
  pipeline_opts *o = dest;
  return ls_shard_parse(v, &o->shard_i, &o->shard_n, err);
}

static int parse_policy(const char *flag, const char *v, void *dest, ls_err *err) {
  return ls_kv_policy_parse(v, dest, flag, err);
}

static pipeline_opts g_opts;

static const ls_opt opts[] = {
    LS_STR("-m|--model", "MODEL", "GGUF file or llama2.c checkpoint", &g_opts.ep.model_path),
    LS_STR("-z|--tokenizer", "TOKENIZER", "llama2.c tokenizer.bin (needed for llama2.c checkpoints)",
           &g_opts.ep.tokenizer_path),
    LS_STR("--stages", "TEMPLATE", "stage template (data/templates/*.json)", &g_opts.stages),
    LS_STR("--data", "FILE", "dataset: OBQA/CSQA JSONL, StrategyQA task.json or KARD JSON, plain JSONL,\n"
           "or a TinyStories text file (story openings; needs --format stories)", &g_opts.data),
    LS_FN("--format", "F", "auto (default: the JSON forms by content), obqa, csqa, strategyqa-bigbench\n"
           "(or bigbench), kard, plain, stories", &g_opts.format, parse_format),
    LS_STR("--schedule", "S.json", "per-stage skipped sub-layers and early exit (from litestage-search export);\n"
           "without it every stage runs the full model", &g_opts.schedule),
    LS_INT("-t|--threads", "N", "worker threads (default 1); the output is the same for any N",
           &g_opts.ep.n_threads, 1, 256),
    LS_INT("--limit", "N", "the first N examples only", &g_opts.limit, 1, 1 << 30),
    LS_FN("--shard", "I/N", "the I-th of N shards of the examples (0-based)", &g_opts, parse_shard),
    LS_STR("--out", "FILE", "one JSON line per example (checked writable before any work, written as\n"
           "examples finish to FILE.tmp.PID and renamed into place at the end)", &g_opts.out),
    LS_SWITCH("--compare-full", "also run the full model: speedup, answer agreement, token agreement",
           &g_opts.compare_full),
    LS_SWITCH("--ignore-fingerprint", "accept a schedule made for a different model file", &g_opts.ignore_fingerprint),
    LS_INT("-c|--ctx-size", "N", "KV cache positions per sequence (default: the model's context)", &g_opts.ep.n_ctx, 1,
           1 << 22),
    LS_FN("--kv-policy", "P", "reuse | recompute | shared-prefix (default: the schedule's, else reuse;\n"
          "docs/formats.md \"Schedules\")", &g_opts.kv_policy, parse_policy),
    LS_INT("--parallel", "N", "run up to N examples at once in shared batches (a finished example's\n"
           "sequence slots go to the next); the same outputs, more throughput", &g_opts.parallel, 1, 64),
    LS_FN("--weights", "copy|map", LS_CLI_WEIGHTS_HELP, &g_opts.ep.weights, ls_cli_parse_weights),
    LS_SWITCH("-q|--quiet", "no progress line on stderr", &g_opts.quiet),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run pipeline",
    .synopsis = "-m MODEL [-z TOKENIZER] --stages TEMPLATE.json --data FILE [--format F]\n"
                "                              [--schedule S.json] [-t THREADS] [--limit N] [--shard I/N]\n"
                "                              [--out results.jsonl] [--compare-full] [--ignore-fingerprint]\n"
                "                              [-c N] [--kv-policy P] [--parallel N] [-q]",
    .about = "Runs every selected example through the template's stages (each with the schedule's skipped\n"
             "sub-layers and early exit) and prints a summary: accuracy when the data has answers,\n"
             "latency per example, tokens and early exits per stage.",
    .opts = opts,
};

static int check(void *ctx, ls_err *err) {
  pipeline_opts *o = ctx;
  if (!o->ep.model_path) return ls_err_set(err, LS_EINVAL, "missing -m MODEL");
  if (!o->stages) return ls_err_set(err, LS_EINVAL, "missing --stages TEMPLATE.json");
  if (!o->data) return ls_err_set(err, LS_EINVAL, "missing --data FILE");
  return LS_OK;
}

/* Running sums for the summary table. */
typedef struct {
  int n, labelled, correct;
  double ms, full_ms, wall_ms;
  int agree, agree_n;
  double fidelity;
  double stage_ms[LS_TEMPLATE_MAX_STAGES];
  long stage_tokens[LS_TEMPLATE_MAX_STAGES];
  int stage_exits[LS_TEMPLATE_MAX_STAGES];
} totals;

static json_t *stage_json(const ls_template *t, int s, const ls_stage_result *sr) {
  json_t *outs = json_array();
  for (int k = 0; k < sr->n_calls; k++) json_array_append_new(outs, json_string(sr->calls[k].text));
  return json_pack("{s:s, s:o, s:i, s:i, s:i, s:f, s:f, s:i, s:i}", "name", t->stages[s].name, "outputs", outs,
                   "prompt_tokens", sr->prompt_tokens, "reused_tokens", sr->reused_tokens, "generated_tokens",
                   sr->n_generated, "prefill_ms",
                   sr->prefill_ms, "decode_ms", sr->decode_ms, "early_exits", sr->early_exits,
                   "sublayers_executed", sr->sublayers_executed);
}

static json_t *example_json(const ls_template *t, const ls_example *ex, const ls_example_result *r, int full_answer,
                            double full_ms, double fidelity) {
  json_t *stages = json_array();
  for (int s = 0; s < r->n_stages; s++) json_array_append_new(stages, stage_json(t, s, &r->stages[s]));
  json_t *o = json_pack("{s:s, s:o, s:f}", "id", ex->id, "stages", stages, "latency_ms", r->total_ms);
  if (t->has_answer_re) {
    char a[2] = {r->answer >= 0 ? ls_option_letter(r->answer) : 0, 0};
    json_object_set_new(o, "answer", r->answer >= 0 ? json_string(a) : json_null());
    if (ex->answer >= 0) {
      char g[2] = {ls_option_letter(ex->answer), 0};
      json_object_set_new(o, "gold", json_string(g));
      json_object_set_new(o, "correct", json_boolean(r->correct == 1));
    }
  }
  if (full_ms >= 0) {
    json_object_set_new(o, "full_latency_ms", json_real(full_ms));
    json_object_set_new(o, "token_agreement", json_real(fidelity));
    if (t->has_answer_re) json_object_set_new(o, "answer_agrees", json_boolean(full_answer == r->answer));
  }
  return o;
}

static void progress(int done, int total, double t0, int quiet) {
  double el = (ls_now_ms() - t0) / 1e3;
  if (quiet || (el < 3.0 && done < total)) return;
  double eta = done ? el / done * (total - done) : 0;
  fprintf(stderr, "\rpipeline: %d/%d examples, %.1f s elapsed, ~%.1f s left   %s", done, total, el, eta,
          done == total ? "\n" : "");
}

static void print_summary(const ls_template *t, const totals *tt, int compare, int has_labels) {
  printf("\nsummary (%s)\n", t->name);
  printf("  examples             %d\n", tt->n);
  if (has_labels && tt->labelled)
    printf("  accuracy             %.4f (%d/%d)\n", (double)tt->correct / tt->labelled, tt->correct, tt->labelled);
  printf("  latency/example      %.2f ms\n", tt->n ? tt->ms / tt->n : 0.0);
  printf("  wall/example         %.2f ms (the example loop's wall time / examples; model load excluded)\n",
         tt->n ? tt->wall_ms / tt->n : 0.0);
  printf("\n  %-12s %12s %12s %12s\n", "stage", "tokens/ex", "ms/ex", "early exits");
  for (int s = 0; s < t->n_stages; s++)
    printf("  %-12s %12.1f %12.2f %12d\n", t->stages[s].name, tt->n ? (double)tt->stage_tokens[s] / tt->n : 0.0,
           tt->n ? tt->stage_ms[s] / tt->n : 0.0, tt->stage_exits[s]);
  if (compare) {
    printf("\n  full model latency   %.2f ms/example\n", tt->n ? tt->full_ms / tt->n : 0.0);
    printf("  speedup              %.3fx\n", tt->ms > 0 ? tt->full_ms / tt->ms : 0.0);
    if (tt->agree_n) printf("  answer agreement     %.4f\n", (double)tt->agree / tt->agree_n);
    printf("  token agreement      %.4f (teacher-forced, vs the full model)\n", tt->n ? tt->fidelity / tt->n : 0.0);
  }
}

typedef struct {
  ls_engine e;
  ls_template *t;
  ls_dataset *ds;
  ls_schedule *sched;
  uint8_t *masks;
  ls_stage_plan plans[LS_TEMPLATE_MAX_STAGES];
} pipeline_state;

static int setup(pipeline_opts *o, pipeline_state *st, ls_err *err) {
  LS_TRY(ls_template_load(o->stages, &st->t, err));
  LS_TRY(ls_dataset_load(o->data, o->format, &st->ds, err));
  LS_TRY(ls_dataset_select(st->ds, o->limit, o->shard_i, o->shard_n, err));
  if (st->ds->n == 0) return ls_err_set(err, LS_EINVAL, "%s: no examples selected", o->data);
  /* one KV slot per option of a per-option stage (they decode together) */
  o->ep.n_seq = 1;
  for (int s = 0; s < st->t->n_stages; s++)
    for (int i = 0; st->t->stages[s].per_option && i < st->ds->n; i++)
      if (st->ds->ex[i].n_options > o->ep.n_seq) o->ep.n_seq = st->ds->ex[i].n_options;
  if (o->ep.n_seq * o->parallel > LS_MAX_SEQ)
    return ls_err_set(err, LS_EINVAL, "--parallel %d: %d examples x %d slots exceed %d sequence slots", o->parallel,
                      o->parallel, o->ep.n_seq, LS_MAX_SEQ);
  o->ep.n_seq *= o->parallel;
  LS_TRY(ls_engine_open(&st->e, &o->ep, err));
  if (!o->quiet)
    fprintf(stderr, "pipeline: KV cache %d sequence slots x %d positions = %.1f MiB\n", st->e.n_seq, st->e.n_ctx,
            (double)ls_ctx_kv_bytes(st->e.ctx) / (1 << 20));
  int n_layers = st->e.model.cfg.n_layers;
  if (o->schedule) {
    LS_TRY(ls_schedule_read(o->schedule, &st->sched, err));
    LS_TRY(ls_schedule_check(st->sched, st->e.fingerprint, n_layers, st->t, o->ignore_fingerprint, err));
  } else {
    LS_TRY(ls_schedule_for_template(st->t, &st->sched, err));
  }
  st->e.kv_policy = o->kv_policy >= 0 ? o->kv_policy : st->sched->kv_policy;
  st->masks = calloc((size_t)st->t->n_stages * n_layers, 1);
  if (!st->masks) return ls_err_set(err, LS_ENOMEM, "out of memory");
  return ls_plans_from_schedule(st->sched, n_layers, st->masks, st->plans, err);
}

static void teardown(pipeline_state *st) {
  free(st->masks);
  if (st->sched) ls_schedule_free(st->sched);
  if (st->e.ctx || st->e.model.map) ls_engine_close(&st->e);
  if (st->ds) ls_dataset_free(st->ds);
  if (st->t) ls_template_free(st->t);
}

static void add_totals(totals *tt, const ls_example *ex, const ls_example_result *r) {
  tt->n++;
  tt->ms += r->total_ms;
  if (ex->answer >= 0 && r->correct >= 0) {
    tt->labelled++;
    tt->correct += r->correct;
  }
  for (int s = 0; s < r->n_stages; s++) {
    tt->stage_ms[s] += r->stages[s].prefill_ms + r->stages[s].decode_ms;
    tt->stage_tokens[s] += r->stages[s].n_generated;
    tt->stage_exits[s] += r->stages[s].early_exits;
  }
}

/* Records one example's result (freed here); with --compare-full runs the full model too. */
static int record_one(pipeline_opts *o, pipeline_state *st, const ls_example *ex, ls_example_result *rp, totals *tt,
                      ls_strbuf *lines, ls_err *err) {
  ls_example_result r = *rp, full;
  memset(&full, 0, sizeof full);
  double full_ms = -1, fid = 0;
  int rc = LS_OK;
  if (o->compare_full) {
    rc = ls_pipeline_run(&st->e, st->t, ex, NULL, &full, err);
    if (!rc) rc = ls_pipeline_fidelity(&st->e, st->t, st->plans, &full, &fid, NULL, err);
    if (!rc) {
      full_ms = full.total_ms;
      tt->full_ms += full_ms;
      tt->fidelity += fid;
      if (st->t->has_answer_re) {
        tt->agree_n++;
        tt->agree += full.answer == r.answer;
      }
    }
  }
  if (!rc) {
    add_totals(tt, ex, &r);
    json_t *line = example_json(st->t, ex, &r, full.answer, full_ms, fid);
    char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(line);
    rc = s ? ls_strbuf_append(lines, s, err) : ls_err_set(err, LS_ENOMEM, "out of memory");
    if (!rc) rc = ls_strbuf_appendc(lines, '\n', err);
    free(s);
  }
  ls_example_result_free(&r);
  ls_example_result_free(&full);
  return rc;
}

static int run(void *ctx, ls_err *err) {
  pipeline_opts *o = ctx;
  pipeline_state st;
  memset(&st, 0, sizeof st);
  ls_strbuf lines;
  ls_strbuf_init(&lines);
  totals tt;
  memset(&tt, 0, sizeof tt);
  /* --out is opened first: a path that cannot be written fails before any work */
  ls_outfile out = {.fd = -1};
  int rc = o->out ? ls_outfile_open(&out, o->out, err) : LS_OK;
  if (!rc) rc = setup(o, &st, err);
  double t0 = ls_now_ms();
  /* windows of examples run together (--parallel lanes), recorded in order */
  int window = o->parallel > 1 ? 8 * o->parallel : 1;
  ls_example_result *res = rc ? NULL : calloc((size_t)window, sizeof *res);
  if (!rc && !res) rc = ls_err_set(err, LS_ENOMEM, "out of memory for results");
  for (int i = 0; !rc && i < st.ds->n; i += window) {
    int n = st.ds->n - i < window ? st.ds->n - i : window;
    rc = ls_pipeline_run_many(&st.e, st.t, &st.ds->ex[i], n, st.plans, o->parallel < n ? o->parallel : n, res, err);
    for (int k = 0; k < n; k++) {
      if (!rc) rc = record_one(o, &st, &st.ds->ex[i + k], &res[k], &tt, &lines, err);
      else if (res[k].stages) ls_example_result_free(&res[k]);
    }
    /* the window's lines go to the output as they are recorded */
    if (!rc && o->out && lines.len) rc = ls_outfile_write(&out, lines.buf, lines.len, err);
    ls_strbuf_clear(&lines);
    progress(i + n, st.ds->n, t0, o->quiet);
  }
  free(res);
  tt.wall_ms = ls_now_ms() - t0;
  if (o->out && out.fd >= 0) {
    if (!rc) rc = ls_outfile_commit(&out, err);
    else ls_outfile_discard(&out);
  }
  if (!rc) print_summary(st.t, &tt, o->compare_full, st.ds->n > 0 && st.ds->ex[0].answer >= 0);
  ls_strbuf_free(&lines);
  teardown(&st);
  return rc;
}

int ls_cli_pipeline(int argc, char **argv) {
  g_opts = (pipeline_opts){.ep = {.n_threads = 1, .top_p = 1.0f, .need_tokenizer = 1, .fingerprint = 1},
                           .kv_policy = -1, .parallel = 1};
  return ls_cli_main(&cli, argc, argv, check, run, &g_opts);
}
