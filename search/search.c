/* The search method (ls_search.h, docs/search.md). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_dataset.h"
#include "ls_dist.h"
#include "ls_engine.h"
#include "ls_pipeline.h"
#include "ls_profile.h"
#include "ls_refshare.h"
#include "ls_schedule.h"
#include "ls_search.h"
#include "ls_store.h"
#include "ls_template.h"
#include "ls_util.h"

/* Everything one rank holds during a search. */
typedef struct searcher {
  ls_job *job;
  const ls_search_opts *opts;
  ls_dist dist;
  ls_store store;
  int have_store;
  ls_engine eng;
  int have_eng;
  ls_template *tpl;
  ls_dataset *ds;
  ls_profile prof;
  int have_prof;
  int S, L, E;
  /* reference */
  ls_example_result *ref;   /* [E] full runs (every rank: fidelity teacher-forces against them) */
  ls_example_score *ref_sum;    /* [E] */
  int ref_phase;            /* the round in flight is the reference pass */
  double ref_score, target, chance;
  int stage_order[LS_SEARCH_MAX_STAGES];
  /* importance */
  int32_t *ranking;         /* [2L] most redundant first */
  /* candidates */
  ls_cand *known;           /* from the store (resume) and this run */
  int64_t n_known, cap_known;
  int64_t next_id;
  int round_no;
  int64_t expected_total;
  double t0;
  /* the round in flight */
  const ls_cand *round_cands;
  const uint8_t *round_masks;
  int64_t done_in_round;    /* completed in the round in flight (rank 0) */
  ls_cand round_best;       /* the best that met the target in the round in flight (rank 0) */
  int have_round_best;
  int64_t evaluated_run;    /* evaluated by this invocation (rank 0), for the ETA */
  double *cand_scores;      /* [E] rank 0's scratch for a candidate's commit */
} searcher;

/* ---- helpers ---------------------------------------------------------- */

static void masks_for(const searcher *s, const int32_t *budget, uint8_t *masks) {
  memset(masks, 0, (size_t)s->S * s->L);
  for (int st = 0; st < s->S; st++)
    for (int k = 0; k < budget[st] && k < 2 * s->L; k++) {
      int sub = s->ranking[k];
      masks[(size_t)st * s->L + sub / 2] |= (uint8_t)(sub % 2 ? LS_SKIP_FFN : LS_SKIP_ATTN);
    }
}

static double cand_latency(const searcher *s, const ls_cand *c) {
  return s->job->latency_measured ? c->measured_ms : c->predicted_ms;
}

/* a is better than b (or b is NULL): lower latency, ties to the earlier candidate. */
static int better(const searcher *s, const ls_cand *a, const ls_cand *b) {
  if (!b) return 1;
  double la = cand_latency(s, a), lb = cand_latency(s, b);
  if (la != lb) return la < lb;
  return a->id < b->id; /* deterministic tie-break: earlier candidate */
}

static int same_def(const searcher *s, const ls_cand *a, const ls_cand *b) {
  if (a->kind != b->kind) return 0;
  for (int st = 0; st < s->S; st++)
    if (a->budget[st] != b->budget[st] || a->ee_window[st] != b->ee_window[st] ||
        a->ee_threshold[st] != b->ee_threshold[st])
      return 0;
  return 1;
}

static const ls_cand *find_known(const searcher *s, const ls_cand *c) {
  for (int64_t i = 0; i < s->n_known; i++)
    if (same_def(s, &s->known[i], c)) return &s->known[i];
  return NULL;
}

static int add_known(searcher *s, const ls_cand *c, ls_err *err) {
  if (s->n_known == s->cap_known) {
    int64_t cap = s->cap_known ? 2 * s->cap_known : 64;
    ls_cand *k = realloc(s->known, (size_t)cap * sizeof *k);
    if (!k) return ls_err_set(err, LS_ENOMEM, "out of memory for candidates");
    s->known = k;
    s->cap_known = cap;
  }
  s->known[s->n_known++] = *c;
  return LS_OK;
}

static void describe(const searcher *s, const ls_cand *c, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "budgets");
  for (int st = 0; st < s->S && o < n; st++) o += (size_t)snprintf(buf + o, n - o, "%s%d", st ? "," : " ", c->budget[st]);
  if (c->kind == LS_CAND_EARLY_EXIT && o < n)
    snprintf(buf + o, n - o, " ee %d/%.3g", c->ee_window[0], c->ee_threshold[0]);
}

