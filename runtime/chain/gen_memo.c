/* Remembered chain runs (ls_gen_memo.h). */
#include "ls_gen_memo.h"

#include <stdlib.h>
#include <string.h>

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

void ls_gen_memo_begin(ls_gen_memo *m, int first_ex, int n_ex, int n_lanes, ls_gen_memo_cursor *c) {
  memset(c, 0, sizeof *c);
  c->memo = m;
  c->rec = (ls_gen_memo_run){.first_ex = first_ex, .n_ex = n_ex, .n_lanes = n_lanes};
  for (int i = 0; i < m->n_runs; i++) {
    const ls_gen_memo_run *r = run_at(m, i);
    c->alive[i] = r->first_ex == first_ex && r->n_ex == n_ex && r->n_lanes == n_lanes;
    c->n_alive += c->alive[i];
  }
}

static int same_plan(const ls_gen_memo *m, const ls_gen_memo_group *g, const ls_stage_plan *plan, int n_calls) {
  int w = plan ? plan->ee_window : 0;
  float th = plan ? plan->ee_threshold : 0.0f;
  if (g->n_calls != n_calls || g->ee_window != w || memcmp(&g->ee_threshold, &th, sizeof th)) return 0;
  for (int l = 0; l < m->n_layers; l++)
    if (g->mask[l] != (plan && plan->skip ? plan->skip[l] : 0)) return 0;
  return 1;
}

int ls_gen_memo_start(ls_gen_memo_cursor *c, const ls_stage_plan *plan, int n_calls, int *group,
                      const ls_gen_memo_group **replay, ls_err *err) {
  ls_gen_memo *m = c->memo;
  ls_gen_memo_run *rec = &c->rec;
  *replay = NULL;
  if (rec->n_groups == rec->cap_groups) {
    int cap = rec->cap_groups ? 2 * rec->cap_groups : 16;
    ls_gen_memo_group *g = realloc(rec->groups, (size_t)cap * sizeof *g);
    if (!g) return ls_err_set(err, LS_ENOMEM, "out of memory for remembered generation");
    rec->groups = g;
    rec->cap_groups = cap;
  }
  int k = rec->n_groups;
  ls_gen_memo_group *g = &rec->groups[k];
  *g = (ls_gen_memo_group){.ee_window = plan ? plan->ee_window : 0, .ee_threshold = plan ? plan->ee_threshold : 0.0f};
  g->mask = calloc((size_t)m->n_layers + 1, 1);
  if (!g->mask) return ls_err_set(err, LS_ENOMEM, "out of memory for remembered generation");
  if (plan && plan->skip) memcpy(g->mask, plan->skip, (size_t)m->n_layers);
  rec->n_groups++;
  rec->bytes += sizeof *g + (size_t)m->n_layers;
  *group = k;
  /* a remembered run agrees with this one while every group so far started under the same plan */
  for (int i = 0; i < m->n_runs && c->n_alive; i++) {
    if (!c->alive[i]) continue;
    const ls_gen_memo_run *r = run_at(m, i);
    if (k < r->n_groups && same_plan(m, &r->groups[k], plan, n_calls)) {
      if (!*replay) *replay = &r->groups[k];
    } else {
      c->alive[i] = 0;
      c->n_alive--;
    }
  }
  if (*replay) m->groups_replayed++;
  else m->groups_run++;
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
  /* a run that only repeated a remembered one (still in agreement to its end) adds nothing */
  int repeat = 0;
  for (int i = 0; i < m->n_runs && c->n_alive; i++)
    if (c->alive[i] && run_at(m, i)->n_groups == rec->n_groups) repeat = 1;
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
