/* Remembered chain runs (ls_gen_memo.h). */
#include "ls_gen_memo.h"

#include <stdlib.h>
#include <string.h>

#include "ls_forward.h"
#include "ls_pipeline.h"

void ls_gen_memo_init(ls_gen_memo *m, int n_layers) {
  memset(m, 0, sizeof *m);
  m->n_layers = n_layers;
}

static void run_free(ls_gen_memo_run *r) {
  for (int g = 0; g < r->n_groups; g++) {
    for (int k = 0; k < r->groups[g].n_calls; k++) ls_call_result_free(&r->groups[g].calls[k]);
    free(r->groups[g].calls);
    free(r->groups[g].mask);
  }
  free(r->groups);
  memset(r, 0, sizeof *r);
}

void ls_gen_memo_free(ls_gen_memo *m) {
  for (int i = 0; i < LS_GEN_MEMO_MAX_RUNS; i++) run_free(&m->runs[i]);
  ls_gen_memo_init(m, m->n_layers);
}

static ls_gen_memo_run *run_at(ls_gen_memo *m, int i) {
  return &m->runs[(m->oldest + i) % LS_GEN_MEMO_MAX_RUNS];
}

static const ls_stage_plan *plan_at(const ls_stage_plan *plans, int stage) { return plans ? &plans[stage] : NULL; }

static int same_plan(const ls_gen_memo *m, const ls_gen_memo_group *g, const ls_stage_plan *plan) {
  int w = plan ? plan->ee_window : 0;
  float th = plan ? plan->ee_threshold : 0.0f;
  if (g->ee_window != w || memcmp(&g->ee_threshold, &th, sizeof th)) return 0;
  for (int l = 0; l < m->n_layers; l++)
    if (g->mask[l] != (plan && plan->skip ? plan->skip[l] : 0)) return 0;
  return 1;
}

/* How many first groups of remembered run r this run starts the same way: a
 * group is the same (example, stage, calls) as r's while the groups before it
 * were, so only its stage's plan can differ. */
static int agreeing_groups(const ls_gen_memo *m, const ls_gen_memo_run *r, const ls_stage_plan *plans, int n_stages) {
  int k = 0;
  while (k < r->n_groups && r->groups[k].stage < n_stages && same_plan(m, &r->groups[k], plan_at(plans, r->groups[k].stage)))
    k++;
  return k;
}

void ls_gen_memo_begin(ls_gen_memo *m, int first_ex, int n_ex, int n_lanes, const ls_stage_plan *plans,
                       int n_stages, int kv_policy, ls_gen_memo_cursor *c) {
  memset(c, 0, sizeof *c);
  c->memo = m;
  c->plans = plans;
  c->rec = (ls_gen_memo_run){.first_ex = first_ex, .n_ex = n_ex, .n_lanes = n_lanes};
  for (int i = 0; i < m->n_runs; i++) {
    const ls_gen_memo_run *r = run_at(m, i);
    if (r->first_ex != first_ex || r->n_ex != n_ex || r->n_lanes != n_lanes) continue;
    int k = agreeing_groups(m, r, plans, n_stages);
    if (k > c->n_replay) c->from = r, c->n_replay = k;
  }
  /* The groups after the replayed ones are generated: the same groups as the rest of the remembered
   * run, in another order. A replayed group is computed if a generated one may reuse its positions. */
  uint8_t generated[LS_TEMPLATE_MAX_STAGES] = {0};
  for (int k = c->n_replay; c->from && k < c->from->n_groups; k++) generated[c->from->groups[k].stage] = 1;
  for (int st = 0; st < n_stages && st < LS_TEMPLATE_MAX_STAGES; st++)
    for (int g = 0; g < n_stages && g < LS_TEMPLATE_MAX_STAGES; g++)
      if (generated[g] && ls_kv_mask_serves(plan_at(plans, st) ? plans[st].skip : NULL,
                                            plan_at(plans, g) ? plans[g].skip : NULL, m->n_layers, kv_policy))
        c->compute[st] = 1;
}