/* Aggregates a candidate's per-example results in example order (bit-identical for any rank count). */
static void aggregate(const searcher *s, const ls_example_score *res, ls_cand *c) {
  double score = 0, meas = 0, pred = 0, pt[LS_SEARCH_MAX_STAGES] = {0}, gt[LS_SEARCH_MAX_STAGES] = {0};
  for (int i = 0; i < s->E; i++) {
    score += res[i].score;
    meas += res[i].measured_ms;
    pred += res[i].predicted_ms;
    for (int st = 0; st < s->S; st++) {
      pt[st] += res[i].prompt_tokens[st];
      gt[st] += res[i].n_generated[st];
    }
  }
  c->score = score / s->E;
  c->measured_ms = meas / s->E;
  c->predicted_ms = s->have_prof ? pred / s->E : NAN;
  for (int st = 0; st < s->S; st++) {
    c->prompt_tokens[st] = pt[st] / s->E;
    c->n_generated[st] = gt[st] / s->E;
  }
  c->meets_target = c->score >= s->target;
}

/* ---- evaluation of one example ------------------------------------------ */

double ls_search_predict_ms(const ls_profile *p, const ls_example_result *res, const uint8_t *masks, int n_layers) {
  ls_stage_call calls[64];
  int nc = 0;
  double pred = 0;
  for (int st = 0; st < res->n_stages; st++) {
    const ls_stage_result *sr = &res->stages[st];
    for (int k = 0; k < sr->n_calls; k++) {
      calls[nc++] = (ls_stage_call){masks ? masks + (size_t)st * n_layers : NULL, sr->calls[k].n_prompt, 0,
                                    ls_call_decode_calls(&sr->calls[k])};
      if (nc == 64) {
        pred += ls_predict_example_ms(p, calls, nc);
        nc = 0;
      }
    }
  }
  return nc ? pred + ls_predict_example_ms(p, calls, nc) : pred;
}

static int run_example(searcher *s, int i, const uint8_t *masks, const int32_t *eew, const double *eet,
                       ls_example_result *res, ls_example_score *out, ls_err *err) {
  ls_stage_plan plans[LS_SEARCH_MAX_STAGES];
  for (int st = 0; st < s->S; st++)
    plans[st] = (ls_stage_plan){.skip = masks ? masks + (size_t)st * s->L : NULL, .ee_window = eew ? eew[st] : 0,
                                .ee_threshold = eet ? (float)eet[st] : 0.0f};
  LS_TRY(ls_pipeline_run(&s->eng, s->tpl, &s->ds->ex[i], plans, res, err));
  memset(out, 0, sizeof *out);
  out->answer = res->answer;
  out->correct = res->correct == 1;
  out->done = 1;
  for (int st = 0; st < s->S; st++) {
    out->prompt_tokens[st] = res->stages[st].prompt_tokens;
    out->n_generated[st] = res->stages[st].n_generated;
  }
  out->predicted_ms = s->have_prof ? ls_search_predict_ms(&s->prof, res, masks, s->L) : NAN;
  /* What the profile predicts and `litestage-run pipeline` reports as latency_ms: the example's
   * forward passes (every stage call's prefill + decode loop), without tokenising and rendering
   * prompts. */
  out->measured_ms = res->total_ms;
  return LS_OK;
}

static int score_example(searcher *s, int i, const uint8_t *masks, const int32_t *eew, const double *eet,
                         ls_example_score *out, ls_err *err) {
  ls_example_result res;
  int rc = run_example(s, i, masks, eew, eet, &res, out, err);
  if (rc == LS_OK) {
    switch (s->job->objective) {
      case LS_OBJ_ACCURACY: out->score = out->correct ? 1.0 : 0.0; break;
      case LS_OBJ_AGREEMENT: out->score = out->answer == s->ref_sum[i].answer ? 1.0 : 0.0; break;
      default: {
        ls_stage_plan plans[LS_SEARCH_MAX_STAGES];
        for (int st = 0; st < s->S; st++)
          plans[st] = (ls_stage_plan){.skip = masks + (size_t)st * s->L, .ee_window = eew[st],
                                      .ee_threshold = (float)eet[st]};
        rc = ls_pipeline_fidelity(&s->eng, s->tpl, plans, &s->ref[i], &out->score, NULL, err);
      }
    }
  }
  ls_example_result_free(&res);
  return rc;
}

/* Test hook (tests/integration/search_rankdeath.sh): LS_SEARCH_TEST_DIE="RANK:UNITS" makes rank
 * RANK kill itself with SIGKILL when it starts its UNITS-th work unit, as a crashed node would. */
