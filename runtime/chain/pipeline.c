#include "ls_pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "ls_earlyexit.h"
#include "ls_gen_memo.h"
#include "ls_schedule.h"
#include "ls_strbuf.h"

static int copy_call(ls_call_result *c, const ls_gen_output *out, ls_err *err) {
  c->n_prompt = out->n_prompt;
  c->n_generated = out->n_generated;
  c->n_reused = out->n_reused;
  c->n_cached = out->n_cached;
  c->prefill_ms = out->prefill_ms;
  c->decode_ms = out->decode_ms;
  c->stop = out->stop;
  c->text = ls_dupstr(out->text, err);
  c->prompt_tokens = malloc((size_t)out->n_prompt * sizeof(int));
  c->tokens = malloc(((size_t)out->n_generated + 1) * sizeof(int));
  if (!c->text || !c->prompt_tokens || !c->tokens) return ls_err_set(err, LS_ENOMEM, "out of memory for results");
  memcpy(c->prompt_tokens, out->tokens, (size_t)out->n_prompt * sizeof(int));
  memcpy(c->tokens, out->tokens + out->n_prompt, (size_t)out->n_generated * sizeof(int));
  return LS_OK;
}

int ls_call_result_copy(ls_call_result *dst, const ls_call_result *src, ls_err *err) {
  *dst = *src;
  dst->text = ls_dupstr(src->text, err);
  dst->prompt_tokens = malloc((size_t)src->n_prompt * sizeof(int) + 1);
  dst->tokens = malloc(((size_t)src->n_generated + 1) * sizeof(int));
  if (!dst->text || !dst->prompt_tokens || !dst->tokens) {
    ls_call_result_free(dst);
    return ls_err_set(err, LS_ENOMEM, "out of memory for results");
  }
  memcpy(dst->prompt_tokens, src->prompt_tokens, (size_t)src->n_prompt * sizeof(int));
  memcpy(dst->tokens, src->tokens, (size_t)src->n_generated * sizeof(int));
  return LS_OK;
}

void ls_call_result_free(ls_call_result *c) {
  free(c->text);
  free(c->prompt_tokens);
  free(c->tokens);
  memset(c, 0, sizeof *c);
}

static void add_call_totals(ls_stage_result *s, const ls_call_result *c) {
  s->prompt_tokens += c->n_prompt;
  s->n_generated += c->n_generated;
  s->reused_tokens += c->n_reused;
  s->prefill_ms += c->prefill_ms;
  s->decode_ms += c->decode_ms;
  s->early_exits += c->stop == LS_STOP_EARLY_EXIT;
}

/* Earlier stages' outputs in the form the template renderer reads. */
typedef struct {
  ls_stage_text prev[LS_TEMPLATE_MAX_STAGES];
  const char **texts[LS_TEMPLATE_MAX_STAGES];
} prev_outputs;

/* One example in flight: its results, the stage it is in, the calls of that
 * stage now running (calls [call0, call0 + n_run)) and its sequence slots
 * [slot0, slot0 + n_slots). */
typedef struct lane {
  const ls_example *ex; /* NULL: free */
  ls_example_result *res;
  prev_outputs po;
  int stage, call0, n_run;
  int slot0, n_slots;
  ls_strbuf *prompts;   /* [n_slots] */
  ls_gen_request *reqs; /* [n_slots] */
  ls_gen_output *outs;  /* [n_slots] */
  /* with a memory (ls_gen_memo.h): the running group's index in the record,
   * the remembered group it replays (or NULL), the engine steps since it
   * started and the steps it must take (a replayed group's remembered ones) */
  ls_gen_memo_cursor *memo; /* NULL: generate everything */
  int group, steps, hold;
  const ls_gen_memo_group *replay;
  int *forced;          /* [n_slots][n_ctx + 1] replayed tokens to feed */
  int *pred;            /* [n_slots][n_ctx + 1] teacher-forcing scratch of a replay */
  float *conf;          /* [n_slots][n_ctx + 1] */
} lane;


static const ls_stage_plan *plan_of(const ls_stage_plan *plans, int s) { return plans ? &plans[s] : NULL; }

