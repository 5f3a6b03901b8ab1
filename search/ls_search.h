/* litestage-search run: the reference pass, the importance ranking, the
 * budget search (greedy | exhaustive), the early-exit sweep, the Pareto front
 * and the chosen schedule, over MPI ranks (ls_dist.h) into an HDF5 store
 * (ls_store.h). Every rank runs the same deterministic control flow on the
 * same broadcast results, so collective store calls line up. */
#ifndef LS_SEARCH_H
#define LS_SEARCH_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "ls_error.h"
#include "ls_job.h"

/* Exit statuses of `litestage-search run` (docs/search.md). */
enum { LS_EXIT_OK = 0, LS_EXIT_ERROR = 1, LS_EXIT_USAGE = 2, LS_EXIT_INTERRUPTED = 3, LS_EXIT_CHANCE = 4 };

/* A search stopped because the reference score is at chance level: nothing to preserve. */
#define LS_ECHANCE 100

typedef struct ls_search_opts {
  const char *store_path;
  int resume;
  int force; /* replace an existing store */
  int quiet; /* no progress lines */
} ls_search_opts;

/* Runs a validated job (collective over comm). Returns LS_OK, LS_EINTERRUPTED after a clean
 * checkpoint (stop flag), LS_ECHANCE, or an error. An error every rank shares is left in rank 0's
 * err only (the other ranks get an empty message): print a non-empty message. */
int ls_search_run(ls_job *job, const ls_search_opts *o, MPI_Comm comm, volatile sig_atomic_t *stop, ls_err *err);

/* The profile's prediction (ms) for one example's run: every stage call's prefill plus its
 * decode calls (ls_call_decode_calls), with that stage's mask (masks [n_stages][n_layers], or
 * NULL for the full model). Summed in call order: deterministic. */
struct ls_profile;
struct ls_example_result;
double ls_search_predict_ms(const struct ls_profile *p, const struct ls_example_result *res, const uint8_t *masks,
                            int n_layers);

/* Readable tables of a store (no MPI). */
int ls_search_show(const char *store_path, ls_err *err);
/* Writes the chosen schedule (or candidate `id` when id >= 0) as a schedule JSON file (no MPI). */
int ls_search_export(const char *store_path, long long id, const char *out_path, ls_err *err);

/* Under LeakSanitizer (ASan builds): runs the leak check now and disables the one at exit.
 * MPI programs call it after freeing everything they own and before MPI_Finalize, so that
 * leaks of our code are reported while Open MPI's dlopen'ed plugins, whose state is still
 * reachable, are not (docs/search.md, "Leak checking"). A no-op in other builds. */
void ls_search_leak_check(void);

#endif