static void maybe_die(const searcher *s) {
  static int units = 0;
  const char *v = getenv("LS_SEARCH_TEST_DIE");
  int r = -1, n = 0;
  if (v && sscanf(v, "%d:%d", &r, &n) == 2 && r == s->dist.rank && ++units >= n) raise(SIGKILL);
}

/* One shard of the reference pass: the full model; the runs stay on this rank (shared after the
 * round, ls_refshare.h). */
static int ref_unit(searcher *s, int begin, int end, ls_example_score *out, ls_err *err) {
  for (int i = begin; i < end; i++) {
    LS_TRY(run_example(s, i, NULL, NULL, NULL, &s->ref[i], &out[i - begin], err));
    switch (s->job->objective) {
      case LS_OBJ_ACCURACY: out[i - begin].score = out[i - begin].correct ? 1.0 : 0.0; break;
      default: out[i - begin].score = 1.0; break; /* the full model agrees with itself */
    }
  }
  return LS_OK;
}

static int unit_fn(void *user, int cand, int shard, int begin, int end, ls_example_score *out, ls_err *err) {
  (void)shard;
  searcher *s = user;
  maybe_die(s);
  if (s->ref_phase) {
    int rc = ref_unit(s, begin, end, out, err);
    return rc == LS_OK ? rc : ls_err_prefix(err, "reference pass, examples %d..%d", begin, end - 1);
  }
  const ls_cand *c = &s->round_cands[cand];
  const uint8_t *m = s->round_masks + (size_t)cand * s->S * s->L;
  for (int i = begin; i < end; i++) {
    int rc = score_example(s, i, m, c->ee_window, c->ee_threshold, &out[i - begin], err);
    if (rc != LS_OK) return ls_err_prefix(err, "candidate %lld, example %d", (long long)c->id, i);
  }
  return LS_OK;
}

/* Rank 0 (coordinator thread) as each candidate completes: commit it to the store at once, then
 * a progress line. */
static int cand_done(void *user, const ls_round *r, int cand, ls_err *err) {
  searcher *s = user;
  ls_cand c = s->round_cands[cand];
  const ls_example_score *res = r->res + (size_t)cand * r->n_examples;
  aggregate(s, res, &c);
  c.run = s->store.run;
  c.round = s->round_no;
  for (int i = 0; i < s->E; i++) s->cand_scores[i] = res[i].score;
  LS_TRY(ls_store_commit_one(&s->store, &c, s->round_masks + (size_t)cand * s->S * s->L, s->cand_scores, err));
  s->done_in_round++;
  s->evaluated_run++;
  if (s->opts->quiet) return LS_OK;
  int64_t done = s->n_known + s->done_in_round;
  /* best so far: earlier rounds (known), this round's earlier candidates, this one */
  if (c.meets_target && (!s->have_round_best || better(s, &c, &s->round_best))) {
    s->round_best = c;
    s->have_round_best = 1;
  }
  const ls_cand *best = s->have_round_best ? &s->round_best : NULL;
  for (int64_t i = 0; i < s->n_known; i++)
    if (s->known[i].meets_target && (!best || better(s, &s->known[i], best))) best = &s->known[i];
  double el = (ls_now_ms() - s->t0) / 1000.0;
  int64_t left = s->expected_total > done ? s->expected_total - done : 0;
  double eta = el / (double)s->evaluated_run * (double)left;
  char d[256], b[256] = "none yet";
  describe(s, &c, d, sizeof d);
  if (best) {
    char bd[200];
    describe(s, best, bd, sizeof bd);
    snprintf(b, sizeof b, "#%lld (%s) score %.4f, %.2f ms", (long long)best->id, bd, best->score, cand_latency(s, best));
  }
  fprintf(stderr,
          "litestage-search: candidate #%lld (%s): score %.4f, %.2f ms | %lld/%lld done, elapsed %.1f s, ETA %.1f s, best so far %s\n",
          (long long)c.id, d, c.score, cand_latency(s, &c), (long long)done, (long long)s->expected_total, el, eta, b);
  return LS_OK;
}

/* Rank 0, not quiet: how well a round used the ranks. */
static void round_stats(const searcher *s, const char *what, const ls_round *r, double sync_ms) {
  if (s->dist.rank != 0 || s->opts->quiet) return;
  double use = r->wall_ms > 0 ? r->busy_ms / (r->wall_ms * s->dist.size) : 0;
  int units = r->n_cands * r->n_shards, done = 0;
  for (int u = 0; u < units; u++) done += r->owner[u] >= 0;
  char count[48];
  if (done == units) snprintf(count, sizeof count, "%d units", units);
  else snprintf(count, sizeof count, "%d of %d units", done, units); /* stopped early */
  fprintf(stderr, "litestage-search: %s: %s on %d ranks in %.2f s (ranks busy %.0f%%), then %.3f s to share and store\n",
          what, count, s->dist.size, r->wall_ms / 1000.0, 100 * use, sync_ms / 1000.0);
}

