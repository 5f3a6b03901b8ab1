/* Search job specs (docs/search.md, "Job spec"): what to search, on which
 * data, with which objective and strategy. A job is parsed and validated
 * completely (files exist and load, ranges, the budget against the model's
 * sub-layer count, the dataset is not empty) before any MPI work starts, so
 * that a typo costs seconds, not a cluster allocation. Every message names
 * the job file and the key. Relative paths are resolved against the
 * directory of the job file. */
#ifndef LS_JOB_H
#define LS_JOB_H

#include <stdint.h>

#include "ls_error.h"

#define LS_JOB_MAX_GRID 32

typedef enum ls_objective { LS_OBJ_ACCURACY = 1, LS_OBJ_AGREEMENT, LS_OBJ_FIDELITY } ls_objective;
typedef enum ls_strategy { LS_STRAT_GREEDY = 1, LS_STRAT_EXHAUSTIVE } ls_strategy;

typedef struct ls_job {
  char *path;          /* the job file */
  char *text;          /* the job file's bytes (stored in HDF5 as job_json) */
  char hash[65];       /* SHA-256 of the canonical (sorted, compact) JSON: resume identity */
  char *name;
  /* resolved paths */
  char *model;
  char *tokenizer;     /* NULL: the model's own (GGUF) */
  char *template_path;
  char *dataset;
  int dataset_format;  /* ls_dataset_format */
  char *split;         /* informative label ("dev", "val", ...) */
  int limit;           /* first `limit` examples (>= 1) */
  int shards;          /* work units per candidate (1..limit) */
  int objective;       /* ls_objective */
  int kv_policy;       /* ls_kv_policy (common/ls_schedule.h): "reuse" (default), "recompute" or "shared-prefix" */
  double tolerance;    /* target = reference score - tolerance */
  int strategy;        /* ls_strategy */
  int budget_min, budget_max; /* sub-layers skipped per stage, inclusive */
  int greedy_batch;    /* budgets per greedy round; 0 = the whole range in one round */
  int n_windows, n_thresholds;
  int windows[LS_JOB_MAX_GRID];
  double thresholds[LS_JOB_MAX_GRID];
  int threads;         /* engine threads per rank */
  char *latency;       /* "measured" or a resolved profile path */
  int latency_measured; /* 1: decisions use measured wall time */
  uint64_t seed;
  int max_new_tokens;  /* 0: the template's; else caps every stage (smoke jobs) */
  /* filled by ls_job_validate */
  int n_layers;        /* model's layers: 2*n_layers sub-layers */
  int n_stages;        /* template stages */
  int n_examples;      /* examples after the limit */
} ls_job;

/* Parses the file: syntax, keys, types, enums and ranges that need no other file. */
int ls_job_load(const char *path, ls_job **out, ls_err *err);
/* Opens what the job names (model header, template, dataset, profile) and checks the budget
 * range against 2*n_layers, the limit against the dataset, the profile against the model. */
int ls_job_validate(ls_job *job, ls_err *err);
void ls_job_free(ls_job *job);

const char *ls_objective_name(int objective);
const char *ls_strategy_name(int strategy);

#endif