/* A remembered call replayed in slot i: its prompt and the tokens generation
 * fed (all generated ones but the last; all of them after an EOS, which is
 * not kept) prefilled under the stage's mask. A teacher-forced request feeds
 * all its targets but the last, so the target list is the generated tokens,
 * plus a placeholder after an EOS. */
static ls_gen_request replay_request(const ls_engine *e, const lane *L, int i, const ls_call_result *c,
                                     const ls_stage_plan *plan, int compute) {
  int *forced = L->forced + (size_t)i * (e->n_ctx + 1);
  memcpy(forced, c->tokens, (size_t)c->n_generated * sizeof *forced);
  int n = c->n_generated;
  if (c->stop == LS_STOP_EOS || n == 0) forced[n++] = 0;
  return (ls_gen_request){.prompt_tokens = c->prompt_tokens, .n_prompt_tokens = c->n_prompt,
                          .skip = plan ? plan->skip : NULL, .forced = forced, .n_forced = n,
                          .pred = L->pred + (size_t)i * (e->n_ctx + 1), .conf = L->conf + (size_t)i * (e->n_ctx + 1),
                          .hold_only = !compute};
}

/* Starts the next group of calls of the lane's stage in its slots: generated,
 * or replayed from the memory when a remembered run started the same way. */
static int lane_start_group(ls_engine *e, const ls_template *t, const ls_stage_plan *plans, lane *L, ls_err *err) {
  int s = L->stage;
  const ls_stage_def *def = &t->stages[s];
  const ls_stage_plan *plan = plan_of(plans, s);
  ls_stage_result *sr = &L->res->stages[s];
  L->n_run = sr->n_calls - L->call0 < L->n_slots ? sr->n_calls - L->call0 : L->n_slots;
  L->replay = NULL;
  L->steps = L->hold = 0;
  int compute = 1;
  if (L->memo) LS_TRY(ls_gen_memo_start(L->memo, s, L->n_run, &L->group, &L->replay, &compute, err));
  if (L->replay) L->hold = L->replay->steps;
  for (int i = 0; i < L->n_run; i++) {
    if (L->replay) {
      L->reqs[i] = replay_request(e, L, i, &L->replay->calls[i], plan, compute);
      continue;
    }
    ls_strbuf_clear(&L->prompts[i]);
    LS_TRY(ls_template_render(t, s, L->ex, L->po.prev, L->call0 + i, &L->prompts[i], err));
    L->reqs[i] = (ls_gen_request){.prompt = ls_strbuf_cstr(&L->prompts[i]), .max_new_tokens = def->max_new_tokens,
                                  .skip = plan ? plan->skip : NULL, .ee_window = plan ? plan->ee_window : 0,
                                  .ee_threshold = plan ? plan->ee_threshold : 0.0f,
                                  .stops = (const char *const *)def->stop, .n_stops = def->n_stop,
                                  .keep_stop = def->keep_stop};
  }
  int rc = ls_engine_start(e, L->slot0, L->reqs, L->n_run, err);
  return rc ? ls_err_prefix(err, "example %s, stage %s", L->ex->id, def->name) : LS_OK;
}

static int lane_begin_stage(ls_engine *e, const ls_template *t, const ls_stage_plan *plans, lane *L, ls_err *err) {
  int s = L->stage;
  const ls_stage_def *def = &t->stages[s];
  ls_stage_result *sr = &L->res->stages[s];
  sr->n_calls = def->per_option ? L->ex->n_options : 1;
  if (sr->n_calls <= 0)
    return ls_err_set(err, LS_EINVAL, "example %s: stage %s runs once per option but it has none", L->ex->id,
                      def->name);
  sr->calls = calloc((size_t)sr->n_calls, sizeof *sr->calls);
  L->po.texts[s] = calloc((size_t)sr->n_calls, sizeof(char *));
  if (!sr->calls || !L->po.texts[s]) return ls_err_set(err, LS_ENOMEM, "out of memory for results");
  sr->sublayers_executed = ls_skip_mask_executed(plan_of(plans, s) ? plans[s].skip : NULL, e->model.cfg.n_layers);
  L->call0 = 0;
  return lane_start_group(e, t, plans, L, err);
}