/* Evaluates cands[0..n) (ids assigned here): reuses known results, runs the rest as one round,
 * appends the complete ones to the store. On return every cands[i] holds its results. */
static int eval_batch(searcher *s, ls_cand *cands, int n, ls_err *err) {
  size_t msz = (size_t)s->S * s->L;
  ls_cand *todo = calloc((size_t)n + 1, sizeof *todo);
  uint8_t *masks = calloc((size_t)n * msz + 1, 1);
  int *map = calloc((size_t)n + 1, sizeof *map), *ridx = calloc((size_t)n + 1, sizeof *ridx);
  ls_cand *done = calloc((size_t)n + 1, sizeof *done);
  uint8_t *done_masks = calloc((size_t)n * msz + 1, 1);
  if (!todo || !masks || !map || !ridx || !done || !done_masks) {
    free(todo); free(masks); free(map); free(ridx); free(done); free(done_masks);
    return ls_err_set(err, LS_ENOMEM, "out of memory for a round");
  }
  int nt = 0;
  for (int i = 0; i < n; i++) {
    /* Ids go to new candidates only, in generation order; a repeat keeps its id. On resume the
     * store's candidates come back in the same order with the ids they got then. */
    const ls_cand *k = find_known(s, &cands[i]);
    if (k) {
      cands[i] = *k;
      if (k->id >= s->next_id) s->next_id = k->id + 1;
      map[i] = -1;
    } else {
      cands[i].id = s->next_id++;
      map[i] = nt;
      todo[nt] = cands[i];
      masks_for(s, todo[nt].budget, masks + (size_t)nt * msz);
      nt++;
    }
  }
  int rc = LS_OK;
  if (nt > 0) {
    int any = 0;
    rc = ls_dist_any_stop(&s->dist, &any, err);
    if (rc == LS_OK && any) rc = ls_err_set(err, LS_EINTERRUPTED, "stopped by a signal before round %d", s->round_no);
    ls_round r;
    memset(&r, 0, sizeof r);
    if (rc == LS_OK) rc = ls_round_new(&r, nt, s->job->shards, s->E, err);
    if (rc == LS_OK) {
      s->round_cands = todo;
      s->round_masks = masks;
      int drc = ls_dist_run(&s->dist, &r, unit_fn, cand_done, s, err);
      double t_sync = ls_now_ms();
      if (drc == LS_EMPI) {
        ls_round_free(&r);
        rc = drc;
        goto out;
      }
      /* commit what is complete, even after an error or a stop */
      int nd = 0;
      for (int j = 0; j < nt; j++) {
        if (!r.complete[j]) continue;
        aggregate(s, r.res + (size_t)j * s->E, &todo[j]);
        todo[j].run = s->store.run;
        todo[j].round = s->round_no;
        done[nd] = todo[j];
        memcpy(done_masks + (size_t)nd * msz, masks + (size_t)j * msz, msz);
        ridx[nd++] = j;
      }
      int arc = ls_store_append(&s->store, done, done_masks, ridx, nd, &r, err);
      for (int j = 0; j < nd && arc == LS_OK; j++) arc = add_known(s, &done[j], err);
      char what[64];
      snprintf(what, sizeof what, "round %d (%d candidates)", s->round_no, nt);
      round_stats(s, what, &r, ls_now_ms() - t_sync);
      s->round_no++;
      if (drc != LS_OK) {
        rc = drc;
      } else if (arc != LS_OK) {
        rc = arc;
      } else if (r.stopped) {
        rc = ls_err_set(err, LS_EINTERRUPTED, "stopped by a signal during round %d", s->round_no - 1);
      } else {
        for (int i = 0; i < n; i++)
          if (map[i] >= 0) cands[i] = todo[map[i]];
      }
      s->done_in_round = 0;
      s->have_round_best = 0;
    }
    ls_round_free(&r);
  }
out:
  free(todo); free(masks); free(map); free(ridx); free(done); free(done_masks);
  return rc;
}

/* ---- reference and importance ------------------------------------------ */

