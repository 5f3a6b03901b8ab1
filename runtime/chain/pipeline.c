#include "ls_pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "ls_earlyexit.h"
#include "ls_schedule.h"
#include "ls_strbuf.h"

static int copy_call(ls_call_result *c, const ls_gen_output *out, ls_err *err) {
  c->n_prompt = out->n_prompt;
  c->n_generated = out->n_generated;
  c->n_reused = out->n_reused;
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

static void add_call_totals(ls_stage_result *s, const ls_call_result *c) {
  s->prompt_tokens += c->n_prompt;
  s->generated_tokens += c->n_generated;
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

/* Runs calls [k0, k0+n) of a stage together (one batch, one slot each). */
static int run_group(ls_engine *e, const ls_template *t, int s, const ls_example *ex, const ls_stage_plan *plan,
                     prev_outputs *po, ls_stage_result *sr, ls_strbuf *prompts, int k0, int n, ls_err *err) {
  const ls_stage_def *def = &t->stages[s];
  ls_gen_request req[LS_MAX_SEQ] = {{0}};
  ls_gen_output out[LS_MAX_SEQ];
  for (int i = 0; i < n; i++) {
    LS_TRY(ls_template_render(t, s, ex, po->prev, k0 + i, &prompts[i], err));
    req[i] = (ls_gen_request){.prompt = ls_strbuf_cstr(&prompts[i]), .max_new_tokens = def->max_new_tokens,
                              .skip = plan ? plan->skip : NULL, .ee_window = plan ? plan->ee_window : 0,
                              .ee_threshold = plan ? plan->ee_threshold : 0.0f,
                              .stops = (const char *const *)def->stop, .n_stops = def->n_stop,
                              .keep_stop = def->keep_stop};
  }
  int rc = ls_engine_generate_multi(e, req, n, out, err);
  if (rc) return ls_err_prefix(err, "example %s, stage %s", ex->id, def->name);
  for (int i = 0; i < n; i++) {
    LS_TRY(copy_call(&sr->calls[k0 + i], &out[i], err));
    add_call_totals(sr, &sr->calls[k0 + i]);
    po->texts[s][k0 + i] = sr->calls[k0 + i].text;
  }
  return LS_OK;
}

static int run_stage(ls_engine *e, const ls_template *t, int s, const ls_example *ex, const ls_stage_plan *plan,
                     prev_outputs *po, ls_stage_result *sr, ls_strbuf *prompts, ls_err *err) {
  const ls_stage_def *def = &t->stages[s];
  sr->n_calls = def->per_option ? ex->n_options : 1;
  if (sr->n_calls <= 0)
    return ls_err_set(err, LS_EINVAL, "example %s: stage %s runs once per option but it has none", ex->id, def->name);
  sr->calls = calloc((size_t)sr->n_calls, sizeof *sr->calls);
  po->texts[s] = calloc((size_t)sr->n_calls, sizeof(char *));
  if (!sr->calls || !po->texts[s]) return ls_err_set(err, LS_ENOMEM, "out of memory for results");
  sr->sublayers_executed = ls_skip_mask_executed(plan ? plan->skip : NULL, e->model.cfg.n_layers);
  /* a per-option stage's calls run together, as many at once as the engine has slots */
  for (int k = 0; k < sr->n_calls; k += e->n_seq) {
    int n = sr->n_calls - k < e->n_seq ? sr->n_calls - k : e->n_seq;
    LS_TRY(run_group(e, t, s, ex, plan, po, sr, prompts, k, n, err));
  }
  po->prev[s] = (ls_stage_text){.n = sr->n_calls, .text = po->texts[s]};
  return LS_OK;
}

int ls_pipeline_run(ls_engine *e, const ls_template *t, const ls_example *ex, const ls_stage_plan *plans,
                    ls_example_result *res, ls_err *err) {
  memset(res, 0, sizeof *res);
  res->answer = -1;
  res->correct = -1;
  res->stages = calloc((size_t)t->n_stages, sizeof *res->stages);
  if (!res->stages) return ls_err_set(err, LS_ENOMEM, "out of memory for results");
  res->n_stages = t->n_stages;
  prev_outputs po;
  memset(&po, 0, sizeof po);
  ls_strbuf *prompts = calloc((size_t)e->n_seq, sizeof *prompts);
  if (!prompts) {
    ls_example_result_free(res);
    return ls_err_set(err, LS_ENOMEM, "out of memory for prompts");
  }
  for (int k = 0; k < e->n_seq; k++) ls_strbuf_init(&prompts[k]);
  int rc = LS_OK;
  for (int s = 0; s < t->n_stages && !rc; s++) {
    rc = run_stage(e, t, s, ex, plans ? &plans[s] : NULL, &po, &res->stages[s], prompts, err);
    if (!rc) res->total_ms += res->stages[s].prefill_ms + res->stages[s].decode_ms;
  }
  for (int s = 0; s < t->n_stages; s++) free(po.texts[s]);
  for (int k = 0; k < e->n_seq; k++) ls_strbuf_free(&prompts[k]);
  free(prompts);
  if (rc) {
    ls_example_result_free(res);
    return rc;
  }
  const ls_stage_result *last = &res->stages[t->n_stages - 1];
  if (t->has_answer_re && last->n_calls > 0) {
    ls_template_extract_answer(t, last->calls[last->n_calls - 1].text, &res->answer);
    if (ex->answer >= 0) res->correct = res->answer == ex->answer;
  }
  return LS_OK;
}

void ls_example_result_free(ls_example_result *res) {
  if (!res || !res->stages) return;
  for (int s = 0; s < res->n_stages; s++) {
    for (int k = 0; k < res->stages[s].n_calls && res->stages[s].calls; k++) {
      free(res->stages[s].calls[k].text);
      free(res->stages[s].calls[k].prompt_tokens);
      free(res->stages[s].calls[k].tokens);
    }
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
