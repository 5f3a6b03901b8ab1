/* Latency profiles: what each sub-layer costs on one CPU, measured with the
 * real forward pass (ls_forward) and kernels, and a deterministic predictor
 * that turns a profile, a skip mask and token counts into milliseconds.
 *
 * Measurement (ls_profile_measure, `litestage-run profile`) times forward calls
 * whose masks skip everything but one sub-layer kind and differences them
 * against a call that skips everything (docs/latency.md):
 *   decode   per layer, attention at several context lengths, FFN once;
 *   prefill  per token per layer, attention and FFN, at several prompt lengths;
 *   fixed    the all-skipped call: embedding, final norm and classifier.
 * Layers of one model have equal shapes, so costs are per kind, not per layer.
 *
 * Prediction of one stage (prefill n_prompt tokens at positions pos0.., then
 * n_decode single-token decode calls, the i-th attending c_i = pos0+n_prompt+i
 * positions, i = 1..n_decode):
 *   prefill = F_pre(n) + A_pre(n) * n_attn + G_pre(n) * n_ffn
 *   decode  = sum_i [ fixed_decode + A_dec(c_i) * n_attn + G_dec * n_ffn ]
 * where n_attn / n_ffn count the executed sub-layers of the mask and the
 * tables are interpolated linearly (and extrapolated linearly past the last
 * point, never below zero). */
#ifndef LS_PROFILE_H
#define LS_PROFILE_H

#include <stdint.h>

#include "ls_error.h"
#include "ls_forward.h"
#include "ls_model.h"

#define LS_PROFILE_SCHEMA_VERSION 1

/* Which clock times the calls. WALL (the default) is latency. CPU is the
 * process's CPU time: with one thread it excludes time the process spent
 * preempted, which lets the model be checked on a busy machine (it is not a
 * latency with more than one thread: waiting threads spin). */
typedef enum { LS_CLOCK_WALL = 0, LS_CLOCK_CPU = 1 } ls_clock;
double ls_clock_ms(int clock);
const char *ls_clock_name(int clock);
#define LS_PROFILE_MAX_POINTS 32

typedef struct ls_profile {
  /* the model the profile was measured with */
  char model_name[256];
  char model_fingerprint[65]; /* SHA-256 of the model file, lowercase hex */
  int n_layers, dim, hidden_dim, n_heads, n_kv_heads, vocab_size;
  /* the machine and the run */
  char cpu_model[256];
  char kernel_level[64];
  char created[32];  /* ISO-8601 UTC */
  char commit[64];   /* litestage commit that measured it */
  int n_threads;
  int reps;          /* minimum repetitions per timed point (medians are reported) */
  double min_ms;     /* minimum wall time per timed point */
  int max_batch;     /* prefill chunk size of the measuring context */
  int clock;         /* ls_clock the profile was timed with */

  /* decode: one token per call; ctx[i] = positions attended (pos + 1) */
  int n_dec;
  int dec_ctx[LS_PROFILE_MAX_POINTS];
  double dec_attn_ms[LS_PROFILE_MAX_POINTS]; /* per layer, attention sub-layer incl. its norm */
  double dec_ffn_ms;                         /* per layer, FFN sub-layer incl. its norm */
  double dec_fixed_ms;                       /* embedding + final norm + classifier, per token */

  /* prefill: one call of n tokens at positions 0..n-1, logits for the last only */
  int n_pre;
  int pre_tokens[LS_PROFILE_MAX_POINTS];
  double pre_attn_ms_per_token[LS_PROFILE_MAX_POINTS]; /* per layer */
  double pre_ffn_ms_per_token[LS_PROFILE_MAX_POINTS];  /* per layer */
  double pre_fixed_ms_per_token[LS_PROFILE_MAX_POINTS]; /* all-skipped call / n */

  /* fixed-cost split (informative; the predictor uses dec_fixed_ms and pre_fixed_*) */
  double embed_ms_per_token; /* slope of the all-skipped prefill time over n */
  double head_ms;            /* final norm + classifier of one token = dec_fixed_ms - embed */

  /* self-check at measurement time: the full model's decode time at each
   * dec_ctx, measured, to compare with the additive model (docs/latency.md) */
  double dec_full_ms[LS_PROFILE_MAX_POINTS];
} ls_profile;

typedef struct ls_profile_opts {
  int n_threads;            /* <= 0: 1 */
  int reps;                 /* at least this many timed repetitions per point (<= 0: 7) */
  double min_ms;            /* and at least this long per point (<= 0: 200 ms) */
  int n_ctx_list;           /* decode contexts; 0: 16,64,256,... up to the model's seq_len */
  int ctx_list[LS_PROFILE_MAX_POINTS];
  int n_batch_list;         /* prefill sizes; 0: 8,32,128,... up to max_batch and seq_len */
  int batch_list[LS_PROFILE_MAX_POINTS];
  int max_batch;            /* <= 0: 512 (capped at the model's seq_len) */
  int clock;                /* ls_clock; 0 = wall */
  /* progress (may be NULL): called with a one-line message */
  void (*progress)(void *user, const char *msg);
  void *user;
} ls_profile_opts;

