/* The HDF5 results store (schema: docs/hdf5-schema.md).
 *
 * Written by every rank through the MPI-IO driver: dataset creation and
 * extension are collective, the candidate rows are written by rank 0, and the
 * per-example score matrix /scores is written collectively, each rank selecting
 * the hyperslabs of the (candidate, shard) units it computed.
 *
 * Crash safety: the ranks write to PATH.work; after every collective commit
 * (the end of a round) the file is flushed and rank 0 copies it to a temporary
 * file, fsyncs it and renames it over PATH. Between those, rank 0 commits every
 * candidate the moment its last shard is in (ls_store_commit_one): a copy of
 * PATH plus the candidate's row and its /scores row, written with the serial
 * driver, fsynced and renamed over PATH. PATH is therefore always a complete
 * store holding every finished candidate: a kill -9 at any moment leaves a file
 * that opens and loses at most the candidates in flight. The round's collective
 * append then writes the same candidates (in round order, the /scores blocks by
 * the ranks that computed them) into PATH.work, whose copy replaces PATH.
 * Resume copies PATH back to PATH.work and continues. */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

#include "ls_dist.h"
#include "ls_error.h"

#define LS_STORE_SCHEMA_VERSION 1

/* Free space a commit needs beyond the size of the file it copies (metadata and a round's rows). */
#define LS_STORE_SPACE_MARGIN (1 << 20)

/* Candidate kinds (column /candidates/kind). */
enum { LS_CAND_BUDGET = 1, LS_CAND_EARLY_EXIT = 2 };

/* One evaluated candidate: its definition and its aggregated results. */
typedef struct ls_cand {
  int64_t id;       /* generation order; the same on resume */
  int32_t kind;     /* LS_CAND_* */
  int32_t budget[LS_SEARCH_MAX_STAGES];       /* sub-layers skipped per stage */
  int32_t ee_window[LS_SEARCH_MAX_STAGES];    /* 0: no early exit */
  double ee_threshold[LS_SEARCH_MAX_STAGES];
  double score;        /* mean over examples, summed in example order */
  double measured_ms;  /* mean wall ms per example */
  double predicted_ms; /* mean predicted ms per example (NAN without a profile) */
  double prompt_tokens[LS_SEARCH_MAX_STAGES]; /* mean per example */
  double n_generated[LS_SEARCH_MAX_STAGES];    /* mean per example */
  int32_t meets_target;
  int32_t run;         /* invocation that evaluated it (0 first, 1 after a resume, ...) */
  int32_t round;       /* round of that invocation */
} ls_cand;

/* Provenance written as root attributes (identical on every rank: rank 0's values). */
typedef struct ls_store_info {
  const char *job_json, *job_hash, *job_path;
  const char *model_fingerprint, *model_name;
  const char *objective, *strategy;
  int n_stages, n_layers, n_examples, n_shards;
  int ranks, threads;
  const char *hosts; /* comma-separated, unique */
  const char *const *stage_names; /* [n_stages] */
} ls_store_info;

typedef struct ls_store {
  hid_t file;
  char *path, *work_path;
  MPI_Comm comm;
  int rank, size;
  int n_stages, n_layers, n_examples;
  int64_t n_rows; /* committed candidate rows */
  int run;        /* this invocation's index */
} ls_store;

/* Creates a new store (refuses an existing PATH unless overwrite). Collective. */
int ls_store_create(ls_store *s, const char *path, MPI_Comm comm, const ls_store_info *info, int overwrite,
                    ls_err *err);
/* Reopens PATH for --resume: refuses a store of another job (different job hash) or shape.
 * Returns the committed candidates (malloc'd, every rank). Collective. */
int ls_store_resume(ls_store *s, const char *path, MPI_Comm comm, const ls_store_info *info, ls_cand **cands,
                    int64_t *n_cands, ls_err *err);

/* Importance tables (rank 0's data). Collective. */
int ls_store_write_importance(ls_store *s, const double *per_stage_cos /* [S][2L] */,
                              const double *accumulated /* [2L] */, const int32_t *ranking /* [2L] */,
                              const int32_t *per_stage_ranking /* [S][2L] */, ls_err *err);
/* Reference results, per example (rank 0's data). Collective. */
int ls_store_write_reference(ls_store *s, const ls_example_score *ref /* [n_examples] */,
                             const char *const *example_ids, const int32_t *gold, double score,
                             double chance, double target, const int32_t *stage_order, ls_err *err);

/* Appends the complete candidates of a round: cands[i] with masks[i] ([S][L] bytes) for each
 * i with r->complete[ridx[i]]; every rank writes the /scores hyperslabs of the units it owns.
 * Then flushes and commits (PATH replaced atomically). Collective. */
int ls_store_append(ls_store *s, const ls_cand *cands, const uint8_t *masks, const int *ridx, int n,
                    const ls_round *r, ls_err *err);