static int reference_pass(searcher *s, ls_err *err) {
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
  rc = ls_dist_run(&s->dist, &r, unit_fn, NULL, s, err);
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
  if (rc == LS_OK) round_stats(s, "reference pass", &r, ls_now_ms() - t_sync);
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
        for (int k = 0; k < sr->n_calls; k++)
          stage_ms[st] += ls_predict_stage_ms(&s->prof, NULL, sr->calls[k].n_prompt, 0, ls_call_decode_calls(&sr->calls[k]));
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
static int importance_pass(searcher *s, double *per_stage, double *acc, int32_t *per_stage_rank, ls_err *err) {
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

/* ---- strategies ---------------------------------------------------------- */

static void base_cand(const searcher *s, ls_cand *c, int kind) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  for (int st = 0; st < s->S; st++) c->budget[st] = s->job->budget_min;
}

static int greedy(searcher *s, ls_cand *best, ls_err *err) {
  int lo = s->job->budget_min, hi = s->job->budget_max, range = hi - lo + 1;
  int batch = s->job->greedy_batch > 0 ? s->job->greedy_batch : range;
  ls_cand cur;
  base_cand(s, &cur, LS_CAND_BUDGET);
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
      rc = eval_batch(s, cs + nc, n, err);
      for (int k = 0; k < n && rc == LS_OK; k++)
        if (!cs[nc + k].meets_target) stop = 1;
      nc += n;
    }
    for (int k = 0; k < nc && rc == LS_OK; k++)
      if (cs[k].meets_target && better(s, &cs[k], pick)) pick = &cs[k];
    if (rc == LS_OK && pick) {
      cur = *pick;
      chosen = *pick;
      have = 1;
    }
  }
  free(cs);
  LS_TRY(rc);
  if (!have) {
    /* nothing met the target (the objective is noisy): keep the base */
    base_cand(s, best, LS_CAND_BUDGET);
    return eval_batch(s, best, 1, err);
  }
  *best = chosen;
  return LS_OK;
}

static int exhaustive(searcher *s, ls_cand *best, ls_err *err) {
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
      base_cand(s, &cs[k], LS_CAND_BUDGET);
      int64_t x = i0 + k;
      for (int st = s->S - 1; st >= 0; st--) {
        cs[k].budget[st] = lo + (int)(x % range);
        x /= range;
      }
    }
    rc = eval_batch(s, cs, n, err);
    for (int k = 0; k < n && rc == LS_OK; k++)
      if (cs[k].meets_target && (!have || better(s, &cs[k], &pick))) {
        pick = cs[k];
        have = 1;
      }
  }
  free(cs);
  LS_TRY(rc);
  if (!have) {
    base_cand(s, best, LS_CAND_BUDGET);
    return eval_batch(s, best, 1, err);
  }
  *best = pick;
  return LS_OK;
}

static int early_exit_sweep(searcher *s, ls_cand *best, ls_err *err) {
  int n = s->job->n_windows * s->job->n_thresholds;
  if (n == 0) return LS_OK;
  ls_cand *cs = calloc((size_t)n, sizeof *cs);
  if (!cs) return ls_err_set(err, LS_ENOMEM, "out of memory");
  for (int w = 0; w < s->job->n_windows; w++)
    for (int t = 0; t < s->job->n_thresholds; t++) {
      ls_cand *c = &cs[w * s->job->n_thresholds + t];
      base_cand(s, c, LS_CAND_EARLY_EXIT);
      memcpy(c->budget, best->budget, sizeof c->budget);
      for (int st = 0; st < s->S; st++) {
        c->ee_window[st] = s->job->windows[w];
        c->ee_threshold[st] = s->job->thresholds[t];
      }
    }
  int rc = eval_batch(s, cs, n, err);
  for (int k = 0; k < n && rc == LS_OK; k++)
    if (cs[k].meets_target && better(s, &cs[k], best)) *best = cs[k];
  free(cs);
  return rc;
}

/* ---- Pareto front and schedule ------------------------------------------- */

