/* Evaluation in the search (search_internal.h): one example under a candidate's masks, the work
 * units the ranks run, a candidate's commit as it completes, a round of candidates. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_util.h"
#include "search_internal.h"

/* ---- evaluation of one example ------------------------------------------ */

double ls_search_predict_ms(const ls_profile *p, const ls_example_result *res, const uint8_t *masks, int n_layers) {
  return ls_predict_chain_ms(p, res, masks, n_layers);
}

static void plans_for(const searcher *s, const uint8_t *masks, const int32_t *eew, const double *eet,
                      ls_stage_plan *plans) {
  for (int st = 0; st < s->S; st++)
    plans[st] = (ls_stage_plan){.skip = masks ? masks + (size_t)st * s->L : NULL, .ee_window = eew ? eew[st] : 0,
                                .ee_threshold = eet ? (float)eet[st] : 0.0f};
}

/* Examples [begin, end) run as a shard runs them: together, up to s->lanes at a time, from an
 * empty KV cache (what a unit reuses then depends on the unit alone, not on what its rank ran
 * before: the same bits for any rank count, also under shared-prefix). The stage groups an
 * earlier run of the shard on this rank started under the same plans are replayed from
 * s->gen_memo, not generated: the same results (ls_gen_memo.h), so again the same bits for any
 * rank count and with --resume. */
static int run_shard(searcher *s, int begin, int end, const ls_stage_plan *plans, ls_example_result *res,
                     ls_err *err) {
  ls_engine_clear_cache(&s->eng);
  int n = end - begin;
  return ls_pipeline_run_memo(&s->eng, s->tpl, &s->ds->ex[begin], n, plans, n < s->lanes ? n : s->lanes,
                              s->use_gen_memo ? &s->gen_memo : NULL, begin, res, err);
}

/* An example's counts, answer and latencies from its run. */
static void example_score(const searcher *s, const ls_example_result *res, const uint8_t *masks,
                          ls_example_score *out) {
  memset(out, 0, sizeof *out);
  out->answer = res->answer;
  out->correct = res->correct == 1;
  out->done = 1;
  for (int st = 0; st < s->S; st++) {
    out->prompt_tokens[st] = res->stages[st].prompt_tokens;
    out->n_generated[st] = res->stages[st].n_generated;
  }
  out->predicted_ms = s->have_prof ? ls_search_predict_ms(&s->prof, res, masks, s->L) : NAN;
  /* What `litestage-run pipeline` reports as latency_ms: the example's forward passes (every
   * stage call's prefill + decode loop, its share of the batches it ran in), without tokenising
   * and rendering prompts. */
  out->measured_ms = res->total_ms;
}

/* Fidelity of examples [begin, begin + n) under plans, the shard's teacher forcing together;
 * stages scored before on this rank are taken from s->memo (not under shared-prefix, where a
 * stage's score depends on the earlier stages' plans too). */
static int shard_fidelity(searcher *s, int begin, int n, const ls_stage_plan *plans, const int32_t *eew,
                          const double *eet, ls_example_score *out, ls_err *err) {
  double *fid = calloc((size_t)n, sizeof *fid), *stage_fid = calloc((size_t)n * s->S, sizeof *stage_fid);
  uint8_t *given = calloc((size_t)n * s->S, 1);
  int rc = fid && stage_fid && given ? LS_OK : ls_err_set(err, LS_ENOMEM, "out of memory for fidelity");
  int memo = s->job->kv_policy != LS_KV_SHARED_PREFIX;
  for (int i = 0; rc == LS_OK && memo && i < n; i++)
    for (int st = 0; st < s->S; st++)
      given[i * s->S + st] = (uint8_t)ls_stage_memo_find(&s->memo, begin + i, st, plans[st].skip, eew[st], eet[st],
                                                         &stage_fid[i * s->S + st]);
  if (rc == LS_OK) {
    /* Under reuse the prompts the generation just ran serve the teacher forcing as they are (the
     * same tokens under the same mask: the same K/V bit for bit), so the cache is kept but for
     * what the generation memory held without running it; under shared-prefix what the cache
     * holds would change the scores, so they start from an empty one. */
    if (s->job->kv_policy == LS_KV_SHARED_PREFIX) ls_engine_clear_cache(&s->eng);
    else ls_engine_drop_held(&s->eng);
    rc = ls_pipeline_fidelity_many(&s->eng, s->tpl, plans, &s->ref[begin], n, n < s->lanes ? n : s->lanes, given,
                                   fid, stage_fid, err);
  }
  for (int i = 0; rc == LS_OK && i < n; i++) {
    out[i].score = fid[i];
    for (int st = 0; memo && rc == LS_OK && st < s->S; st++)
      if (!given[i * s->S + st])
        rc = ls_stage_memo_add(&s->memo, begin + i, st, plans[st].skip, eew[st], eet[st], stage_fid[i * s->S + st],
                               err);
  }
  free(fid);
  free(stage_fid);
  free(given);
  return rc;
}

