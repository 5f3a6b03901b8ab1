/* Datasets: examples for the multi-stage pipeline, loaded from the formats
 * in docs/formats.md ("Datasets"), with deterministic shards and a limit.
 * A malformed record is an error naming the file and line; nothing is
 * skipped silently. All strings of a dataset are owned by it. */
#ifndef LS_DATASET_H
#define LS_DATASET_H

#include "ls_error.h"

#define LS_MAX_OPTIONS 26 /* option letters A..Z */

typedef struct ls_example {
  const char *id;       /* from the file, or "FORMAT-LINE" style when the file has none */
  const char *question; /* question text; for stories the opening (same string as `opening`) */
  const char *const *options; /* [n_options] option texts, in label order A, B, ... */
  int n_options;        /* 0 for stories */
  int answer;           /* gold option index (0 = A), -1 when unlabelled */
  const char *opening;  /* stories: the story's first sentence; NULL otherwise */
  int line;             /* 1-based line in the source file where the record starts */
} ls_example;

typedef enum ls_dataset_format {
  LS_DS_AUTO = 0,  /* detect from the content (docs/formats.md) */
  LS_DS_OBQA,      /* OpenBookQA JSONL */
  LS_DS_CSQA,      /* CommonsenseQA JSONL (same record layout as OBQA) */
  LS_DS_BIGBENCH,  /* StrategyQA BIG-bench task.json (yes/no) */
  LS_DS_KARD,      /* StrategyQA KARD SWAG JSON lines (yes/no) */
  LS_DS_PLAIN,     /* {"id","question","options":[...],"answer"} JSONL */
  LS_DS_STORIES,   /* TinyStories text: one example per story opening */
} ls_dataset_format;

typedef struct ls_dataset {
  char *path;
  int format;        /* ls_dataset_format actually used (never LS_DS_AUTO) */
  int n;             /* examples (after ls_dataset_select) */
  int n_total;       /* examples in the file */
  ls_example *ex;    /* [n] */
  int *source_index; /* [n] index of ex[i] among the file's n_total examples */
  struct ls_dataset_arena *arena; /* owns every string */
} ls_dataset;

/* "auto", "obqa", "csqa", "strategyqa-bigbench" (alias "bigbench"), "kard", "plain", "stories". */
int ls_dataset_format_parse(const char *name, int *format, ls_err *err);
const char *ls_dataset_format_name(int format);

int ls_dataset_load(const char *path, int format, ls_dataset **out, ls_err *err);
void ls_dataset_free(ls_dataset *ds);

/* Shard i of n (0 <= i < n) of `total` examples: the contiguous range [*begin, *end) with
 * begin = floor(i * total / n). Shards are pairwise disjoint, cover 0..total-1 in order and
 * differ in size by at most one. */
int ls_shard_bounds(int total, int i, int n, int *begin, int *end, ls_err *err);
/* Parses "I/N" (as in --shard 2/8) into 0 <= I < N. */
int ls_shard_parse(const char *s, int *i, int *n, ls_err *err);

/* Keeps the first `limit` examples (limit <= 0: all), then shard i of n of those (n <= 1: all),
 * in place. The limit applies first, so `--limit 100 --shard I/4` over I = 0..3 covers exactly
 * the first 100 examples. source_index keeps each example's position in the file. */
int ls_dataset_select(ls_dataset *ds, int limit, int shard_i, int shard_n, ls_err *err);
/* ls_dataset_select(ds, 0, i, n, err). */
int ls_dataset_shard(ls_dataset *ds, int i, int n, ls_err *err);

/* Option letter of index i ('A' + i). */
static inline char ls_option_letter(int i) { return (char)('A' + i); }

#endif