static int pareto(const searcher *s, int64_t **out, int *n_out, ls_err *err) {
  int64_t *ids = calloc((size_t)s->n_known + 1, sizeof *ids);
  if (!ids) return ls_err_set(err, LS_ENOMEM, "out of memory");
  int n = 0;
  for (int64_t i = 0; i < s->n_known; i++) {
    const ls_cand *a = &s->known[i];
    int dominated = 0;
    for (int64_t j = 0; j < s->n_known && !dominated; j++) {
      const ls_cand *b = &s->known[j];
      double la = cand_latency(s, a), lb = cand_latency(s, b);
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
      if (!(cand_latency(s, x) < cand_latency(s, y) || (cand_latency(s, x) == cand_latency(s, y) && x->id < y->id))) break;
      int64_t t = ids[b];
      ids[b] = ids[b - 1];
      ids[b - 1] = t;
    }
  *out = ids;
  *n_out = n;
  return LS_OK;
}

static int make_schedule(searcher *s, const ls_cand *c, const uint8_t *masks, const ls_cand *ref_cand,
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
  double ref_lat = ref_cand ? cand_latency(s, ref_cand) : NAN;
  sc->speedup = ref_lat / cand_latency(s, c);
  sc->prov_candidate_id = c->id;
  if (rc == LS_OK) rc = ls_schedule_to_string(sc, json, err);
  ls_schedule_free(sc);
  return rc;
}

/* ---- the run --------------------------------------------------------------- */

static int gather_hosts(searcher *s, char *hosts, size_t n) {
  char name[MPI_MAX_PROCESSOR_NAME] = "";
  int len = 0;
  MPI_Get_processor_name(name, &len);
  char *all = calloc((size_t)s->dist.size, MPI_MAX_PROCESSOR_NAME);
  if (!all) return -1;
  MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, s->dist.comm);
  hosts[0] = 0;
  if (s->dist.rank == 0) {
    for (int r = 0; r < s->dist.size; r++) {
      const char *h = all + (size_t)r * MPI_MAX_PROCESSOR_NAME;
      int seen = 0;
      for (int q = 0; q < r; q++) seen |= strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME) == 0;
      if (!seen) {
        if (hosts[0]) strncat(hosts, ",", n - strlen(hosts) - 1);
        strncat(hosts, h, n - strlen(hosts) - 1);
      }
    }
  }
  free(all);
  MPI_Bcast(hosts, (int)n, MPI_CHAR, 0, s->dist.comm);
  return 0;
}

static int open_all(searcher *s, ls_err *err) {
  ls_job *j = s->job;
  ls_engine_params p = {.model_path = j->model, .tokenizer_path = j->tokenizer, .n_threads = j->threads,
                        .temperature = 0.0f, .top_p = 1.0f, .seed = j->seed, .need_tokenizer = 1,
                        .fingerprint = 1, .kv_policy = j->kv_policy,
                        /* ranks on one node share the file's page cache; N private
                         * copies would multiply the weights' memory (LS_WEIGHTS=copy
                         * overrides) */
                        .weights = getenv("LS_WEIGHTS") ? LS_WEIGHTS_AUTO : LS_WEIGHTS_MAP};
  LS_TRY(ls_engine_open(&s->eng, &p, err));
  s->have_eng = 1;
  s->L = s->eng.model.cfg.n_layers;
  LS_TRY(ls_template_load(j->template_path, &s->tpl, err));
  s->S = s->tpl->n_stages;
  if (s->S > LS_SEARCH_MAX_STAGES) return ls_err_set(err, LS_EUNSUPPORTED, "%s: more than %d stages", j->template_path, LS_SEARCH_MAX_STAGES);
  if (j->max_new_tokens > 0)
    for (int st = 0; st < s->S; st++)
      if (s->tpl->stages[st].max_new_tokens > j->max_new_tokens) s->tpl->stages[st].max_new_tokens = j->max_new_tokens;
  LS_TRY(ls_dataset_load(j->dataset, j->dataset_format, &s->ds, err));
  LS_TRY(ls_dataset_select(s->ds, j->limit, 0, 1, err));
  s->E = s->ds->n;
  if (!j->latency_measured) {
    LS_TRY(ls_profile_load(&s->prof, j->latency, err));
    s->have_prof = 1;
    LS_TRY(ls_profile_check_model(&s->prof, &s->eng.model, NULL, j->latency, err));
  }
  return LS_OK;
}