static void lane_release(const ls_template *t, lane *L) {
  for (int s = 0; s < t->n_stages; s++) free(L->po.texts[s]);
  memset(&L->po, 0, sizeof L->po);
  L->ex = NULL;
}

static int lane_begin_example(ls_engine *e, const ls_template *t, const ls_stage_plan *plans, lane *L,
                              const ls_example *ex, ls_example_result *res, ls_err *err) {
  memset(res, 0, sizeof *res);
  res->answer = -1;
  res->correct = -1;
  res->stages = calloc((size_t)t->n_stages, sizeof *res->stages);
  if (!res->stages) return ls_err_set(err, LS_ENOMEM, "out of memory for results");
  res->n_stages = t->n_stages;
  L->ex = ex;
  L->res = res;
  L->stage = 0;
  return lane_begin_stage(e, t, plans, L, err);
}

/* The lane's running calls have ended: keep their outputs, then start the
 * next group, the next stage, or finish the example (the lane is then free). */
static int lane_advance(ls_engine *e, const ls_template *t, const ls_stage_plan *plans, lane *L, ls_err *err) {
  int s = L->stage;
  ls_stage_result *sr = &L->res->stages[s];
  ls_engine_finish(e, L->slot0, L->n_run, L->outs);
  for (int i = 0; i < L->n_run; i++) {
    ls_call_result *c = &sr->calls[L->call0 + i];
    LS_TRY(L->replay ? ls_call_result_copy(c, &L->replay->calls[i], err) : copy_call(c, &L->outs[i], err));
    add_call_totals(sr, c);
    L->po.texts[s][L->call0 + i] = c->text;
  }
  if (L->memo) LS_TRY(ls_gen_memo_end(L->memo, L->group, L->steps, &sr->calls[L->call0], L->n_run, err));
  L->call0 += L->n_run;
  if (L->call0 < sr->n_calls) return lane_start_group(e, t, plans, L, err);
  L->po.prev[s] = (ls_stage_text){.n = sr->n_calls, .text = L->po.texts[s]};
  L->res->total_ms += sr->prefill_ms + sr->decode_ms;
  if (++L->stage < t->n_stages) return lane_begin_stage(e, t, plans, L, err);
  const ls_stage_result *last = &L->res->stages[t->n_stages - 1];
  if (t->has_answer_re && last->n_calls > 0) {
    ls_template_extract_answer(t, last->calls[last->n_calls - 1].text, &L->res->answer);
    if (L->ex->answer >= 0) L->res->correct = L->res->answer == L->ex->answer;
  }
  lane_release(t, L);
  return LS_OK;
}

static int run_lanes(ls_engine *e, const ls_template *t, const ls_example *exs, int n_ex, const ls_stage_plan *plans,
                     lane *lanes, int n_lanes, ls_example_result *res, int *started, ls_err *err) {
  int next = 0;
  for (;;) {
    int busy = 0;
    for (int j = 0; j < n_lanes; j++) {
      lane *L = &lanes[j];
      /* a finished group moves on at once (a new stage or example starts here) */
      /* a replayed group ends when the generated one did (the lanes start their groups in the same order) */
      while (L->ex && L->steps >= L->hold && !ls_engine_running(e, L->slot0, L->n_run))
        LS_TRY(lane_advance(e, t, plans, L, err));
      if (!L->ex && next < n_ex) {
        *started = ++next;
        LS_TRY(lane_begin_example(e, t, plans, L, &exs[next - 1], &res[next - 1], err));
      }
      busy |= L->ex != NULL;
    }
    if (!busy) return LS_OK;
    LS_TRY(ls_engine_step(e, err));
    for (int j = 0; j < n_lanes; j++) lanes[j].steps += lanes[j].ex != NULL;
  }
}

