/* Work distribution over MPI ranks (docs/search.md, "Distribution").
 *
 * A round is a list of candidates; each candidate is scored on every shard of
 * the calibration examples, so a round has n_cands x n_shards work units,
 * numbered u = cand * n_shards + shard. Rank 0 is the coordinator: a
 * coordinator thread on rank 0 hands out units in order to the ranks that ask
 * (dynamic balancing: generation lengths vary), while rank 0's main thread
 * works on units too. A worker holds up to LS_DIST_PREFETCH units (the next one
 * is already there when it sends a result back, so it never waits for the
 * coordinator). Workers send each unit's per-example results back; after the
 * round rank 0 broadcasts every result, the owner of every unit and which
 * candidates are complete, so every rank holds the same data and takes the
 * same decisions. Scores are combined per candidate in example order by the
 * caller, so they are bit-identical for any number of ranks and threads.
 *
 * Threading: only the coordinator thread calls MPI during a round (rank 0's
 * main thread computes), so MPI_THREAD_SERIALIZED is enough. The coordinator
 * thread also runs the candidate-done callback (rank 0 commits the candidate
 * to the store there, docs/search.md "Store and resume"), in completion order,
 * outside the round's lock; the thread exists with one rank too, so a single
 * process overlaps its commits with computing as well.
 *
 * Stop: when the stop flag is set (SIGTERM/SIGUSR1 on any rank), no new unit
 * is handed out, the units in flight finish, and the round ends with
 * r->stopped = 1; complete[] says which candidates have every shard. An
 * evaluation error on any rank (or a failed done callback) ends the round the
 * same way and is returned (the same message on every rank, naming the rank).
 * A failed MPI call (a rank died, with MPI_ERRORS_RETURN on the communicator)
 * is LS_EMPI. */
#ifndef LS_DIST_H
#define LS_DIST_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "ls_error.h"

#define LS_SEARCH_MAX_STAGES 16
#define LS_DIST_PREFETCH 2 /* units a worker holds: the one it computes and the next */

/* What one candidate did on one example. Plain old data: sent as bytes
 * between ranks (ranks of one job run the same binary on the same ABI). */
typedef struct ls_example_score {
  double score;        /* objective on this example, in [0, 1] */
  double measured_ms;  /* the example's generation: sum of its stage calls' prefill + decode wall ms */
  double predicted_ms; /* profile prediction from its token counts (NAN: no profile) */
  int32_t prompt_tokens[LS_SEARCH_MAX_STAGES]; /* per stage, summed over the stage's calls */
  int32_t n_generated[LS_SEARCH_MAX_STAGES];    /* per stage, summed over the stage's calls */
  int32_t answer;      /* extracted option index, -1 none */
  int32_t correct;     /* answer == gold */
  int32_t done;        /* 1 once computed */
  int32_t pad_;
} ls_example_score;

typedef struct ls_dist {
  MPI_Comm comm;
  int rank, size;
  volatile sig_atomic_t *stop_flag; /* may be NULL */
  int poll_us;                      /* coordinator's sleep when idle (nothing to receive or commit) */
} ls_dist;

typedef struct ls_round {
  int n_cands, n_shards, n_examples;
  int *shard_begin;    /* [n_shards + 1] example ranges: shard k is [begin[k], begin[k+1]) */
  ls_example_score *res;   /* [n_cands][n_examples] */
  int *owner;          /* [n_cands][n_shards] rank that computed the unit, -1 if not done */
  double *unit_ms;     /* [n_cands][n_shards] wall time of the unit */
  uint8_t *complete;   /* [n_cands] every shard done */
  int stopped;         /* ended early by a stop signal or an error */
  double wall_ms;      /* rank 0: wall time of the round's units (from the first handed out to the last back) */
  double busy_ms;      /* rank 0: sum of unit_ms over the round (compute time of every rank) */
} ls_round;

/* Evaluates one unit: candidate `cand` of the round on examples [begin, end); fills out[0..end-begin). */
typedef int (*ls_unit_fn)(void *user, int cand, int shard, int begin, int end, ls_example_score *out, ls_err *err);
/* Called on rank 0 (coordinator thread, not under the round's lock) for each candidate that got
 * its last shard, in completion order; r->res of that candidate is final. A non-OK status ends
 * the round as an error. */
typedef int (*ls_cand_done_fn)(void *user, const ls_round *r, int cand, ls_err *err);

int ls_dist_init(ls_dist *d, MPI_Comm comm, volatile sig_atomic_t *stop_flag, ls_err *err);

/* Allocates a round; shard bounds from ls_shard_bounds. */
int ls_round_new(ls_round *r, int n_cands, int n_shards, int n_examples, ls_err *err);
void ls_round_free(ls_round *r);

/* Runs a round on every rank of d (collective). */
int ls_dist_run(ls_dist *d, ls_round *r, ls_unit_fn fn, ls_cand_done_fn done, void *user, ls_err *err);

/* Any rank's stop flag set? (collective; used between rounds) */
int ls_dist_any_stop(ls_dist *d, int *any, ls_err *err);

#endif