static int run(searcher *s, ls_err *err) {
  ls_job *j = s->job;
  LS_TRY(open_all(s, err));
  s->ranking = calloc((size_t)2 * s->L, sizeof *s->ranking);
  s->cand_scores = calloc((size_t)s->E + 1, sizeof *s->cand_scores);
  if (!s->ranking || !s->cand_scores) return ls_err_set(err, LS_ENOMEM, "out of memory");
  char hosts[4096];
  if (gather_hosts(s, hosts, sizeof hosts) < 0) return ls_err_set(err, LS_ENOMEM, "out of memory");
  const char *stage_names[LS_SEARCH_MAX_STAGES];
  for (int st = 0; st < s->S; st++) stage_names[st] = s->tpl->stages[st].name;
  ls_store_info info = {.job_json = j->text, .job_hash = j->hash, .job_path = j->path,
                        .model_fingerprint = s->eng.fingerprint, .model_name = s->eng.model.name,
                        .objective = ls_objective_name(j->objective), .strategy = ls_strategy_name(j->strategy),
                        .n_stages = s->S, .n_layers = s->L, .n_examples = s->E, .n_shards = j->shards,
                        .ranks = s->dist.size, .threads = j->threads, .hosts = hosts, .stage_names = stage_names};
  if (s->opts->resume) {
    ls_cand *loaded = NULL;
    int64_t nl = 0;
    int rc = ls_store_resume(&s->store, s->opts->store_path, s->dist.comm, &info, &loaded, &nl, err);
    s->have_store = s->store.file >= 0; /* closed (and PATH.work removed) on the way out */
    if (rc != LS_OK && !s->have_store) ls_store_abandon(&s->store);
    LS_TRY(rc);
    for (int64_t i = 0; i < nl; i++) {
      int rc = add_known(s, &loaded[i], err);
      if (rc != LS_OK) {
        free(loaded);
        return rc;
      }
    }
    free(loaded);
    if (s->dist.rank == 0)
      fprintf(stderr, "litestage-search: resuming %s: %lld finished candidates will not be evaluated again\n",
              s->opts->store_path, (long long)nl);
  } else {
    int rc = ls_store_create(&s->store, s->opts->store_path, s->dist.comm, &info, s->opts->force, err);
    s->have_store = s->store.file >= 0;
    if (rc != LS_OK && !s->have_store) ls_store_abandon(&s->store);
    LS_TRY(rc);
  }
  s->t0 = ls_now_ms();
  if (s->dist.rank == 0 && !s->opts->quiet)
    fprintf(stderr, "litestage-search: reference pass over %d examples (%d stages)\n", s->E, s->S);
  LS_TRY(reference_pass(s, err));
  int32_t gold[s->E > 0 ? s->E : 1];
  const char *ids[s->E > 0 ? s->E : 1];
  for (int i = 0; i < s->E; i++) {
    gold[i] = s->ds->ex[i].answer;
    ids[i] = s->ds->ex[i].id;
  }
  LS_TRY(ls_store_write_reference(&s->store, s->ref_sum, ids, gold, s->ref_score, s->chance, s->target,
                                  s->stage_order, err));
  if (j->objective == LS_OBJ_ACCURACY) {
    /* chance level: not above uniform guessing by two binomial standard deviations */
    double sd = sqrt(s->chance * (1 - s->chance) / s->E);
    if (s->ref_score <= s->chance + 2 * sd) {
      LS_TRY(ls_store_set_status(&s->store, "chance-level", err));
      return ls_err_set(err, LS_ECHANCE,
                        "%s: the full model's accuracy %.4f is at chance level (%.4f + 2 sd = %.4f over %d examples): "
                        "there is nothing to preserve; use a model that can answer these questions, or the "
                        "agreement or fidelity objective",
                        j->path, s->ref_score, s->chance, s->chance + 2 * sd, s->E);
    }
  }
  int n2 = 2 * s->L;
  double *per_stage = calloc((size_t)s->S * n2, sizeof(double)), *acc = calloc((size_t)n2, sizeof(double));
  int32_t *psr = calloc((size_t)s->S * n2, sizeof(int32_t));
  int rc = !per_stage || !acc || !psr ? ls_err_set(err, LS_ENOMEM, "out of memory") : LS_OK;
  double t_imp = ls_now_ms();
  if (rc == LS_OK) rc = importance_pass(s, per_stage, acc, psr, err);
  if (rc == LS_OK && s->dist.rank == 0 && !s->opts->quiet)
    fprintf(stderr, "litestage-search: importance pass in %.2f s\n", (ls_now_ms() - t_imp) / 1000.0);
  if (rc == LS_OK) rc = ls_store_write_importance(&s->store, per_stage, acc, s->ranking, psr, err);
  free(per_stage);
  free(acc);
  free(psr);
  LS_TRY(rc);
  if (s->dist.rank == 0 && !s->opts->quiet) {
    fprintf(stderr, "litestage-search: reference score %.4f, target %.4f; importance ranking:", s->ref_score, s->target);
    for (int k = 0; k < n2 && k < 12; k++) {
      char name[32];
      ls_sublayer_index_name(s->ranking[k], name, sizeof name);
      fprintf(stderr, " %s", name);
    }
    fprintf(stderr, "%s\n", n2 > 12 ? " ..." : "");
  }
  int range = j->budget_max - j->budget_min + 1;
  int64_t grid = (int64_t)j->n_windows * j->n_thresholds;
  if (j->strategy == LS_STRAT_GREEDY) {
    /* every stage after the first starts from the candidate already chosen: one repeat each */
    s->expected_total = (int64_t)s->S * range - (s->S - 1) + grid;
  } else {
    s->expected_total = grid;
    int64_t t = 1;
    for (int st = 0; st < s->S; st++) t *= range;
    s->expected_total += t;
  }
  ls_cand best;
  LS_TRY(j->strategy == LS_STRAT_GREEDY ? greedy(s, &best, err) : exhaustive(s, &best, err));
  LS_TRY(early_exit_sweep(s, &best, err));
  /* the full model as a candidate, for the speedup (usually already evaluated) */
  ls_cand full;
  base_cand(s, &full, LS_CAND_BUDGET);
  for (int st = 0; st < s->S; st++) full.budget[st] = 0;
  const ls_cand *fk = find_known(s, &full);
  int64_t *front = NULL;
  int nf = 0;
  LS_TRY(pareto(s, &front, &nf, err));
  uint8_t *masks = calloc((size_t)s->S * s->L, 1);
  char *json = NULL;
  rc = masks ? LS_OK : ls_err_set(err, LS_ENOMEM, "out of memory");
  if (rc == LS_OK) {
    masks_for(s, best.budget, masks);
    rc = make_schedule(s, &best, masks, fk, &json, err);
  }
  if (rc == LS_OK) rc = ls_store_finish(&s->store, front, nf, json, best.id, "complete", err);
  if (rc == LS_OK && s->dist.rank == 0) {
    char d[256];
    describe(s, &best, d, sizeof d);
    fprintf(stderr, "litestage-search: done in %.3f s: chose candidate #%lld (%s): score %.4f (target %.4f), %.2f ms%s\n",
            (ls_now_ms() - s->t0) / 1000.0, (long long)best.id, d, best.score, s->target, cand_latency(s, &best),
            j->latency_measured ? " measured" : " predicted");
  }
  free(front);
  free(masks);
  free(json);
  return rc;
}