/* Replay scratch for every slot (with a memory only): a replayed call feeds up to n_ctx tokens. */
static int alloc_replay(const ls_engine *e, int **forced, int **pred, float **conf, ls_err *err) {
  size_t n = (size_t)e->n_seq * (e->n_ctx + 1);
  *forced = malloc(n * sizeof **forced);
  *pred = malloc(n * sizeof **pred);
  *conf = malloc(n * sizeof **conf);
  return *forced && *pred && *conf ? LS_OK : ls_err_set(err, LS_ENOMEM, "out of memory for replayed generation");
}

int ls_pipeline_run_many(ls_engine *e, const ls_template *t, const ls_example *exs, int n_ex,
                         const ls_stage_plan *plans, int n_lanes, ls_example_result *res, ls_err *err) {
  return ls_pipeline_run_memo(e, t, exs, n_ex, plans, n_lanes, NULL, 0, res, err);
}

int ls_pipeline_run_memo(ls_engine *e, const ls_template *t, const ls_example *exs, int n_ex,
                         const ls_stage_plan *plans, int n_lanes, ls_gen_memo *memo, int first_ex,
                         ls_example_result *res, ls_err *err) {
  if (n_lanes < 1 || n_lanes > e->n_seq)
    return ls_err_set(err, LS_EINVAL, "%d examples at once need at least as many sequence slots (the engine has %d)",
                      n_lanes, e->n_seq);
  int per = e->n_seq / n_lanes;
  lane *lanes = calloc((size_t)n_lanes, sizeof *lanes);
  ls_strbuf *prompts = calloc((size_t)e->n_seq, sizeof *prompts);
  ls_gen_request *reqs = calloc((size_t)e->n_seq, sizeof *reqs);
  ls_gen_output *outs = calloc((size_t)e->n_seq, sizeof *outs);
  int *forced = NULL, *pred = NULL;
  float *conf = NULL;
  ls_gen_memo_cursor cur;
  int rc = LS_OK, started = 0;
  if (!lanes || !prompts || !reqs || !outs) rc = ls_err_set(err, LS_ENOMEM, "out of memory for %d lanes", n_lanes);
  if (!rc && memo) rc = alloc_replay(e, &forced, &pred, &conf, err);
  if (memo) ls_gen_memo_begin(memo, first_ex, n_ex, n_lanes, plans, t->n_stages, e->kv_policy, &cur);
  for (int k = 0; prompts && k < e->n_seq; k++) ls_strbuf_init(&prompts[k]);
  size_t at = (size_t)per * (e->n_ctx + 1);
  for (int j = 0; !rc && j < n_lanes; j++)
    lanes[j] = (lane){.slot0 = j * per, .n_slots = per, .prompts = prompts + j * per, .reqs = reqs + j * per,
                      .outs = outs + j * per, .memo = memo ? &cur : NULL, .forced = forced ? forced + j * at : NULL,
                      .pred = pred ? pred + j * at : NULL, .conf = conf ? conf + j * at : NULL};
  if (!rc) rc = run_lanes(e, t, exs, n_ex, plans, lanes, n_lanes, res, &started, err);
  if (memo) ls_gen_memo_finish(&cur, rc == LS_OK);
  for (int j = 0; lanes && j < n_lanes; j++)
    if (lanes[j].ex) lane_release(t, &lanes[j]);
  for (int k = 0; prompts && k < e->n_seq; k++) ls_strbuf_free(&prompts[k]);
  if (rc) {
    for (int i = 0; i < started; i++) ls_example_result_free(&res[i]);
    for (int k = 0; k < e->n_seq; k++) e->slots[k].active = 0;
  }
  free(lanes);
  free(prompts);
  free(reqs);
  free(outs);
  free(forced);
  free(pred);
  free(conf);
  return rc;
}

int ls_pipeline_run(ls_engine *e, const ls_template *t, const ls_example *ex, const ls_stage_plan *plans,
                    ls_example_result *res, ls_err *err) {
  return ls_pipeline_run_many(e, t, ex, 1, plans, 1, res, err);
}

int ls_call_decode_calls(const ls_call_result *c) {
  int n = c->stop == LS_STOP_EOS ? c->n_generated : c->n_generated - 1;
  return n > 0 ? n : 0;
}

