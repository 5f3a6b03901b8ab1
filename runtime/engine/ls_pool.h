/* A persistent pthread pool. Workers are created once and wait (spin briefly,
 * then sleep on a condition variable) for the next ls_pool_run(); the caller
 * takes part as thread 0. Tasks are handed out dynamically (an atomic
 * counter), so a task must compute the same thing whichever thread runs it:
 * callers split work by output rows (or heads) into chunks whose size does not
 * depend on the thread count, which keeps results bit-identical for any
 * number of threads. ls_pool_run() allocates nothing. */
#ifndef LS_POOL_H
#define LS_POOL_H

#include "ls_error.h"

typedef struct ls_pool ls_pool;

/* fn(arg, task, thread): task in [0, n_tasks), thread in [0, n_threads) is the
 * index of the thread running it (for per-thread scratch; 0 is the caller). */
typedef void (*ls_pool_fn)(void *arg, int task, int thread);

/* n_threads includes the caller (<= 1: no workers, everything runs inline). */
int ls_pool_new(int n_threads, ls_pool **out, ls_err *err);
void ls_pool_free(ls_pool *p);
int ls_pool_n_threads(const ls_pool *p);

/* Runs fn for every task and returns when all have finished. Not reentrant:
 * one caller at a time, and fn must not call ls_pool_run on the same pool. */
void ls_pool_run(ls_pool *p, ls_pool_fn fn, void *arg, int n_tasks);

/* Spans: n_chunks chunks of memory-streaming work (matmul rows) handed out as
 * runs of consecutive chunks, LS_POOL_SPANS_PER_THREAD per thread, instead of
 * one chunk a task: with one chunk a task the threads' claims interleave
 * (thread 0 takes chunk 0, thread 1 chunk 1, ...), so each thread's reads jump
 * every chunk and the hardware prefetcher starts over at every jump; a span is
 * one long stream. Measured on Zen 5 (2 vCPUs, TinyLlama-shape synth files, 2
 * threads, bench_engine, chunks -> spans of 4 per thread, alternating): Q4_0
 * decode 40-45 -> 62-69 tok/s, Q8_0 30-34 -> 35-44, Q4_0 step of 16 rows 81 ->
 * 71 ms; prefill-256 the same (compute-bound). 1 span per thread measured the
 * same as 4; 4 leaves the pool room to even out a thread that is descheduled
 * on a shared host. The chunks themselves do not change, so neither do
 * results. */
#define LS_POOL_SPANS_PER_THREAD 4

/* How many spans to run n_chunks chunks in: min(n_chunks, threads x 4). */
int ls_pool_spans(const ls_pool *p, int n_chunks);

/* Chunks [*c0, *c1) of span s of n_spans: s * n_chunks / n_spans up to
 * (s + 1) * n_chunks / n_spans (every chunk in exactly one span, in order). */
void ls_pool_span(int s, int n_spans, int n_chunks, int *c0, int *c1);

#endif
