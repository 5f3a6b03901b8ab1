/* The search's Pareto front of the evaluated candidates and the chosen schedule
 * (search_internal.h). */
#include <math.h>
#include <stdlib.h>

#include "ls_schedule.h"
#include "ls_util.h"
#include "search_internal.h"

int ls_search_pareto(const searcher *s, int64_t **out, int *n_out, ls_err *err) {
  int64_t *ids = calloc((size_t)s->n_known + 1, sizeof *ids);
  if (!ids) return ls_err_set(err, LS_ENOMEM, "out of memory");
  int n = 0;
  for (int64_t i = 0; i < s->n_known; i++) {
    const ls_cand *a = &s->known[i];
    int dominated = 0;
    for (int64_t j = 0; j < s->n_known && !dominated; j++) {
      const ls_cand *b = &s->known[j];
      double la = ls_search_cand_latency(s, a), lb = ls_search_cand_latency(s, b);
      if (b->score >= a->score && lb <= la && (b->score > a->score || lb < la)) dominated = 1;
    }
    if (!dominated) ids[n++] = a->id;
  }
  /* by latency */
  for (int a = 1; a < n; a++)
    for (int b = a; b > 0; b--) {
      const ls_cand *x = NULL, *y = NULL;
      for (int64_t k = 0; k < s->n_known; k++) {
        if (s->known[k].id == ids[b]) x = &s->known[k];
        if (s->known[k].id == ids[b - 1]) y = &s->known[k];
      }
      if (!(ls_search_cand_latency(s, x) < ls_search_cand_latency(s, y) || (ls_search_cand_latency(s, x) == ls_search_cand_latency(s, y) && x->id < y->id))) break;
      int64_t t = ids[b];
      ids[b] = ids[b - 1];
      ids[b - 1] = t;
    }
  *out = ids;
  *n_out = n;
  return LS_OK;
}

int ls_search_make_schedule(searcher *s, const ls_cand *c, const uint8_t *masks, const ls_cand *ref_cand,
                            char **json, ls_err *err) {
  ls_schedule *sc = NULL;
  LS_TRY(ls_schedule_for_template(s->tpl, &sc, err));
  int rc = LS_OK;
  for (int st = 0; st < s->S && rc == LS_OK; st++) {
    rc = ls_sched_stage_set_mask(&sc->stages[st], masks + (size_t)st * s->L, s->L, err);
    sc->stages[st].ee_window = c->ee_window[st];
    sc->stages[st].ee_threshold = (float)c->ee_threshold[st];
  }
  char date[32];
  ls_utc_now(date);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->model_name, s->eng.model.name, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->model_fingerprint, s->eng.fingerprint[0] ? s->eng.fingerprint : NULL, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->template_name, s->tpl->name, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->template_path, s->job->template_path, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->objective, ls_objective_name(s->job->objective), err);
  sc->kv_policy = s->job->kv_policy;
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->prov_job, s->job->path, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->prov_results_file, s->opts->store_path, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->prov_date, date, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&sc->prov_commit, ls_git_commit(), err);
  sc->target = s->target;
  sc->achieved_score = c->score;
  sc->reference_score = s->ref_score;
  sc->predicted_latency_ms = c->predicted_ms;
  sc->measured_latency_ms = c->measured_ms;
  double ref_lat = ref_cand ? ls_search_cand_latency(s, ref_cand) : NAN;
  sc->speedup = ref_lat / ls_search_cand_latency(s, c);
  sc->prov_candidate_id = c->id;
  if (rc == LS_OK) rc = ls_schedule_to_string(sc, json, err);
  ls_schedule_free(sc);
  return rc;
}