void ls_example_result_free(ls_example_result *res) {
  if (!res || !res->stages) return;
  for (int s = 0; s < res->n_stages; s++) {
    for (int k = 0; k < res->stages[s].n_calls && res->stages[s].calls; k++) ls_call_result_free(&res->stages[s].calls[k]);
    free(res->stages[s].calls);
  }
  free(res->stages);
  memset(res, 0, sizeof *res);
}

/* Matches before the candidate's early-exit stop, for one reference call. */
static int call_matches(ls_engine *e, const ls_call_result *c, const ls_stage_plan *plan, int *pred, float *conf,
                        int *matches, ls_err *err) {
  *matches = 0;
  if (c->n_generated == 0) return LS_OK;
  LS_TRY(ls_engine_teacher_force(e, c->prompt_tokens, c->n_prompt, c->tokens, c->n_generated,
                                 plan ? plan->skip : NULL, pred, conf, err));
  int kept = plan ? ls_ee_kept_tokens(conf, c->n_generated, plan->ee_window, plan->ee_threshold) : c->n_generated;
  for (int i = 0; i < kept; i++) *matches += pred[i] == c->tokens[i];
  return LS_OK;
}

int ls_pipeline_fidelity(ls_engine *e, const ls_template *t, const ls_stage_plan *plans,
                         const ls_example_result *ref, double *fidelity, double *stage_fidelity, ls_err *err) {
  if (ref->n_stages != t->n_stages)
    return ls_err_set(err, LS_EMISMATCH, "reference run has %d stages, template %s has %d", ref->n_stages, t->name,
                      t->n_stages);
  /* scratch sized for the longest reference output (allocated per example, not per token) */
  int longest = 1;
  for (int s = 0; s < ref->n_stages; s++)
    for (int k = 0; k < ref->stages[s].n_calls; k++)
      if (ref->stages[s].calls[k].n_generated > longest) longest = ref->stages[s].calls[k].n_generated;
  int *pred = malloc((size_t)longest * sizeof *pred);
  float *conf = malloc((size_t)longest * sizeof *conf);
  if (!pred || !conf) {
    free(pred);
    free(conf);
    return ls_err_set(err, LS_ENOMEM, "out of memory for fidelity");
  }
  double sum = 0.0;
  int rc = LS_OK;
  for (int s = 0; s < ref->n_stages && !rc; s++) {
    long matched = 0, total = 0;
    for (int k = 0; k < ref->stages[s].n_calls && !rc; k++) {
      int m = 0;
      rc = call_matches(e, &ref->stages[s].calls[k], plans ? &plans[s] : NULL, pred, conf, &m, err);
      matched += m;
      total += ref->stages[s].calls[k].n_generated;
    }
    double f = total ? (double)matched / (double)total : 1.0;
    if (stage_fidelity) stage_fidelity[s] = f;
    sum += f;
  }
  free(pred);
  free(conf);
  if (!rc) *fidelity = sum / ref->n_stages;
  return rc;
}

/* One example being teacher-forced: the stage it is in, the calls of that
 * stage now running (the ones with an output, calls[call0..) skipping empty
 * ones) and its slots with their scratch. */
typedef struct forced_lane {
  int ex; /* index into refs; -1: free */
  int stage, call0, n_run;
  int slot0, n_slots, longest;
  int run_call[LS_MAX_SEQ];   /* reference call of each running slot */
  const uint8_t *given;       /* [n_stages] stages scored already (not run), or NULL */
  long matched[LS_TEMPLATE_MAX_STAGES], total[LS_TEMPLATE_MAX_STAGES];
  ls_gen_request *reqs; /* [n_slots] */
  ls_gen_output *outs;  /* [n_slots] */
  int *pred;            /* [n_slots][longest] */
  float *conf;          /* [n_slots][longest] */
} forced_lane;

/* Starts the next calls (with an output) of the lane's stage, moving on to
 * later stages while a stage has none left; returns with n_run 0 when the
 * example is done. */
