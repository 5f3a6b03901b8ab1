/* Persistent thread pool. One 64-bit atomic word holds the job's generation,
 * its task count and the next unclaimed task; workers spin for a while (the
 * gaps between the kernels of one token are microseconds) and then sleep on
 * a condition variable, so an idle engine costs no CPU.
 *
 * The caller waits for the tasks to be completed, not for the workers to
 * check in: on a busy machine a descheduled worker does not hold up a run
 * unless it has claimed a task (at most one chunk). A worker that wakes up
 * late finds the generation moved on and claims nothing. fn and arg are read
 * only after a successful claim, when the caller is still waiting for that
 * task and so cannot have replaced them. */
#include "ls_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before a worker sleeps (tens of microseconds). */
#define SPIN_ITERS 20000
/* state word: generation (32 bits) | task count (16) | next task (16) */
#define MAX_TASKS 0xffff
#define ST_GEN(s) ((uint32_t)((s) >> 32))
#define ST_N(s) ((int)(((s) >> 16) & 0xffff))
#define ST_NEXT(s) ((int)((s)&0xffff))

typedef struct worker {
  struct ls_pool *pool;
  pthread_t tid;
  int index; /* 1 .. n_threads-1 */
} worker;

struct ls_pool {
  int n_threads;
  worker *workers; /* [n_threads - 1] */
  ls_pool_fn fn;   /* the current job; stable while any of its tasks is unfinished */
  void *arg;
  _Atomic uint64_t state;
  atomic_int n_completed; /* tasks of the current job finished */
  atomic_int stop;
  atomic_int n_sleeping;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

/* Claims and runs tasks of generation gen until none are left. */
static void run_tasks(ls_pool *p, uint32_t gen, int thread) {
  uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
  for (;;) {
    if (ST_GEN(s) != gen || ST_NEXT(s) >= ST_N(s)) return;
    if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel, memory_order_acquire))
      continue;
    p->fn(p->arg, ST_NEXT(s), thread);
    atomic_fetch_add_explicit(&p->n_completed, 1, memory_order_release);
    s = atomic_load_explicit(&p->state, memory_order_acquire);
  }
}

/* Waits until the generation differs from seen (or stop); returns it. */
static uint32_t wait_for_work(ls_pool *p, uint32_t seen) {
  for (int i = 0; i < SPIN_ITERS; i++) {
    uint32_t g = ST_GEN(atomic_load_explicit(&p->state, memory_order_acquire));
    if (g != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) return g;
    cpu_relax();
  }
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add(&p->n_sleeping, 1); /* seq_cst: pairs with the caller's publish */
  uint32_t g;
  while ((g = ST_GEN(atomic_load(&p->state))) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
  atomic_fetch_sub(&p->n_sleeping, 1);
  pthread_mutex_unlock(&p->mu);
  return g;
}

static void *worker_main(void *v) {
  worker *w = v;
  ls_pool *p = w->pool;
  uint32_t seen = 0; /* generation 0 is "no job yet" */
  for (;;) {
    seen = wait_for_work(p, seen);
    if (atomic_load(&p->stop)) break;
    run_tasks(p, seen, w->index);
  }
  return NULL;
}

int ls_pool_new(int n_threads, ls_pool **out, ls_err *err) {
  *out = NULL;
  if (n_threads < 1) n_threads = 1;
  if (n_threads > 256) return ls_err_set(err, LS_EINVAL, "thread count %d is absurd (at most 256)", n_threads);
  ls_pool *p = calloc(1, sizeof *p);
  if (!p) return ls_err_set(err, LS_ENOMEM, "out of memory for the thread pool");
  p->n_threads = 1;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  if (n_threads > 1) {
    p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
    if (!p->workers) {
      ls_pool_free(p);
      return ls_err_set(err, LS_ENOMEM, "out of memory for the thread pool");
    }
    for (int i = 0; i < n_threads - 1; i++) {
      worker *w = &p->workers[i];
      w->pool = p;
      w->index = i + 1;
      if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
        ls_pool_free(p); /* joins the p->n_threads - 1 started so far */
        return ls_err_set(err, LS_EINVAL, "cannot start thread %d of %d", i + 2, n_threads);
      }
      p->n_threads = i + 2;
    }
  }
  *out = p;
  return LS_OK;
}

void ls_pool_free(ls_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i].tid, NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->workers);
  free(p);
}

int ls_pool_n_threads(const ls_pool *p) { return p ? p->n_threads : 1; }

int ls_pool_spans(const ls_pool *p, int n_chunks) {
  int64_t spans = (int64_t)ls_pool_n_threads(p) * LS_POOL_SPANS_PER_THREAD;
  return spans < n_chunks ? (int)spans : n_chunks;
}

void ls_pool_span(int s, int n_spans, int n_chunks, int *c0, int *c1) {
  *c0 = (int)((int64_t)n_chunks * s / n_spans);
  *c1 = (int)((int64_t)n_chunks * (s + 1) / n_spans);
}

static void run_batch(ls_pool *p, ls_pool_fn fn, void *arg, int first, int n_tasks);

typedef struct offset_job {
  ls_pool_fn fn;
  void *arg;
  int first;
} offset_job;

static void offset_task(void *arg, int task, int thread) {
  offset_job *j = arg;
  j->fn(j->arg, j->first + task, thread);
}

void ls_pool_run(ls_pool *p, ls_pool_fn fn, void *arg, int n_tasks) {
  if (n_tasks <= 0) return;
  if (!p || p->n_threads == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
    return;
  }
  /* the state word counts at most MAX_TASKS tasks per run */
  for (int first = 0; first < n_tasks; first += MAX_TASKS)
    run_batch(p, fn, arg, first, n_tasks - first < MAX_TASKS ? n_tasks - first : MAX_TASKS);
}

static void run_batch(ls_pool *p, ls_pool_fn fn, void *arg, int first, int n_tasks) {
  offset_job oj = {fn, arg, first};
  if (first > 0) {
    fn = offset_task;
    arg = &oj;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->n_completed, 0, memory_order_relaxed);
  uint32_t gen = ST_GEN(atomic_load(&p->state)) + 1;
  if (gen == 0) gen = 1; /* 0 means "no job yet" to a starting worker */
  /* seq_cst: publishes fn/arg and pairs with a worker's n_sleeping increment */
  atomic_store(&p->state, ((uint64_t)gen << 32) | ((uint64_t)n_tasks << 16));
  if (atomic_load(&p->n_sleeping) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  run_tasks(p, gen, 0);
  for (long i = 0; atomic_load_explicit(&p->n_completed, memory_order_acquire) < n_tasks; i++) {
    cpu_relax();
    if (i > SPIN_ITERS) sched_yield(); /* a worker holding a task was descheduled */
  }
}