/* Measures a profile of the loaded model on this machine. model_path is hashed
 * for the fingerprint (NULL: m->path). */
int ls_profile_measure(ls_profile *p, const ls_model *m, const ls_profile_opts *o, ls_err *err);

/* JSON form (docs/latency.md). Save writes atomically. Load validates every
 * field and names the file in any error. */
int ls_profile_load(ls_profile *p, const char *path, ls_err *err);
int ls_profile_save(const ls_profile *p, const char *path, ls_err *err);
/* *out: a malloc'd JSON text (common/ls_json's layout), ending in a newline. */
int ls_profile_to_json(const ls_profile *p, char **out, ls_err *err);
int ls_profile_from_json(ls_profile *p, const char *text, const char *path, ls_err *err);
void ls_profile_free(ls_profile *p);

/* The tables interpolated (linear; linear extrapolation past the ends using
 * the nearest segment; clamped at 0). Exposed for tests. */
double ls_profile_dec_attn_ms(const ls_profile *p, double ctx);
/* Prefill of n_tokens at positions pos0.. (per layer for LS_SKIP_ATTN and
 * LS_SKIP_FFN, whole model for kind 0 = fixed); pos0 matters for attention only. */
double ls_profile_pre_ms(const ls_profile *p, int kind /* 0 fixed, LS_SKIP_ATTN, LS_SKIP_FFN */, int n_tokens,
                         int pos0);

/* Predicted milliseconds. skip: n_layers bytes of LS_SKIP_* (NULL: run all).
 * n_decode is the number of single-token decode calls after the prefill. */
double ls_predict_prefill_ms(const ls_profile *p, const uint8_t *skip, int n_prompt, int pos0);
double ls_predict_decode_ms(const ls_profile *p, const uint8_t *skip, int n_prompt, int pos0, int n_decode);
double ls_predict_stage_ms(const ls_profile *p, const uint8_t *skip, int n_prompt, int pos0, int n_decode);

/* One stage call of an example, for the whole-example helper. */
typedef struct ls_stage_call {
  const uint8_t *skip; /* n_layers bytes or NULL */
  int n_prompt;
  int pos0;
  int n_decode; /* decode calls after the prefill (not tokens generated: ls_call_decode_calls) */
} ls_stage_call;

double ls_predict_example_ms(const ls_profile *p, const ls_stage_call *calls, int n_calls);

/* A group of calls under one mask run together, as the engine runs a
 * per-option stage (ls_engine_start / ls_engine_step; docs/latency.md,
 * "Batches and prefix reuse"): first n_shared positions at shared_pos0.. of
 * the calls' common prompt prefix, prefilled once; then every call's
 * prompt suffix (calls[i].n_prompt tokens at calls[i].pos0.., the positions
 * before pos0 being reused) in one batch; then decode steps, the j-th with one
 * row per call that makes at least j decode calls. A step of B rows costs one
 * decode call plus, per further row, its attention context part and the
 * batch's growth of the linear layers (from the prefill tables). One call
 * predicts ls_predict_stage_ms (up to rounding); more calls never predict less. */
double ls_predict_group_ms(const ls_profile *p, const uint8_t *skip, int n_shared, int shared_pos0,
                           const ls_stage_call *calls, int n_calls);

/* An example's chain as the runtime ran it (ls_pipeline_run; one group per
 * stage, its calls together): each call prefills only the positions it did
 * not take from the KV cache (n_prompt - n_reused at n_reused..), the first
 * call of a group also the common prefix it ran for all (n_cached..n_reused),
 * and makes ls_call_decode_calls decode calls. masks: n_stages * n_layers
 * bytes, or NULL for the full model. */
struct ls_example_result;
double ls_predict_chain_ms(const ls_profile *p, const struct ls_example_result *res, const uint8_t *masks,
                           int n_layers);

/* Checks that a profile was measured for this model: same fingerprint (unless
 * fingerprint is NULL) and same shape. path names the profile in the message. */
int ls_profile_check_model(const ls_profile *p, const ls_model *m, const char *fingerprint, const char *path,
                           ls_err *err);

/* Real generation, timed, for checking predictions: prefills prompt[0..n)
 * at positions pos0.. (chunks of the context's max_batch), then runs n_decode
 * greedy (argmax) single-token decode calls, each feeding the previous
 * argmax. Returns milliseconds (of the ls_clock) of the whole thing in *ms_total (and the
 * prefill part in *ms_prefill if not NULL). Allocates nothing. */
int ls_time_generation(ls_ctx *c, const int *prompt, int n_prompt, int pos0, int n_decode, const uint8_t *skip,
                       int clock, double *ms_total, double *ms_prefill, ls_err *err);

#endif
