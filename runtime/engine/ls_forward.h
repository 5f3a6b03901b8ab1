/* The forward pass: a context holds a KV cache with a fixed number of
 * sequence slots (each up to n_ctx positions), the activation buffers and the
 * thread pool, all allocated by ls_ctx_new() so that the token loop allocates
 * nothing. One call (ls_decode) runs a batch of rows, each a token of some
 * sequence at some position, in the spirit of llama.cpp's llama_batch: every
 * linear layer reads its weights once for all rows, attention runs per
 * sequence.
 *
 * Contract: a row's logits are bit-identical whatever else is in the batch
 * (batch size, other sequences, their order) and for any thread count: every
 * per-row operation depends only on that row (kernels.h, matmul contract).
 *
 * Skip masks: `skip` is NULL (run everything) or n_layers bytes, each an OR of
 * LS_SKIP_ATTN and LS_SKIP_FFN. A skipped sub-layer adds nothing to the
 * residual stream. A skipped attention sub-layer also writes no K/V for those
 * positions: the KV cache policy is that every stage prefills its own prompt
 * with its own mask (docs/ARCHITECTURE.md, "KV cache across skips"), so a layer's cache is only read by calls that
 * run that layer with the same mask. */
#ifndef LS_FORWARD_H
#define LS_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"
#include "ls_model.h"
#include "ls_schedule.h"

enum { LS_SKIP_ATTN = LS_SUBLAYER_ATTN, LS_SKIP_FFN = LS_SUBLAYER_FFN }; /* a mask byte is a set of sub-layer kinds */

typedef struct ls_ctx ls_ctx;

/* Most sequence slots one context may hold. */
#define LS_MAX_SEQ 256

#define LS_MAX_CTX (1 << 22) /* positions per sequence the engine accepts at most */

typedef struct ls_ctx_params {
  int n_ctx;     /* KV cache length in positions per sequence (<= 0: the model's seq_len) */
  int n_seq;     /* sequence slots in the KV cache (<= 0: 1) */
  int max_batch; /* most tokens per ls_forward() call (prefill chunk); <= 0: 512 */
  int n_threads; /* worker threads including the caller (<= 0: 1) */
} ls_ctx_params;

/* Per-sub-layer redundancy statistics, accumulated during forward calls when
 * attached with ls_ctx_set_stats(): for sub-layer s = 2*layer + (0 attn,
 * 1 ffn), cos_sum[s] += cos(residual before, residual after) per token and
 * count[s] += 1. Accumulated in token order, so identical for any thread count. */
typedef struct ls_sublayer_stats {
  int n_sublayers; /* 2 * n_layers */
  double *cos_sum;
  int64_t *count;
} ls_sublayer_stats;

int ls_ctx_new(const ls_model *m, const ls_ctx_params *p, ls_ctx **out, ls_err *err);
void ls_ctx_free(ls_ctx *c);

/* A batch of rows: row i is token[i] of sequence seq[i] at position pos[i];
 * logits[i] != 0 asks for its logits. Built with ls_batch_add (no allocation
 * after ls_batch_init). */
typedef struct ls_batch {
  int n_tokens, capacity;
  int *token, *pos, *seq;
  int8_t *logits;
} ls_batch;

int ls_batch_init(ls_batch *b, int capacity, ls_err *err);
void ls_batch_free(ls_batch *b);
static inline void ls_batch_clear(ls_batch *b) { b->n_tokens = 0; }
/* Appends a row; returns its index, or -1 if the batch is full. */
int ls_batch_add(ls_batch *b, int token, int pos, int seq, int want_logits);

/* Runs a batch (1..max_batch rows; rows wanting logits at most
 * ls_ctx_max_logits()). The rows of one sequence must have consecutive
 * positions, in order, the first at most the sequence's length
 * (ls_kv_seq_len): a row attends to positions 0..pos of its sequence, and a
 * row at a position below the length overwrites it and drops what followed.
 * Logits of the i-th row that asked for them: ls_ctx_logits_ith(c, i). */
int ls_decode(ls_ctx *c, const ls_batch *b, const uint8_t *skip, ls_err *err);
const float *ls_ctx_logits_ith(const ls_ctx *c, int i);
/* Rows with logits in the last call. */
int ls_ctx_n_outputs(const ls_ctx *c);

/* KV cache sequence slots. A slot's length is the number of positions it
 * holds (0 after ls_ctx_new). keep: the first n_keep positions stay (0
 * clears it). fork: dst gets a copy of src's first n_pos positions (n_pos <=
 * src's length) and that length. */
int ls_kv_seq_len(const ls_ctx *c, int seq);
void ls_kv_seq_keep(ls_ctx *c, int seq, int n_keep);
int ls_kv_seq_fork(ls_ctx *c, int dst, int src, int n_pos, ls_err *err);
int ls_ctx_n_seq(const ls_ctx *c);
/* Prefix reuse: the number of leading positions of `seq` that hold tokens[0..)
 * (at most n) computed under a mask that may serve a call under `skip` with
 * the given ls_kv_policy (common/ls_schedule.h): REUSE, the same mask (the
 * K/V are then bit-identical to recomputing them); SHARED_PREFIX, any mask
 * that ran every attention sub-layer `skip` runs; RECOMPUTE: 0. The context
 * records each held position's token and mask as rows are run and forked. */
