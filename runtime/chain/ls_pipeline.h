/* The multi-stage chain (Recall, Analyze per option, Summarize; or a story's
 * beginning, middle, end): every example runs through the template's stages,
 * each stage with its own skip mask and early-exit rule, each stage's prompt
 * rendered from the example and the earlier stages' outputs.
 *
 * KV policy (docs/ARCHITECTURE.md, "KV cache across skips"): the engine's
 * kv_policy, named by the schedule. A per-option stage's calls run together,
 * up to the engine's sequence slots at a time (ls_engine_generate_multi). */
#ifndef LS_PIPELINE_H
#define LS_PIPELINE_H

#include <stdint.h>

#include "ls_dataset.h"
#include "ls_engine.h"
#include "ls_template.h"

/* How one stage runs. */
typedef struct ls_stage_plan {
  const uint8_t *skip; /* n_layers bytes of LS_SKIP_*, or NULL for the full model */
  int ee_window;       /* 0: no early exit */
  float ee_threshold;  /* <= 0: no early exit */
} ls_stage_plan;

/* One generation: a stage, or one option of a per-option stage. */
typedef struct ls_call_result {
  char *text;         /* generated text, stop string cut (raw, not trimmed) */
  int *prompt_tokens; /* [n_prompt] BOS first */
  int *tokens;        /* [n_generated] */
  int n_prompt, n_generated;
  int n_reused;       /* prompt positions taken from the KV cache (not prefilled) */
  int n_cached;       /* of those, held before the call's group began (ls_gen_output.n_cached): the first
                         call of a group prefilled positions n_cached..n_reused once for all of them */
  double prefill_ms, decode_ms;
  int stop;           /* ls_stop_reason */
} ls_call_result;

typedef struct ls_stage_result {
  int n_calls;            /* 1, or the example's number of options */
  ls_call_result *calls;  /* [n_calls] */
  int prompt_tokens, n_generated;
  int reused_tokens;      /* prompt tokens taken from the KV cache */
  double prefill_ms, decode_ms;
  int early_exits;        /* calls that ended by early exit */
  int sublayers_executed; /* sub-layers the stage's mask runs per token */
} ls_stage_result;

typedef struct ls_example_result {
  int n_stages;
  ls_stage_result *stages; /* [n_stages] */
  int answer;              /* extracted option index, -1 none (or no answer regex) */
  int correct;             /* 1/0 vs the gold answer; -1 unlabelled or no regex */
  double total_ms;         /* sum of all calls' prefill + decode */
} ls_example_result;

/* The decode calls a generation made, which is what the profile's n_decode counts
 * (ls_predict_stage_ms): the prefill yields the first token and a token is fed back only if
 * generation goes on, so G tokens took G - 1 decode calls, or G when it stopped on EOS (the EOS
 * is not counted). docs/latency.md, "Counting decode calls". */
int ls_call_decode_calls(const ls_call_result *c);

/* Runs one example through every stage. plans: [n_stages] or NULL (full model,
 * no early exit). The result owns its buffers: free with ls_example_result_free. */
int ls_pipeline_run(ls_engine *e, const ls_template *t, const ls_example *ex, const ls_stage_plan *plans,
                    ls_example_result *res, ls_err *err);
void ls_example_result_free(ls_example_result *res);
/* Runs examples exs[0..n_ex) with up to n_lanes of them at once (each lane
 * owns n_seq / n_lanes sequence slots; a finished example's lane takes the
 * next one) in shared batches; res: [n_ex]. Each example's tokens are those
 * it gets alone (greedy). */
int ls_pipeline_run_many(ls_engine *e, const ls_template *t, const ls_example *exs, int n_ex,
                         const ls_stage_plan *plans, int n_lanes, ls_example_result *res, ls_err *err);
/* ls_pipeline_run_many with a memory of earlier runs (ls_gen_memo.h; NULL:
 * none): the groups a remembered run of the same examples (first_ex names
 * them) started under the same plans are replayed, not generated; the
 * results equal ls_pipeline_run_many's except the replayed calls' measured
 * times, which are the remembered ones. The run is remembered in turn. */
struct ls_gen_memo;
int ls_pipeline_run_memo(ls_engine *e, const ls_template *t, const ls_example *exs, int n_ex,
                         const ls_stage_plan *plans, int n_lanes, struct ls_gen_memo *memo, int first_ex,
                         ls_example_result *res, ls_err *err);
/* A deep copy of a call's result (free with ls_call_result_free, which also takes a zeroed one). */
int ls_call_result_copy(ls_call_result *dst, const ls_call_result *src, ls_err *err);
void ls_call_result_free(ls_call_result *c);

/* Teacher-forced fidelity of a candidate (plans) against a reference run of
 * the same example (ref, usually the full model): for every stage call, the
 * candidate is fed the reference's prompt and output tokens; at each output
 * position it predicts a token with a confidence; the candidate's early-exit
 * rule applied to those confidences gives where it would have stopped; the
 * stage's fidelity is the number of positions before that stop where the
 * prediction equals the reference token, divided by the reference output's
 * length (summed over a per-option stage's calls; an empty reference output
 * scores 1). The example's fidelity is the mean over stages. Truncation is
 * never rewarded: positions after the stop count as misses.
 * stage_fidelity: [n_stages] or NULL. */
int ls_pipeline_fidelity(ls_engine *e, const ls_template *t, const ls_stage_plan *plans,
                         const ls_example_result *ref, double *fidelity, double *stage_fidelity, ls_err *err);

/* ls_pipeline_fidelity for examples refs[0..n_ex) at once (fidelity[i] for
 * refs[i]; stage_fidelity: [n_ex][n_stages] or NULL): every teacher-forced
 * call runs as a forced request of the engine (ls_gen_request.forced), up to
 * n_lanes examples at a time, each example's stages in order in its own
 * n_seq / n_lanes slots, a per-option stage's calls together. Prefixes are
 * reused under the engine's kv_policy: with reuse or recompute the numbers
 * equal ls_pipeline_fidelity's bit for bit (a row's logits do not depend on
 * its batch); with shared-prefix a stage is scored on the earlier stages'
 * cache, as the runtime would run it. given: [n_ex][n_stages] or NULL;
 * given[i][s] != 0 says stage s of example i was scored before (the caller
 * remembers it: under reuse and recompute a stage's fidelity depends only on
 * the reference and that stage's plan), so it is not run and its value is
 * read from stage_fidelity[i][s] (then required). */
int ls_pipeline_fidelity_many(ls_engine *e, const ls_template *t, const ls_stage_plan *plans,
                              const ls_example_result *refs, int n_ex, int n_lanes, const uint8_t *given,
                              double *fidelity, double *stage_fidelity, ls_err *err);

/* Plans from a schedule's stages: masks gets n_stages * n_layers bytes. */
struct ls_schedule;
int ls_plans_from_schedule(const struct ls_schedule *s, int n_layers, uint8_t *masks, ls_stage_plan *plans,
                           ls_err *err);

#endif