static int forced_start(ls_engine *e, const ls_stage_plan *plans, const ls_example_result *ref, forced_lane *L,
                        ls_err *err) {
  for (; L->stage < ref->n_stages; L->stage++, L->call0 = 0) {
    if (L->given && L->given[L->stage]) continue;
    const ls_stage_result *sr = &ref->stages[L->stage];
    const ls_stage_plan *plan = plan_of(plans, L->stage);
    L->n_run = 0;
    for (; L->call0 < sr->n_calls && L->n_run < L->n_slots; L->call0++) {
      const ls_call_result *c = &sr->calls[L->call0];
      L->total[L->stage] += c->n_generated;
      if (c->n_generated == 0) continue;
      int i = L->n_run++;
      L->run_call[i] = L->call0;
      L->reqs[i] = (ls_gen_request){.prompt_tokens = c->prompt_tokens, .n_prompt_tokens = c->n_prompt,
                                    .skip = plan ? plan->skip : NULL, .forced = c->tokens,
                                    .n_forced = c->n_generated, .pred = L->pred + (size_t)i * L->longest,
                                    .conf = L->conf + (size_t)i * L->longest};
    }
    if (L->n_run) return ls_engine_start(e, L->slot0, L->reqs, L->n_run, err);
  }
  return LS_OK;
}

/* The lane's running calls are done: count their matches before each
 * call's early-exit stop, then start the next ones. */
static int forced_advance(ls_engine *e, const ls_stage_plan *plans, const ls_example_result *ref, forced_lane *L,
                          ls_err *err) {
  ls_engine_finish(e, L->slot0, L->n_run, L->outs);
  const ls_stage_plan *plan = plan_of(plans, L->stage);
  for (int i = 0; i < L->n_run; i++) {
    const ls_call_result *c = &ref->stages[L->stage].calls[L->run_call[i]];
    const int *pred = L->reqs[i].pred;
    int kept = plan ? ls_ee_kept_tokens(L->reqs[i].conf, c->n_generated, plan->ee_window, plan->ee_threshold)
                    : c->n_generated;
    for (int k = 0; k < kept; k++) L->matched[L->stage] += pred[k] == c->tokens[k];
  }
  return forced_start(e, plans, ref, L, err);
}

/* The example's fidelity: the mean over stages of matched / total (1 for a stage without output). */
static void forced_score(const forced_lane *L, int n_stages, double *fidelity, double *stage_fidelity) {
  double sum = 0.0;
  for (int s = 0; s < n_stages; s++) {
    double f = L->given && L->given[s] ? stage_fidelity[s]
               : L->total[s]          ? (double)L->matched[s] / (double)L->total[s]
                                      : 1.0;
    if (stage_fidelity) stage_fidelity[s] = f;
    sum += f;
  }
  *fidelity = sum / n_stages;
}

/* Keeps lane L busy: advances its finished calls, scores a finished example
 * and takes the next one (*next), until it has calls running or nothing is
 * left. */
static int forced_fill(ls_engine *e, const ls_template *t, const ls_stage_plan *plans, const ls_example_result *refs,
                       int n_ex, const uint8_t *given, int *next, forced_lane *L, double *fidelity,
                       double *stage_fidelity, ls_err *err) {
  for (;;) {
    if (L->ex >= 0 && L->n_run && ls_engine_running(e, L->slot0, L->n_run)) return LS_OK;
    if (L->ex >= 0 && L->n_run) {
      LS_TRY(forced_advance(e, plans, &refs[L->ex], L, err));
      continue;
    }
    if (L->ex >= 0) {
      forced_score(L, t->n_stages, &fidelity[L->ex],
                   stage_fidelity ? stage_fidelity + (size_t)L->ex * t->n_stages : NULL);
      L->ex = -1;
    }
    if (*next >= n_ex) return LS_OK;
    if (refs[*next].n_stages != t->n_stages)
      return ls_err_set(err, LS_EMISMATCH, "reference run has %d stages, template %s has %d", refs[*next].n_stages,
                        t->name, t->n_stages);
    L->ex = (*next)++;
    L->stage = L->call0 = 0;
    L->given = given ? given + (size_t)L->ex * t->n_stages : NULL;
    memset(L->matched, 0, sizeof L->matched);
    memset(L->total, 0, sizeof L->total);
    LS_TRY(forced_start(e, plans, &refs[L->ex], L, err));
  }
}

