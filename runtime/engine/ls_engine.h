/* The engine handle both programs use: a model, its tokenizer, one forward
 * context (KV cache + thread pool) and a sampler, plus the buffers one stage
 * of generation needs, all allocated once in ls_engine_open() so that the
 * token loop allocates nothing.
 *
 * One generation = one stage call: the prompt is prefilled from position 0
 * with the stage's skip mask (the paper-faithful KV policy of docs/ARCHITECTURE.md: no
 * cache reuse across stages), then tokens are decoded with the same mask until
 * EOS/BOS, a stop string, max_new_tokens, the context end, or early exit. */
#ifndef LS_ENGINE_H
#define LS_ENGINE_H

#include <stdint.h>

#include "ls_earlyexit.h"
#include "ls_error.h"
#include "ls_forward.h"
#include "ls_model.h"
#include "ls_sampler.h"
#include "ls_tokenizer.h"

typedef struct ls_engine_params {
  const char *model_path;
  const char *tokenizer_path; /* llama2.c checkpoints; NULL for GGUF's own */
  int n_threads;              /* <= 0: 1 */
  int n_ctx;                  /* <= 0: the model's context length, or n_ctx_needed */
  int n_ctx_needed;           /* with n_ctx <= 0: positions the run can use at most (<= 0: unknown);
                                 the context is then the smaller of this and the model's */
  int max_batch;              /* prefill chunk; <= 0: 512 */
  int n_seq;                  /* KV sequence slots (requests decoded together); <= 0: 1 */
  int kv_policy;              /* ls_kv_policy (common/ls_schedule.h); 0: reuse */
  float temperature;          /* 0 = greedy */
  float top_p;                /* 1 = off */
  int top_k;                  /* <= 0: off */
  uint64_t seed;
  int need_tokenizer;         /* fail at open if the model has no vocabulary */
  int fingerprint;            /* compute the SHA-256 of the model file at open */
  int weights;                /* ls_weights_place (ls_model.h); 0: LS_WEIGHTS_AUTO */
} ls_engine_params;

typedef enum ls_stop_reason {
  LS_STOP_NONE = 0,
  LS_STOP_EOS,        /* the model emitted EOS or BOS */
  LS_STOP_STRING,     /* a stop string appeared; the text ends before it (or after, keep_stop) */
  LS_STOP_MAX_TOKENS, /* max_new_tokens reached */
  LS_STOP_CONTEXT,    /* the context is full */
  LS_STOP_EARLY_EXIT, /* confidence-based early exit fired */
} ls_stop_reason;

typedef struct ls_gen_request {
  const char *prompt;          /* text (BOS prepended), or NULL to use tokens */
  const int *prompt_tokens;    /* used when prompt is NULL */
  int n_prompt_tokens;
  int max_new_tokens;          /* <= 0: until the context is full */
  const uint8_t *skip;         /* NULL or n_layers bytes of LS_SKIP_* */
  int ee_window;               /* early exit: 0 disables */
  float ee_threshold;          /* early exit: <= 0 disables */
  const char *const *stops;    /* stop strings, checked on the decoded text */
  int n_stops;
  int keep_stop;               /* 1: the stop string stays in the text (cut after it) */
  /* optional: called with each piece of text as it is generated (streaming) */
  void (*on_text)(const char *piece, void *user);
  void *user;
  /* Teacher forcing instead of generation (n_forced > 0): the call feeds the
   * prompt then forced[0..n_forced - 1) (nothing is sampled) and writes, for
   * each target position i, the top-1 prediction pred[i] and its confidence
   * conf[i] (max softmax probability) given prompt + forced[0..i); pred and
   * conf are the caller's, n_forced each. The same numbers as
   * ls_engine_teacher_force, with prefix reuse and batching. */
  const int *forced;
  int n_forced;
  int *pred;
  float *conf;
  /* With forced: only record the prompt and forced tokens as held in the
   * call's sequence under its mask (prefix reuse and forks as for a computed
   * call), without computing them; the call ends at once (pred and conf are
   * not written). For positions no later call will read (ls_gen_memo.h). */
  int hold_only;
} ls_gen_request;

typedef struct ls_gen_output {
  int n_prompt;            /* prompt tokens, BOS included */
  int n_generated;         /* tokens generated (decode steps) */
  const int *tokens;       /* [n_prompt + n_generated], engine-owned */
  const float *confidence; /* [n_generated] */
  const char *text;        /* generated text (stop string cut), engine-owned */
  double prefill_ms, decode_ms; /* shares of the batches' wall time, by rows */
  int n_reused;                 /* prompt positions taken from the KV cache */
  int n_cached;                 /* of those, held before the call began (the rest, in the first call of a
                                   group started together, is the group's common prefix, run once) */
  ls_stop_reason stop;
} ls_gen_output;

