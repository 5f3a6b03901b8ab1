/* The search's strategies (search_internal.h): greedy and exhaustive budgets, the early-exit
 * sweep. */
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

void ls_search_base_cand(const searcher *s, ls_cand *c, int kind) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  for (int st = 0; st < s->S; st++) c->budget[st] = s->job->budget_min;
}

/* A strategy's result: its pick if any candidate met the target, else the base candidate
 * (nothing met the target: the objective is noisy). */
static int pick_or_base(searcher *s, int have, const ls_cand *pick, ls_cand *best, ls_err *err) {
  if (have) {
    *best = *pick;
    return LS_OK;
  }
  ls_search_base_cand(s, best, LS_CAND_BUDGET);
  return ls_search_eval_batch(s, best, 1, err);
}

int ls_search_greedy(searcher *s, ls_cand *best, ls_err *err) {
  int lo = s->job->budget_min, hi = s->job->budget_max, range = hi - lo + 1;
  int batch = s->job->greedy_batch > 0 ? s->job->greedy_batch : range;
  ls_cand cur;
  ls_search_base_cand(s, &cur, LS_CAND_BUDGET);
  ls_cand *cs = calloc((size_t)range, sizeof *cs);
  if (!cs) return ls_err_set(err, LS_ENOMEM, "out of memory");
  int rc = LS_OK, have = 0;
  ls_cand chosen;
  memset(&chosen, 0, sizeof chosen);
  for (int oi = 0; oi < s->S && rc == LS_OK; oi++) {
    int st = s->stage_order[oi];
    const ls_cand *pick = NULL;
    int stop = 0, nc = 0;
    for (int b0 = lo; b0 <= hi && !stop && rc == LS_OK; b0 += batch) {
      int n = hi - b0 + 1 < batch ? hi - b0 + 1 : batch;
      for (int k = 0; k < n; k++) {
        cs[nc + k] = cur;
        cs[nc + k].budget[st] = b0 + k;
      }
      rc = ls_search_eval_batch(s, cs + nc, n, err);
      for (int k = 0; k < n && rc == LS_OK; k++)
        if (!cs[nc + k].meets_target) stop = 1;
      nc += n;
    }
    for (int k = 0; k < nc && rc == LS_OK; k++)
      if (cs[k].meets_target && ls_search_better(s, &cs[k], pick)) pick = &cs[k];
    if (rc == LS_OK && pick) {
      cur = *pick;
      chosen = *pick;
      have = 1;
    }
  }
  free(cs);
  LS_TRY(rc);
  return pick_or_base(s, have, &chosen, best, err);
}

int ls_search_exhaustive(searcher *s, ls_cand *best, ls_err *err) {
  int lo = s->job->budget_min, hi = s->job->budget_max, range = hi - lo + 1;
  int64_t total = 1;
  for (int st = 0; st < s->S; st++) total *= range;
  if (total > 1000000) return ls_err_set(err, LS_EINVAL, "%s: exhaustive search of %lld candidates is too large", s->job->path, (long long)total);
  const int chunk = 64; /* candidates per round (a commit each) */
  ls_cand *cs = calloc(chunk, sizeof *cs);
  if (!cs) return ls_err_set(err, LS_ENOMEM, "out of memory");
  ls_cand pick;
  int have = 0, rc = LS_OK;
  for (int64_t i0 = 0; i0 < total && rc == LS_OK; i0 += chunk) {
    int n = total - i0 < chunk ? (int)(total - i0) : chunk;
    for (int k = 0; k < n; k++) {
      ls_search_base_cand(s, &cs[k], LS_CAND_BUDGET);
      int64_t x = i0 + k;
      for (int st = s->S - 1; st >= 0; st--) {
        cs[k].budget[st] = lo + (int)(x % range);
        x /= range;
      }
    }
    rc = ls_search_eval_batch(s, cs, n, err);
    for (int k = 0; k < n && rc == LS_OK; k++)
      if (cs[k].meets_target && (!have || ls_search_better(s, &cs[k], &pick))) {
        pick = cs[k];
        have = 1;
      }
  }
  free(cs);
  LS_TRY(rc);
  return pick_or_base(s, have, &pick, best, err);
}

int ls_search_early_exit_sweep(searcher *s, ls_cand *best, ls_err *err) {
  int n = s->job->n_windows * s->job->n_thresholds;
  if (n == 0) return LS_OK;
  ls_cand *cs = calloc((size_t)n, sizeof *cs);
  if (!cs) return ls_err_set(err, LS_ENOMEM, "out of memory");
  for (int w = 0; w < s->job->n_windows; w++)
    for (int t = 0; t < s->job->n_thresholds; t++) {
      ls_cand *c = &cs[w * s->job->n_thresholds + t];
      ls_search_base_cand(s, c, LS_CAND_EARLY_EXIT);
      memcpy(c->budget, best->budget, sizeof c->budget);
      for (int st = 0; st < s->S; st++) {
        c->ee_window[st] = s->job->windows[w];
        c->ee_threshold[st] = s->job->thresholds[t];
      }
    }
  int rc = ls_search_eval_batch(s, cs, n, err);
  for (int k = 0; k < n && rc == LS_OK; k++)
    if (cs[k].meets_target && ls_search_better(s, &cs[k], best)) *best = cs[k];
  free(cs);
  return rc;
}