static int run_forced_lanes(ls_engine *e, const ls_template *t, const ls_stage_plan *plans,
                            const ls_example_result *refs, int n_ex, const uint8_t *given, forced_lane *lanes,
                            int n_lanes, double *fidelity, double *stage_fidelity, ls_err *err) {
  int next = 0;
  for (;;) {
    int busy = 0;
    for (int j = 0; j < n_lanes; j++) {
      LS_TRY(forced_fill(e, t, plans, refs, n_ex, given, &next, &lanes[j], fidelity, stage_fidelity, err));
      busy |= lanes[j].ex >= 0;
    }
    if (!busy) return LS_OK;
    LS_TRY(ls_engine_step(e, err));
  }
}

int ls_pipeline_fidelity_many(ls_engine *e, const ls_template *t, const ls_stage_plan *plans,
                              const ls_example_result *refs, int n_ex, int n_lanes, const uint8_t *given,
                              double *fidelity, double *stage_fidelity, ls_err *err) {
  if (given && !stage_fidelity) return ls_err_set(err, LS_EINVAL, "fidelity: stages given without their values");
  if (n_lanes < 1 || n_lanes > e->n_seq)
    return ls_err_set(err, LS_EINVAL, "%d examples at once need at least as many sequence slots (the engine has %d)",
                      n_lanes, e->n_seq);
  if (t->n_stages > LS_TEMPLATE_MAX_STAGES)
    return ls_err_set(err, LS_EINVAL, "template %s: %d stages", t->name, t->n_stages);
  /* scratch sized for the longest reference output (per call of this function, not per token) */
  int longest = 1;
  for (int i = 0; i < n_ex; i++)
    for (int s = 0; s < refs[i].n_stages; s++)
      for (int k = 0; k < refs[i].stages[s].n_calls; k++)
        if (refs[i].stages[s].calls[k].n_generated > longest) longest = refs[i].stages[s].calls[k].n_generated;
  int per = e->n_seq / n_lanes;
  forced_lane *lanes = calloc((size_t)n_lanes, sizeof *lanes);
  ls_gen_request *reqs = calloc((size_t)e->n_seq, sizeof *reqs);
  ls_gen_output *outs = calloc((size_t)e->n_seq, sizeof *outs);
  int *pred = malloc((size_t)e->n_seq * longest * sizeof *pred);
  float *conf = malloc((size_t)e->n_seq * longest * sizeof *conf);
  int rc = LS_OK;
  if (!lanes || !reqs || !outs || !pred || !conf) rc = ls_err_set(err, LS_ENOMEM, "out of memory for fidelity");
  for (int j = 0; !rc && j < n_lanes; j++)
    lanes[j] = (forced_lane){.ex = -1, .slot0 = j * per, .n_slots = per, .longest = longest,
                             .reqs = reqs + j * per, .outs = outs + j * per,
                             .pred = pred + (size_t)j * per * longest, .conf = conf + (size_t)j * per * longest};
  if (!rc) rc = run_forced_lanes(e, t, plans, refs, n_ex, given, lanes, n_lanes, fidelity, stage_fidelity, err);
  if (rc)
    for (int k = 0; k < e->n_seq; k++) e->slots[k].active = 0;
  free(lanes);
  free(reqs);
  free(outs);
  free(pred);
  free(conf);
  return rc;
}

int ls_plans_from_schedule(const ls_schedule *s, int n_layers, uint8_t *masks, ls_stage_plan *plans, ls_err *err) {
  for (int i = 0; i < s->n_stages; i++) {
    uint8_t *mask = masks + (size_t)i * n_layers;
    int rc = ls_sched_stage_mask(&s->stages[i], n_layers, mask, err);
    if (rc) return ls_err_prefix(err, "%s: stage %s", s->path ? s->path : "schedule", s->stages[i].name);
    plans[i] = (ls_stage_plan){.skip = mask, .ee_window = s->stages[i].ee_window,
                               .ee_threshold = s->stages[i].ee_threshold};
  }
  return LS_OK;
}
