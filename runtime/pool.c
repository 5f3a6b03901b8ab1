/* Persistent thread pool: a generation counter announces work; workers spin
 * for a short while (the gaps between the kernels of one token are
 * microseconds) and then sleep on a condition variable, so an idle engine
 * costs no CPU. Tasks are claimed with an atomic counter. */
#include "ls_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before a worker sleeps (~tens of microseconds). */
#define SPIN_ITERS 20000

typedef struct worker {
  struct ls_pool *pool;
  pthread_t tid;
  int index; /* 1.. n_threads-1 */
} worker;

struct ls_pool {
  int n_threads;
  worker *workers; /* [n_threads - 1] */

  /* the current job */
  ls_pool_fn fn;
  void *arg;
  int n_tasks;
  atomic_int next_task;
  atomic_int n_done; /* workers finished with the current generation */

  atomic_uint gen;   /* incremented once per ls_pool_run */
  atomic_int stop;
  atomic_int n_sleeping;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void run_tasks(ls_pool *p, int thread) {
  int n = p->n_tasks;
  for (;;) {
    int t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
    if (t >= n) break;
    p->fn(p->arg, t, thread);
  }
}

/* Waits until gen differs from seen (or stop); returns the new generation. */
static unsigned wait_for_work(ls_pool *p, unsigned seen) {
  for (int i = 0; i < SPIN_ITERS; i++) {
    unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g != seen || atomic_load(&p->stop)) return g;
    cpu_relax();
  }
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add(&p->n_sleeping, 1); /* seq_cst: pairs with the caller's gen store */
  unsigned g;
  while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
  atomic_fetch_sub(&p->n_sleeping, 1);
  pthread_mutex_unlock(&p->mu);
  return g;
}

static void *worker_main(void *v) {
  worker *w = v;
  ls_pool *p = w->pool;
  unsigned seen = 0; /* gen starts at 0; a run may be published before this thread starts */
  for (;;) {
    seen = wait_for_work(p, seen);
    if (atomic_load(&p->stop)) break;
    run_tasks(p, w->index);
    atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
  }
  return NULL;
}

int ls_pool_new(int n_threads, ls_pool **out, ls_err *err) {
  *out = NULL;
  if (n_threads < 1) n_threads = 1;
  if (n_threads > 256) return ls_err_set(err, LS_EINVAL, "thread count %d is absurd (at most 256)", n_threads);
  ls_pool *p = calloc(1, sizeof *p);
  if (!p) return ls_err_set(err, LS_ENOMEM, "out of memory for the thread pool");
  p->n_threads = n_threads;
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
        p->n_threads = i + 1; /* join only those that started */
        ls_pool_free(p);
        return ls_err_set(err, LS_EINVAL, "cannot start thread %d of %d", i + 2, n_threads);
      }
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

void ls_pool_run(ls_pool *p, ls_pool_fn fn, void *arg, int n_tasks) {
  if (n_tasks <= 0) return;
  if (!p || p->n_threads == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  p->n_tasks = n_tasks;
  atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
  atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
  atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes the job */
  if (atomic_load(&p->n_sleeping) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  run_tasks(p, 0);
  int n_workers = p->n_threads - 1;
  for (long i = 0; atomic_load_explicit(&p->n_done, memory_order_acquire) < n_workers; i++) {
    cpu_relax();
    if (i > SPIN_ITERS) sched_yield(); /* oversubscribed machine: let the worker run */
  }
}
