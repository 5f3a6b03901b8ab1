/* The search's reference pass (the full model over every example) and the importance ranking
 * of sub-layers (search_internal.h, docs/search.md "Method"). */
#include <stdlib.h>
#include <string.h>

#include "ls_refshare.h"
#include "ls_util.h"
#include "search_internal.h"

int ls_search_reference_pass(searcher *s, ls_err *err) {
  s->ref = calloc((size_t)s->E, sizeof *s->ref);
  s->ref_sum = calloc((size_t)s->E, sizeof *s->ref_sum);
  uint8_t *mine = calloc((size_t)s->E, 1);
  if (!s->ref || !s->ref_sum || !mine) {
    free(mine);
    return ls_err_set(err, LS_ENOMEM, "out of memory for the reference");
  }
  /* The full model's runs are work units like a candidate's (one per shard); then every rank
   * gets every run (fidelity teacher-forces against the reference of whichever example a rank
   * scores, and the importance pass reads the prompts). */
  ls_round r;
  int rc = ls_round_new(&r, 1, s->job->shards, s->E, err);
  if (rc != LS_OK) {
    free(mine);
    return rc;
  }
  s->ref_phase = 1;
  rc = ls_dist_run(&s->dist, &r, ls_search_unit, NULL, s, err);
  s->ref_phase = 0;
  double t_sync = ls_now_ms();
  if (rc == LS_OK && r.stopped) rc = ls_err_set(err, LS_EINTERRUPTED, "stopped by a signal during the reference pass");
  if (rc == LS_OK) {
    memcpy(s->ref_sum, r.res, (size_t)s->E * sizeof *s->ref_sum);
    for (int k = 0; k < r.n_shards; k++)
      if (r.owner[k] == s->dist.rank)
        for (int i = r.shard_begin[k]; i < r.shard_begin[k + 1]; i++) mine[i] = 1;
    rc = ls_ref_allgather(s->dist.comm, s->ref, s->E, mine, err);
  }
  if (rc == LS_OK) ls_search_round_stats(s, "reference pass", &r, ls_now_ms() - t_sync);
  ls_round_free(&r);
  free(mine);
  LS_TRY(rc);
  double chance = 0, score = 0;
  double stage_ms[LS_SEARCH_MAX_STAGES] = {0};
  for (int i = 0; i < s->E; i++) {
    chance += s->ds->ex[i].n_options > 0 ? 1.0 / s->ds->ex[i].n_options : 0.0;
    score += s->ref_sum[i].score;
    for (int st = 0; st < s->S; st++) {
      const ls_stage_result *sr = &s->ref[i].stages[st];
      if (s->have_prof) {
        /* the stage as the runtime runs it (its calls together, reused prefixes not charged); the
         * reuse counts travel with the shared runs (ls_refshare.h), so every rank gets this order */
        ls_example_result one = {.n_stages = 1, .stages = (ls_stage_result *)sr};
        stage_ms[st] += ls_predict_chain_ms(&s->prof, &one, NULL, s->L);
      } else {
        stage_ms[st] += sr->prefill_ms + sr->decode_ms; /* measured by whichever rank ran it: shared */
      }
    }
  }
  s->ref_score = score / s->E;
  s->chance = chance / s->E;
  s->target = s->ref_score - s->job->tolerance;
  /* stages from slowest to fastest (ties: template order) */
  for (int st = 0; st < s->S; st++) s->stage_order[st] = st;
  for (int a = 1; a < s->S; a++)
    for (int b = a; b > 0 && stage_ms[s->stage_order[b]] > stage_ms[s->stage_order[b - 1]]; b--) {
      int t = s->stage_order[b];
      s->stage_order[b] = s->stage_order[b - 1];
      s->stage_order[b - 1] = t;
    }
  return LS_OK;
}

/* Cosine statistics of every sub-layer on prefill of the reference stage prompts. The examples
 * are split round-robin over the ranks; each keeps per-(example, stage) sums and counts, an
 * MPI_Allreduce (x + 0 is exact) gives everyone all of them, and they are added in example
 * order: the same bits for any number of ranks. */
