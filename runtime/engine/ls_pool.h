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

#endif