int ls_gen_memo_start(ls_gen_memo_cursor *c, int stage, int n_calls, int *group, const ls_gen_memo_group **replay,
                      int *compute, ls_err *err) {
  ls_gen_memo *m = c->memo;
  ls_gen_memo_run *rec = &c->rec;
  *replay = NULL;
  *compute = 1;
  if (rec->n_groups == rec->cap_groups) {
    int cap = rec->cap_groups ? 2 * rec->cap_groups : 16;
    ls_gen_memo_group *g = realloc(rec->groups, (size_t)cap * sizeof *g);
    if (!g) return ls_err_set(err, LS_ENOMEM, "out of memory for remembered generation");
    rec->groups = g;
    rec->cap_groups = cap;
  }
  int k = rec->n_groups;
  const ls_gen_memo_group *from = k < c->n_replay ? &c->from->groups[k] : NULL;
  if (from && (from->stage != stage || from->n_calls != n_calls))
    return ls_err_set(err, LS_EINVAL, "generation memory: group %d is stage %d of %d calls, remembered as stage %d of %d",
                      k, stage, n_calls, from->stage, from->n_calls);
  ls_gen_memo_group *g = &rec->groups[k];
  *g = (ls_gen_memo_group){.stage = stage};
  g->mask = calloc((size_t)m->n_layers + 1, 1);
  if (!g->mask) return ls_err_set(err, LS_ENOMEM, "out of memory for remembered generation");
  rec->n_groups++;
  rec->bytes += sizeof *g + (size_t)m->n_layers;
  *group = k;
  const ls_stage_plan *plan = plan_at(c->plans, stage);
  if (plan && plan->skip) memcpy(g->mask, plan->skip, (size_t)m->n_layers);
  g->ee_window = plan ? plan->ee_window : 0;
  g->ee_threshold = plan ? plan->ee_threshold : 0.0f;
  if (from) {
    *replay = from;
    *compute = stage < LS_TEMPLATE_MAX_STAGES && c->compute[stage];
    m->groups_replayed++;
    m->groups_held += !*compute;
  } else {
    m->groups_run++;
  }
  return LS_OK;
}

static size_t call_bytes(const ls_call_result *r) {
  return sizeof *r + strlen(r->text) + 1 + ((size_t)r->n_prompt + (size_t)r->n_generated + 1) * sizeof(int);
}

int ls_gen_memo_end(ls_gen_memo_cursor *c, int group, int steps, const ls_call_result *calls, int n, ls_err *err) {
  ls_gen_memo_group *g = &c->rec.groups[group];
  g->steps = steps;
  g->calls = calloc((size_t)n, sizeof *g->calls);
  if (!g->calls) return ls_err_set(err, LS_ENOMEM, "out of memory for remembered generation");
  g->n_calls = n;
  for (int k = 0; k < n; k++) {
    LS_TRY(ls_call_result_copy(&g->calls[k], &calls[k], err));
    c->rec.bytes += call_bytes(&calls[k]);
  }
  return LS_OK;
}

static void forget_oldest(ls_gen_memo *m) {
  ls_gen_memo_run *r = run_at(m, 0);
  m->bytes -= r->bytes;
  run_free(r);
  m->oldest = (m->oldest + 1) % LS_GEN_MEMO_MAX_RUNS;
  m->n_runs--;
}

void ls_gen_memo_finish(ls_gen_memo_cursor *c, int ok) {
  ls_gen_memo *m = c->memo;
  ls_gen_memo_run *rec = &c->rec;
  /* a run that only repeated a remembered one adds nothing */
  int repeat = c->from && c->n_replay == c->from->n_groups;
  if (!ok || repeat || rec->bytes > LS_GEN_MEMO_MAX_BYTES) {
    run_free(rec);
    return;
  }
  while (m->n_runs == LS_GEN_MEMO_MAX_RUNS || m->bytes + rec->bytes > LS_GEN_MEMO_MAX_BYTES) forget_oldest(m);
  *run_at(m, m->n_runs) = *rec;
  m->n_runs++;
  m->bytes += rec->bytes;
  memset(rec, 0, sizeof *rec);
}
