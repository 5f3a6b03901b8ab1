/* What one process remembers of earlier chain runs of the same examples
 * (ls_pipeline_run_memo), so that a run which starts the same way is not
 * generated again.
 *
 * A run of examples [first, first + n) with n_lanes of them at once is a
 * deterministic sequence of groups (a stage's calls started together, in the
 * order the lanes start them): greedy tokens, and a row's logits do not
 * depend on its batch, so everything a group does (its tokens, texts, stops,
 * what it reuses from the KV cache, how many engine steps it takes) depends
 * only on the plans of the groups started before it and its own. A run that
 * starts its first k groups under the same plans as a remembered run takes
 * those k groups' results from it. They are not generated; their prompt and
 * fed tokens are prefilled in one batch (as teacher forcing does), so the KV
 * cache holds what generation would have left, and each replayed group
 * occupies its lane for the engine steps it took, so the lanes start their
 * later groups in the same order and find the same cache: the results,
 * including the reuse counts the latency predictor reads, are those of
 * generating everything. A replayed group whose positions no generated group
 * of the run can reuse (its mask serves none of theirs under the KV policy;
 * under recompute, never) is not even prefilled: its positions are only
 * recorded as held (ls_kv_seq_hold), which is all the reuse counts read. Measured times of replayed calls are the remembered
 * ones, so a caller that ranks by measured latency must not use this.
 *
 * Bounded: at most LS_GEN_MEMO_MAX_RUNS runs and LS_GEN_MEMO_MAX_BYTES of
 * results; the oldest run is forgotten first (a run larger than the cap alone
 * is not remembered). */
#ifndef LS_GEN_MEMO_H
#define LS_GEN_MEMO_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"
#include "ls_template.h"

struct ls_call_result;
struct ls_stage_plan;

#define LS_GEN_MEMO_MAX_RUNS 64
#define LS_GEN_MEMO_MAX_BYTES ((size_t)64 << 20)

/* One group of a run: its plan, how long it ran and its calls' results. */
typedef struct ls_gen_memo_group {
  int stage;
  uint8_t *mask; /* [n_layers] (the full model as zeros) */
  int ee_window;
  float ee_threshold;
  int steps;                    /* engine steps from its start to its end (>= 1) */
  int n_calls;                  /* 0 until the group has ended */
  struct ls_call_result *calls; /* [n_calls] */
} ls_gen_memo_group;

typedef struct ls_gen_memo_run {
  int first_ex, n_ex, n_lanes; /* which examples, how many at once */
  int n_groups, cap_groups;
  ls_gen_memo_group *groups; /* [n_groups] in start order */
  size_t bytes;
} ls_gen_memo_run;

typedef struct ls_gen_memo {
  int n_layers;
  int n_runs, oldest;                        /* a ring of runs */
  ls_gen_memo_run runs[LS_GEN_MEMO_MAX_RUNS];
  size_t bytes;
  int64_t groups_replayed, groups_held, groups_run; /* for reports (held: replayed without prefill) */
} ls_gen_memo;

/* A run in progress: the remembered run it starts as (from, its first
 * n_replay groups), whether a group under each stage's mask must be computed,
 * and its own record. */
typedef struct ls_gen_memo_cursor {
  ls_gen_memo *memo;
  const struct ls_stage_plan *plans;
  const ls_gen_memo_run *from;
  int n_replay;
  uint8_t compute[LS_TEMPLATE_MAX_STAGES];
  ls_gen_memo_run rec;
} ls_gen_memo_cursor;

void ls_gen_memo_init(ls_gen_memo *m, int n_layers);
void ls_gen_memo_free(ls_gen_memo *m);

/* A run of examples [first_ex, first_ex + n_ex), n_lanes at once, under
 * plans[0..n_stages) (NULL: full model) and the engine's kv_policy. */
void ls_gen_memo_begin(ls_gen_memo *m, int first_ex, int n_ex, int n_lanes, const struct ls_stage_plan *plans,
                       int n_stages, int kv_policy, ls_gen_memo_cursor *c);
/* The next group starts with n_calls calls of stage `stage`: its index in the
 * record (*group), and the remembered group to replay (NULL: generate it) with
 * whether its positions must be computed (*compute; else only held). */
int ls_gen_memo_start(ls_gen_memo_cursor *c, int stage, int n_calls, int *group, const ls_gen_memo_group **replay,
                      int *compute, ls_err *err);
/* Group `group` ended after `steps` engine steps with calls[0..n). */
int ls_gen_memo_end(ls_gen_memo_cursor *c, int group, int steps, const struct ls_call_result *calls, int n,
                    ls_err *err);
/* The run is over: ok, its record is remembered (unless it only repeated a
 * remembered run); else it is dropped. */
void ls_gen_memo_finish(ls_gen_memo_cursor *c, int ok);

#endif