/* One sequence slot's generation state (engine-owned buffers). */
typedef struct ls_gen_slot {
  int *tokens;       /* [n_ctx + 1] prompt then generated */
  float *confidence; /* [n_ctx] */
  char *text;        /* [text_cap] generated text */
  size_t len;
  const struct ls_gen_request *req;
  const uint8_t *skip;
  ls_earlyexit ee;
  int n_prompt, n_reused, n_cached, pos, n_gen, max_new, stop;
  int first_logits;  /* first position whose logits are used (n_prompt - 1, or a forced target's first) */
  int next_prefill;  /* next prompt position to run (n_prompt: prefill done) */
  int has_next;      /* a sampled token waits to be fed at pos - 1 */
  int active, stepped;
  uint64_t rng_state; /* this request's own sampling stream (starts at the engine's seed) */
  double prefill_ms, decode_ms; /* shares of the batches' wall time, by rows */
} ls_gen_slot;

/* Holds pointers into itself (the tokenizer points at model.vocab): open it in
 * place and never copy it. */
/* Prompt texts whose tokens the engine remembers (ls_engine.prompt_cache). */
#define LS_PROMPT_CACHE 16

typedef struct ls_engine {
  ls_model model;
  ls_tokenizer tok;
  ls_ctx *ctx;
  ls_sampler sampler;   /* its rng_state is swapped with each slot's around a sample */
  uint64_t seed_state;  /* the sampler's state at open: where every request's stream starts */
  char fingerprint[65]; /* "" unless params.fingerprint */
  int n_ctx, n_seq, kv_policy;
  int *tokens;          /* slot 0's tokens: [n_ctx + 1] prompt then generated */
  float *confidence;    /* slot 0's [n_ctx] */
  char *text;           /* slot 0's generated text */
  size_t text_cap;
  uint8_t *no_skip;     /* [n_layers] zeros */
  ls_gen_slot *slots;   /* [n_seq] */
  ls_batch batch;       /* max_batch rows */
  /* The last LS_PROMPT_CACHE prompt texts tokenised and their tokens (the search renders the
   * same prompts for candidate after candidate); reused round robin. */
  struct ls_prompt_memo {
    uint64_t hash;
    char *text;  /* NULL: empty entry */
    int *tokens; /* [n] */
    int n;
  } prompt_cache[LS_PROMPT_CACHE];
  int prompt_next;
} ls_engine;

int ls_engine_open(ls_engine *e, const ls_engine_params *p, ls_err *err);
void ls_engine_close(ls_engine *e);

/* Runs one stage call; out's pointers stay valid until the next call. */
int ls_engine_generate(ls_engine *e, const ls_gen_request *req, ls_gen_output *out, ls_err *err);
/* Runs n (1..n_seq) requests with the same skip mask together; outs[i]
 * belongs to reqs[i] (request i runs in slot i; pointers valid until the next
 * call). */
int ls_engine_generate_multi(ls_engine *e, const ls_gen_request *reqs, int n, ls_gen_output *outs, ls_err *err);

/* The same, in steps, so that several groups of requests (each with its own
 * mask; e.g. several examples of a dataset at different stages) share the
 * batches: start() loads a group into slots [slot0, slot0 + n) (prefix reuse
 * and forks as above; reqs must stay valid until finish); step() runs one
 * batch per distinct mask over every active slot (the rest of a prompt, or
 * one decode row); running() says whether a group still generates; finish()
 * fills its outputs and frees its slots. */
int ls_engine_start(ls_engine *e, int slot0, const ls_gen_request *reqs, int n, ls_err *err);
int ls_engine_step(ls_engine *e, ls_err *err);
int ls_engine_running(const ls_engine *e, int slot0, int n);
void ls_engine_finish(ls_engine *e, int slot0, int n, ls_gen_output *outs);
/* Empties every sequence slot of the KV cache (nothing is reused from before). */
void ls_engine_clear_cache(ls_engine *e);
/* Keeps in every slot only the positions before the first one a hold_only
 * request recorded without computing it (ls_kv_drop_held): the rest can be
 * reused by any later request. */
void ls_engine_drop_held(ls_engine *e);

/* Teacher forcing: feeds prompt then target with the given mask and returns,
 * for each target position i, the model's top-1 prediction pred[i] and its
 * confidence conf[i] (max softmax probability) given prompt + target[0..i). */
int ls_engine_teacher_force(ls_engine *e, const int *prompt, int n_prompt, const int *target, int n_target,
                            const uint8_t *skip, int *pred, float *conf, ls_err *err);

#endif