int ls_search_importance_pass(searcher *s, double *per_stage, double *acc, int32_t *per_stage_rank, ls_err *err) {
  int n = 2 * s->L;
  size_t cells = (size_t)s->E * s->S * n;
  double *sum = calloc(cells, sizeof *sum);
  int64_t *cnt = calloc(cells, sizeof *cnt);
  if (!sum || !cnt) {
    free(sum);
    free(cnt);
    return ls_err_set(err, LS_ENOMEM, "out of memory for importance");
  }
  int rc = LS_OK;
  int mb = ls_ctx_max_batch(s->eng.ctx);
  for (int i = s->dist.rank; i < s->E && rc == LS_OK; i += s->dist.size) {
    for (int st = 0; st < s->S && rc == LS_OK; st++) {
      size_t at = ((size_t)i * s->S + st) * n;
      ls_sublayer_stats stats = {n, sum + at, cnt + at};
      ls_ctx_set_stats(s->eng.ctx, &stats);
      const ls_stage_result *sr = &s->ref[i].stages[st];
      for (int k = 0; k < sr->n_calls && rc == LS_OK; k++) {
        const ls_call_result *c = &sr->calls[k];
        for (int p = 0; p < c->n_prompt && rc == LS_OK; p += mb) {
          int m = c->n_prompt - p < mb ? c->n_prompt - p : mb;
          rc = ls_forward(s->eng.ctx, c->prompt_tokens + p, m, p, NULL, 0, err);
        }
      }
      ls_ctx_set_stats(s->eng.ctx, NULL);
    }
  }
  /* every rank learns whether any failed before the data exchange */
  int bad = rc != LS_OK, any_bad = 0;
  if (MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, s->dist.comm) != MPI_SUCCESS ||
      (!any_bad && (MPI_Allreduce(MPI_IN_PLACE, sum, (int)cells, MPI_DOUBLE, MPI_SUM, s->dist.comm) != MPI_SUCCESS ||
                    MPI_Allreduce(MPI_IN_PLACE, cnt, (int)cells, MPI_INT64_T, MPI_SUM, s->dist.comm) != MPI_SUCCESS))) {
    free(sum);
    free(cnt);
    return ls_err_set(err, LS_EMPI, "rank %d: MPI_Allreduce of importance statistics failed (a rank died?)", s->dist.rank);
  }
  if (any_bad && rc == LS_OK) rc = ls_err_set(err, LS_EINVAL, "importance pass failed on another rank");
  for (int st = 0; st < s->S && rc == LS_OK; st++)
    for (int j = 0; j < n; j++) {
      double a = 0;
      int64_t m = 0;
      for (int i = 0; i < s->E; i++) {
        size_t at = ((size_t)i * s->S + st) * n + j;
        a += sum[at];
        m += cnt[at];
      }
      per_stage[(size_t)st * n + j] = m ? a / (double)m : 0.0;
    }
  free(sum);
  free(cnt);
  LS_TRY(rc);
  for (int j = 0; j < n; j++) {
    double a = 0;
    for (int st = 0; st < s->S; st++) a += per_stage[(size_t)st * n + j];
    acc[j] = a / s->S;
  }
  /* rankings: highest cosine first, ties by sub-layer index (stable insertion sort) */
  for (int st = -1; st < s->S; st++) {
    const double *v = st < 0 ? acc : per_stage + (size_t)st * n;
    int32_t *r = st < 0 ? s->ranking : per_stage_rank + (size_t)st * n;
    for (int j = 0; j < n; j++) r[j] = j;
    for (int a = 1; a < n; a++)
      for (int b = a; b > 0 && v[r[b]] > v[r[b - 1]]; b--) {
        int32_t t = r[b];
        r[b] = r[b - 1];
        r[b - 1] = t;
      }
  }
  return LS_OK;
}
