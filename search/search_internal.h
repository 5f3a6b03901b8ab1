/* The search's private interface (the files of search/ only): the state one rank holds during a search
 * and the steps ls_search_run (search.c) is built from, one file per concern:
 *   candidates.c  candidate helpers: masks from budgets, latency, ordering, the known list
 *   evaluate.c    evaluation: one example, the work units, a candidate's commit, a round
 *   importance.c  the reference pass and the importance ranking
 *   strategies.c  greedy and exhaustive budgets, the early-exit sweep
 *   pareto.c      the Pareto front and the chosen schedule
 *   search.c      the run: open, store, passes, strategy, choice, close
 * Every rank runs the same control flow on the same broadcast results (ls_search.h). */
#ifndef LS_SEARCH_INTERNAL_H
#define LS_SEARCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ls_dataset.h"
#include "ls_dist.h"
#include "ls_engine.h"
#include "ls_gen_memo.h"
#include "ls_job.h"
#include "ls_pipeline.h"
#include "ls_profile.h"
#include "ls_search.h"
#include "ls_stage_memo.h"
#include "ls_store.h"
#include "ls_template.h"

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
  int lanes;                /* examples of a shard run at once (ls_pipeline_run_many; search.c) */
  ls_stage_memo memo;       /* stage fidelities scored on this rank (not under shared-prefix) */
  ls_gen_memo gen_memo;     /* shard runs generated on this rank (ls_gen_memo.h) */
  int use_gen_memo;         /* 0 when the job ranks by measured latency, or LS_SEARCH_GEN_MEMO=0 */
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

/* ---- candidates.c ---- */

/* The skip masks [S][L] of per-stage budgets: each stage skips its budget's most redundant
 * sub-layers of the ranking. */
void ls_search_masks_for(const searcher *s, const int32_t *budget, uint8_t *masks);
/* The latency the job ranks by: measured or predicted (ms). */
double ls_search_cand_latency(const searcher *s, const ls_cand *c);
/* a is better than b (or b is NULL): lower latency, ties to the earlier candidate. */
int ls_search_better(const searcher *s, const ls_cand *a, const ls_cand *b);
/* The evaluated candidate with c's definition (kind, budgets, early-exit), or NULL. */
const ls_cand *ls_search_find_known(const searcher *s, const ls_cand *c);
int ls_search_add_known(searcher *s, const ls_cand *c, ls_err *err);
/* "budgets 3,5 ee 4/0.5" for progress lines. */
void ls_search_describe(const searcher *s, const ls_cand *c, char *buf, size_t n);

/* ---- evaluate.c ---- */

/* A work unit (ls_dist_unit_fn; user is the searcher): examples [begin, end) of the reference
 * pass or of the round's candidate `cand`. */
int ls_search_unit(void *user, int cand, int shard, int begin, int end, ls_example_score *out, ls_err *err);
/* Rank 0, not quiet: how well a round used the ranks. */
void ls_search_round_stats(const searcher *s, const char *what, const ls_round *r, double sync_ms);
/* Evaluates cands[0..n) (ids assigned here): reuses known results, runs the rest as one round,
 * appends the complete ones to the store. On return every cands[i] holds its results. */
int ls_search_eval_batch(searcher *s, ls_cand *cands, int n, ls_err *err);

/* ---- importance.c ---- */

/* The full model over every example: s->ref, s->ref_sum, the reference score, chance, target and
 * the stage order (slowest first). */
int ls_search_reference_pass(searcher *s, ls_err *err);
/* Sub-layer cosine statistics per stage (per_stage [S][2L]) and averaged (acc [2L]), the rankings
 * per stage (per_stage_rank [S][2L]) and overall (s->ranking). */
int ls_search_importance_pass(searcher *s, double *per_stage, double *acc, int32_t *per_stage_rank, ls_err *err);

/* ---- strategies.c ---- */

/* A candidate of `kind` (LS_CAND_*) with every stage at the minimum budget. */
void ls_search_base_cand(const searcher *s, ls_cand *c, int kind);
int ls_search_greedy(searcher *s, ls_cand *best, ls_err *err);
int ls_search_exhaustive(searcher *s, ls_cand *best, ls_err *err);
/* Tries every (window, threshold) of the job on best's budgets; best becomes the better one. */
int ls_search_early_exit_sweep(searcher *s, ls_cand *best, ls_err *err);

/* ---- pareto.c ---- */

/* The ids of the known candidates no other beats in both score and latency, by latency. */
int ls_search_pareto(const searcher *s, int64_t **out, int *n_out, ls_err *err);
/* Candidate c (masks [S][L]) as schedule JSON with its provenance; ref_cand (the full model, or
 * NULL) gives the speedup. */
int ls_search_make_schedule(searcher *s, const ls_cand *c, const uint8_t *masks, const ls_cand *ref_cand,
                            char **json, ls_err *err);

#endif