int ls_kv_seq_reusable(const ls_ctx *c, int seq, const int *tokens, int n, const uint8_t *skip, int policy);
/* Can a position computed under mask `held` serve a call under `want` (NULL:
 * the full model) under the KV policy? */
int ls_kv_mask_serves(const uint8_t *held, const uint8_t *want, int n_layers, int policy);
/* Records tokens[from..to) as held by sequence seq (which holds exactly from
 * positions) under mask skip, without computing them: their K/V are left
 * unset, so only for positions no later call reads (the caller knows). */
int ls_kv_seq_hold(ls_ctx *c, int seq, const int *tokens, int from, int to, const uint8_t *skip, ls_err *err);
/* Every sequence keeps its positions up to the first one ls_kv_seq_hold recorded
 * (whose K/V were never computed): what is left can serve any later call. */
void ls_kv_drop_held(ls_ctx *c);
/* Every sequence empty (ls_kv_seq_keep 0) and the table of masks forgotten, so that
 * what a later run reuses does not depend on the masks of runs before it. */
void ls_kv_clear(ls_ctx *c);

/* Sequence 0 only: runs tokens[0..n) at positions pos..pos+n-1 (n <= max_batch, pos+n <= n_ctx).
 * If all_logits, logits for every token are computed (then n must also be
 * <= ls_ctx_max_logits(): the logits buffer is bounded to ~8 MiB, e.g. 65
 * rows for a 32000-token vocabulary), else only for the last.
 * Logits are then at ls_ctx_logits(): [all_logits ? n : 1][vocab]. */
int ls_forward(ls_ctx *c, const int *tokens, int n, int pos, const uint8_t *skip, int all_logits, ls_err *err);
const float *ls_ctx_logits(const ls_ctx *c);

/* Attach (or detach with NULL) redundancy statistics. */
void ls_ctx_set_stats(ls_ctx *c, ls_sublayer_stats *stats);

int ls_ctx_n_ctx(const ls_ctx *c);
int ls_ctx_max_batch(const ls_ctx *c);
/* Most tokens one all_logits ls_forward() call may cover (<= max_batch). */
int ls_ctx_max_logits(const ls_ctx *c);
/* Bytes of the KV cache (K and V, all sequences, all layers, n_ctx positions). */
size_t ls_ctx_kv_bytes(const ls_ctx *c);
int ls_ctx_n_threads(const ls_ctx *c);
const ls_model *ls_ctx_model(const ls_ctx *c);
/* Name of the kernel level in use ("ref", "avx2", "avx512"; see LS_KERNELS). */
const char *ls_ctx_kernels(const ls_ctx *c);
/* How its matmuls stream weight rows: "prefetch", "plain" (ls_kernels.streams), or "-". */
const char *ls_ctx_kernel_streams(const ls_ctx *c);
/* Name of the kernel level new contexts will use (CPU features / LS_KERNELS). */
const char *ls_kernel_level_name(void);

/* Index of the largest value (the first one on ties); -1 if n <= 0. */
int ls_argmax(const float *x, int n);

/* Runs tokens[0..n) from position 0 in chunks: the prompt's prefix (positions
 * that predict nothing) in full batches without logits, then chunks of at most
 * ls_ctx_max_logits() rows; on_row(user, i, logits) for every position
 * i >= n_prompt - 1, in order (logits: vocab floats predicting tokens[i + 1]).
 * The one teacher-forcing loop: ls_teacher_forced_top1 and
 * ls_engine_teacher_force are built on it. */
int ls_forward_scored(ls_ctx *c, const int *tokens, int n, int n_prompt, const uint8_t *skip,
                      void (*on_row)(void *user, int pos, const float *logits), void *user, ls_err *err);

/* Teacher-forced top-1 agreement: runs tokens[0..n) from position 0 (in
 * max_batch chunks without logits up to the prompt's end, then chunks of
 * ls_ctx_max_logits() with all logits, under skip) and counts positions i in
 * [n_prompt-1, n-1) whose argmax equals tokens[i+1]. *n_agree gets that count
 * and *n_total the number of positions compared (n - n_prompt). */
int ls_teacher_forced_top1(ls_ctx *c, const int *tokens, int n, int n_prompt, const uint8_t *skip, int *n_agree,
                           int *n_total, ls_err *err);

/* Sub-layer names ("L3.attn", "L17.ffn", 0-based layers) are parsed by
 * ls_sublayer_name_parse() in common/ls_schedule.h; its kinds equal LS_SKIP_*. */
/* Parses a comma-separated list ("L3.attn,L4.ffn") into a skip mask of n_layers bytes. */
int ls_skip_mask_parse(const char *list, int n_layers, uint8_t *mask, ls_err *err);
/* Number of sub-layers executed (not skipped) under a mask (NULL: 2*n_layers). */
int ls_skip_mask_executed(const uint8_t *mask, int n_layers);

#endif