/* Rank 0 only (not collective; other ranks return LS_OK at once): publishes PATH plus one finished
 * candidate (its row, masks [S][L] bytes and scores [n_examples]) atomically. Called as each
 * candidate completes during a round; PATH.work is not touched. */
int ls_store_commit_one(ls_store *s, const ls_cand *c, const uint8_t *mask, const double *scores, ls_err *err);

/* Pareto front (candidate ids), the chosen schedule (JSON text, may be NULL), status and end
 * time; then commit. Collective. */
int ls_store_finish(ls_store *s, const int64_t *pareto, int n_pareto, const char *schedule_json,
                    int64_t chosen_id, const char *status, ls_err *err);
/* Sets the root "status" attribute and commits (e.g. "interrupted"). Collective. */
int ls_store_set_status(ls_store *s, const char *status, ls_err *err);

/* Before any MPI work or model load (no MPI): the store's folder exists and takes new files,
 * PATH exists for --resume (and not otherwise unless overwrite), and there is room for a
 * commit. One line naming PATH on failure. */
int ls_store_check_path(const char *path, int resume, int overwrite, ls_err *err);
/* Fails with an ENOSPC line naming path unless path's folder has `need` bytes free. */
int ls_store_check_space(const char *path, long long need, ls_err *err);

/* Closes the work file and removes it (PATH stays). Collective. */
int ls_store_close(ls_store *s, ls_err *err);
/* Abandons the store after an MPI failure: no collective calls; PATH keeps the last commit. */
void ls_store_abandon(ls_store *s);

/* ---- serial readers (no MPI): show, export, resume, tests and the store fuzz target ----
 * A store is untrusted input: its shape attributes must lie within these limits, every dataset
 * is read with the shape its own dataspace has and that shape must match the attributes, and
 * every index is range-checked. Errors are one line naming the file and the dataset. */
#define LS_STORE_MAX_LAYERS 65536
#define LS_STORE_MAX_EXAMPLES 1000000      /* the job's limit */
#define LS_STORE_MAX_ROWS 2000000          /* candidate rows (exhaustive stops at 10^6) */
#define LS_STORE_MAX_MASK_BYTES (1 << 28)  /* rows x stages x layers */
#define LS_STORE_MAX_STRING (16 << 20)     /* a string attribute or dataset (job_json, schedule) */
#define LS_STORE_MAX_RANK 3
#define LS_STORE_ANY_DIM ((hsize_t)-1)

/* Everything show and export read from a store, checked (ls_store_load). */
typedef struct ls_store_data {
  int n_stages, n_layers, n_examples; /* root attributes, within the limits above */
  char **stage_names;       /* [n_stages], NULL if absent */
  /* /reference: n_ref 0 before the reference pass, else n_examples */
  int n_ref;
  double *ref_score;        /* [n_ref] */
  int32_t *ref_gen_tokens;  /* [n_ref][n_stages] */
  double ref_mean_score, chance, target; /* NAN before the reference pass */
  /* /importance: n_sub 0 before the importance pass, else 2 * n_layers */
  int n_sub;
  int32_t *ranking;         /* [n_sub], each in [0, n_sub) */
  double *accumulated;      /* [n_sub] */
  /* /candidates */
  ls_cand *cands;           /* [n_cands] */
  uint8_t *masks;           /* [n_cands][n_stages][n_layers] */
  int64_t n_cands;
  int64_t *pareto;          /* [n_pareto] candidate ids, NULL before the search finished */
  int64_t n_pareto;
  char *schedule;           /* the chosen schedule's JSON, NULL before the search chose one */
} ls_store_data;

/* Opens a store read-only with HDF5's error printing off; -1 and err naming path on failure. */
hid_t ls_store_open_read(const char *path, ls_err *err);
/* Reads and checks a whole store (path names it in errors). On error d holds nothing. */
int ls_store_load(const char *path, ls_store_data *d, ls_err *err);
int ls_store_load_file(hid_t file, const char *path, ls_store_data *d, ls_err *err);
void ls_store_data_free(ls_store_data *d);

/* One value of a root or group attribute (scalar or one element; the class must match). */
int ls_store_read_attr_str(hid_t loc, const char *name, char **out, ls_err *err);
int ls_store_read_attr_int(hid_t loc, const char *name, long long *out, ls_err *err);
int ls_store_read_attr_f64(hid_t loc, const char *name, double *out, ls_err *err);
/* Opens dataset `name` if it has `rank` dimensions equal to want[] (LS_STORE_ANY_DIM: any);
 * its dimensions go to dims (may be NULL). */
int ls_store_open_dataset(hid_t file, const char *path, const char *name, int rank, const hsize_t *want,
                          hsize_t *dims, hid_t *d, ls_err *err);
/* Reads all candidate rows of a store of n_stages x n_layers (masks optional: malloc'd
 * [n][S][L]); every column's shape is checked first. */
int ls_store_read_cands(hid_t file, const char *path, int n_stages, int n_layers, ls_cand **cands, uint8_t **masks,
                        int64_t *n, ls_err *err);

#endif