/* After the collective close every rank is here with an error: if all hold the same one (store
 * and round errors are agreed), only rank 0 keeps the message, so that it is printed once. */
static void report_once(const searcher *s, int rc, ls_err *err) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(uint32_t)rc, lo = 0, hi = 0;
  for (const char *p = err->msg; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  if (MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, s->dist.comm) != MPI_SUCCESS ||
      MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, s->dist.comm) != MPI_SUCCESS)
    return;
  if (lo == hi && s->dist.rank != 0) err->msg[0] = 0;
}

int ls_search_run(ls_job *job, const ls_search_opts *o, MPI_Comm comm, volatile sig_atomic_t *stop, ls_err *err) {
  searcher s;
  memset(&s, 0, sizeof s);
  s.job = job;
  s.opts = o;
  int rc = ls_dist_init(&s.dist, comm, stop, err);
  if (rc == LS_OK) rc = run(&s, err);
  /* make every rank agree on the outcome before touching the store collectively */
  if (rc != LS_EMPI && s.have_store) {
    if (rc == LS_EINTERRUPTED) {
      ls_err e2 = {0};
      ls_store_set_status(&s.store, "interrupted", &e2);
    } else if (rc != LS_OK && rc != LS_ECHANCE) {
      ls_err e2 = {0};
      ls_store_set_status(&s.store, "failed", &e2);
    }
    ls_err e3 = {0};
    int crc = ls_store_close(&s.store, &e3);
    if (rc == LS_OK && crc != LS_OK) {
      rc = crc;
      *err = e3;
    }
    if (rc != LS_OK && rc != LS_EINTERRUPTED && rc != LS_ECHANCE) report_once(&s, rc, err);
  } else if (s.have_store) {
    ls_store_abandon(&s.store);
  }
  if (s.ref)
    for (int i = 0; i < s.E; i++) ls_example_result_free(&s.ref[i]);
  free(s.ref);
  free(s.ref_sum);
  free(s.ranking);
  free(s.cand_scores);
  free(s.known);
  if (s.have_prof) ls_profile_free(&s.prof);
  if (s.ds) ls_dataset_free(s.ds);
  if (s.tpl) ls_template_free(s.tpl);
  if (s.have_eng) ls_engine_close(&s.eng);
  return rc;
}