/* A candidate on examples [begin, end): the shard's runs together, then their scores. */
static int score_shard(searcher *s, int begin, int end, const uint8_t *masks, const int32_t *eew, const double *eet,
                       ls_example_score *out, ls_err *err) {
  int n = end - begin;
  ls_stage_plan plans[LS_SEARCH_MAX_STAGES];
  plans_for(s, masks, eew, eet, plans);
  ls_example_result *res = calloc((size_t)n, sizeof *res);
  int rc = res ? run_shard(s, begin, end, plans, res, err) : ls_err_set(err, LS_ENOMEM, "out of memory");
  for (int i = 0; rc == LS_OK && i < n; i++) {
    example_score(s, &res[i], masks, &out[i]);
    if (s->job->objective == LS_OBJ_ACCURACY) out[i].score = out[i].correct ? 1.0 : 0.0;
    if (s->job->objective == LS_OBJ_AGREEMENT) out[i].score = out[i].answer == s->ref_sum[begin + i].answer;
  }
  if (rc == LS_OK && s->job->objective == LS_OBJ_FIDELITY) rc = shard_fidelity(s, begin, n, plans, eew, eet, out, err);
  for (int i = 0; res && i < n; i++) ls_example_result_free(&res[i]);
  free(res);
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
  LS_TRY(run_shard(s, begin, end, NULL, &s->ref[begin], err));
  for (int i = begin; i < end; i++) {
    example_score(s, &s->ref[i], NULL, &out[i - begin]);
    switch (s->job->objective) {
      case LS_OBJ_ACCURACY: out[i - begin].score = out[i - begin].correct ? 1.0 : 0.0; break;
      default: out[i - begin].score = 1.0; break; /* the full model agrees with itself */
    }
  }
  return LS_OK;
}

/* Test hook (tests/integration/slurm_preempt.sh, slurm_plumbing.sh): LS_SEARCH_TEST_HOLD="ID:FILE"
 * makes a rank wait before a unit of candidate ID or later, while FILE exists and no stop was
 * asked (at most 300 s): candidates below ID all complete, and a test's warning signal then
 * always finds the search running (these test searches finish faster than a signal travels
 * through Slurm). */
static void maybe_hold(const searcher *s, int64_t cand_id) {
  const char *v = getenv("LS_SEARCH_TEST_HOLD");
  long long id = 0;
  int at = 0;
  if (!v || sscanf(v, "%lld:%n", &id, &at) != 1 || at == 0 || cand_id < id) return;
  for (int i = 0; i < 30000 && access(v + at, F_OK) == 0 && !(s->dist.stop_flag && *s->dist.stop_flag); i++)
    usleep(10000);
}

int ls_search_unit(void *user, int cand, int shard, int begin, int end, ls_example_score *out, ls_err *err) {
  (void)shard;
  searcher *s = user;
  maybe_die(s);
  if (s->ref_phase) {
    int rc = ref_unit(s, begin, end, out, err);
    return rc == LS_OK ? rc : ls_err_prefix(err, "reference pass, examples %d..%d", begin, end - 1);
  }
  const ls_cand *c = &s->round_cands[cand];
  maybe_hold(s, c->id);
  const uint8_t *m = s->round_masks + (size_t)cand * s->S * s->L;
  int rc = score_shard(s, begin, end, m, c->ee_window, c->ee_threshold, out, err);
  return rc == LS_OK ? rc : ls_err_prefix(err, "candidate %lld, examples %d..%d", (long long)c->id, begin, end - 1);
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
  if (c.meets_target && (!s->have_round_best || ls_search_better(s, &c, &s->round_best))) {
    s->round_best = c;
    s->have_round_best = 1;
  }
  const ls_cand *best = s->have_round_best ? &s->round_best : NULL;
  for (int64_t i = 0; i < s->n_known; i++)
    if (s->known[i].meets_target && (!best || ls_search_better(s, &s->known[i], best))) best = &s->known[i];
  double el = (ls_now_ms() - s->t0) / 1000.0;
  int64_t left = s->expected_total > done ? s->expected_total - done : 0;
  double eta = el / (double)s->evaluated_run * (double)left;
  char d[256], b[256] = "none yet";
  ls_search_describe(s, &c, d, sizeof d);
  if (best) {
    char bd[200];
    ls_search_describe(s, best, bd, sizeof bd);
    snprintf(b, sizeof b, "#%lld (%s) score %.4f, %.2f ms", (long long)best->id, bd, best->score, ls_search_cand_latency(s, best));
  }
  fprintf(stderr,
          "litestage-search: candidate #%lld (%s): score %.4f, %.2f ms | %lld/%lld done, elapsed %.1f s, ETA %.1f s, best so far %s\n",
          (long long)c.id, d, c.score, ls_search_cand_latency(s, &c), (long long)done, (long long)s->expected_total, el, eta, b);
  return LS_OK;
}

/* Rank 0, not quiet: how well a round used the ranks. */
void ls_search_round_stats(const searcher *s, const char *what, const ls_round *r, double sync_ms) {
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
int ls_search_eval_batch(searcher *s, ls_cand *cands, int n, ls_err *err) {
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
    const ls_cand *k = ls_search_find_known(s, &cands[i]);
    if (k) {
      cands[i] = *k;
      if (k->id >= s->next_id) s->next_id = k->id + 1;
      map[i] = -1;
    } else {
      cands[i].id = s->next_id++;
      map[i] = nt;
      todo[nt] = cands[i];
      ls_search_masks_for(s, todo[nt].budget, masks + (size_t)nt * msz);
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
      int drc = ls_dist_run(&s->dist, &r, ls_search_unit, cand_done, s, err);
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
      for (int j = 0; j < nd && arc == LS_OK; j++) arc = ls_search_add_known(s, &done[j], err);
      char what[64];
      snprintf(what, sizeof what, "round %d (%d candidates)", s->round_no, nt);
      ls_search_round_stats(s, what, &r, ls_now_ms() - t_sync);
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
