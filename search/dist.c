/* Dynamic work distribution: a coordinator thread on rank 0 hands out
 * (candidate, shard) units to ranks that ask (ls_dist.h). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_dist.h"
#include "ls_util.h"

enum { TAG_REQ = 101, TAG_UNIT, TAG_RESULT, TAG_ERROR };

/* Header of a result message; the unit's ls_example_score records follow. */
typedef struct msg_head {
  int32_t unit;
  int32_t stop; /* the sender's stop flag was set */
  double ms;
} msg_head;

int ls_dist_init(ls_dist *d, MPI_Comm comm, volatile sig_atomic_t *stop_flag, ls_err *err) {
  memset(d, 0, sizeof *d);
  d->comm = comm;
  d->stop_flag = stop_flag;
  d->poll_us = 500;
  /* A dead peer must come back as an error code, not abort us silently. */
  if (MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN) != MPI_SUCCESS)
    return ls_err_set(err, LS_EMPI, "MPI_Comm_set_errhandler failed");
  MPI_Comm_rank(comm, &d->rank);
  MPI_Comm_size(comm, &d->size);
  return LS_OK;
}

int ls_round_new(ls_round *r, int n_cands, int n_shards, int n_examples, ls_err *err) {
  memset(r, 0, sizeof *r);
  if (n_shards < 1 || n_shards > n_examples)
    return ls_err_set(err, LS_EINVAL, "round: %d shards for %d examples", n_shards, n_examples);
  r->n_cands = n_cands;
  r->n_shards = n_shards;
  r->n_examples = n_examples;
  size_t nc = n_cands > 0 ? (size_t)n_cands : 1;
  r->shard_begin = ls_calloc((size_t)n_shards + 1, sizeof *r->shard_begin, err);
  r->res = ls_calloc(nc * (size_t)n_examples, sizeof *r->res, err);
  r->owner = ls_calloc(nc * (size_t)n_shards, sizeof *r->owner, err);
  r->unit_ms = ls_calloc(nc * (size_t)n_shards, sizeof *r->unit_ms, err);
  r->complete = ls_calloc(nc, 1, err);
  if (!r->shard_begin || !r->res || !r->owner || !r->unit_ms || !r->complete) {
    ls_round_free(r);
    return LS_ENOMEM;
  }
  /* Same contiguous split as ls_shard_bounds: shard k starts at floor(k * n / shards). */
  for (int k = 0; k <= n_shards; k++) r->shard_begin[k] = (int)((int64_t)k * n_examples / n_shards);
  for (size_t i = 0; i < nc * (size_t)n_shards; i++) r->owner[i] = -1;
  return LS_OK;
}

void ls_round_free(ls_round *r) {
  free(r->shard_begin);
  free(r->res);
  free(r->owner);
  free(r->unit_ms);
  free(r->complete);
  memset(r, 0, sizeof *r);
}

/* Shared state of one round on rank 0. */
typedef struct coord {
  ls_dist *d;
  ls_round *r;
  ls_unit_fn fn;
  ls_cand_done_fn done_cb;
  void *user;
  pthread_mutex_t mu;
  int total, next, finished;
  int *shards_done; /* [n_cands] */
  int *held;        /* [size] units handed to a worker and not yet returned */
  int *doneq;       /* [n_cands] candidates complete, in completion order, for the callback */
  int doneq_n, doneq_taken;
  int main_done;    /* rank 0's main thread has no more units to compute */
  int stop;         /* no more units are handed out */
  int failed;       /* an error ended the round */
  ls_err fail;
  double t_first, t_last; /* first unit handed out, last unit back */
  ls_example_score *buf; /* receive buffer: one unit's records */
  size_t buf_cap;
} coord;

static int max_shard_len(const ls_round *r) {
  int m = 0;
  for (int k = 0; k < r->n_shards; k++)
    if (r->shard_begin[k + 1] - r->shard_begin[k] > m) m = r->shard_begin[k + 1] - r->shard_begin[k];
  return m;
}

static int stop_requested(const ls_dist *d) { return d->stop_flag && *d->stop_flag; }

/* Records a finished unit (lock held); a complete candidate goes to the callback queue. */
static void unit_finished(coord *c, int u, int rank, double ms, const ls_example_score *recs) {
  ls_round *r = c->r;
  int cand = u / r->n_shards, shard = u % r->n_shards;
  int b = r->shard_begin[shard], e = r->shard_begin[shard + 1];
  if (recs) memcpy(r->res + (size_t)cand * r->n_examples + b, recs, (size_t)(e - b) * sizeof *recs);
  r->owner[u] = rank;
  r->unit_ms[u] = ms;
  c->finished++;
  c->t_last = ls_now_ms();
  if (++c->shards_done[cand] == r->n_shards) {
    r->complete[cand] = 1;
    c->doneq[c->doneq_n++] = cand;
  }
}

/* The round's first failure wins (lock held): its code, message (prefixed with the rank it
 * happened on when rank >= 0) and trace, as they were on that rank. */
static void set_failed(coord *c, int rank, const ls_err *e) {
  if (!c->failed) {
    c->failed = 1;
    c->fail = *e;
    if (rank >= 0) snprintf(c->fail.msg, sizeof c->fail.msg, "rank %d: %s", rank, e->msg);
  }
  c->stop = 1;
}

/* Next unit for anyone (lock held): -1 when none or stopping. */
static int take_unit(coord *c) {
  if (stop_requested(c->d)) c->stop = 1;
  if (c->stop || c->next >= c->total) return -1;
  if (c->next == 0) c->t_first = ls_now_ms();
  return c->next++;
}

static void mpi_fail(coord *c, const char *what, int src, int mrc) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(mrc, s, &len);
  ls_err e = {0};
  ls_err_set(&e, LS_EMPI, "MPI %s with rank %d failed (%s): a rank died or the network failed", what, src, s);
  pthread_mutex_lock(&c->mu);
  set_failed(c, -1, &e);
  pthread_mutex_unlock(&c->mu);
}

/* Hands worker src one more unit, or "no more" (-1) once it holds none; returns MPI status.
 * *closed is set when -1 was sent. */
static int give(coord *c, int src, int *closed) {
  pthread_mutex_lock(&c->mu);
  int32_t u = take_unit(c);
  if (u >= 0) c->held[src]++;
  int send = u >= 0 || c->held[src] == 0;
  pthread_mutex_unlock(&c->mu);
  *closed = u < 0 && send;
  if (!send) return MPI_SUCCESS; /* it still computes a unit: it will come back */
  return MPI_Send(&u, 1, MPI_INT32_T, src, TAG_UNIT, c->d->comm);
}

/* Runs the done callback for every queued candidate (coordinator thread, lock not held). */
static void drain_done(coord *c) {
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int cand = c->doneq_taken < c->doneq_n ? c->doneq[c->doneq_taken++] : -1;
    int skip = c->failed && c->fail.code == LS_EMPI; /* the job is lost: no more commits */
    pthread_mutex_unlock(&c->mu);
    if (cand < 0) return;
    if (!c->done_cb || skip) continue;
    ls_err err = {0};
    int rc = c->done_cb(c->user, c->r, cand, &err);
    if (rc != LS_OK) {
      err.code = rc;
      pthread_mutex_lock(&c->mu);
      set_failed(c, -1, &err);
      pthread_mutex_unlock(&c->mu);
    }
  }
}

/* Handles one message from a worker; returns 0, or -1 when the coordinator must give up (MPI
 * failure). *closed is set when the worker was told "no more". */
static int handle_msg(coord *c, const MPI_Status *st, int *closed) {
  ls_dist *d = c->d;
  ls_round *r = c->r;
  int src = st->MPI_SOURCE, count = 0, mrc;
  *closed = 0;
  MPI_Get_count(st, MPI_BYTE, &count);
  if (st->MPI_TAG == TAG_REQ) {
    int32_t s = 0;
    mrc = MPI_Recv(&s, 1, MPI_INT32_T, src, TAG_REQ, d->comm, MPI_STATUS_IGNORE);
    if (mrc != MPI_SUCCESS) { mpi_fail(c, "receive", src, mrc); return -1; }
    pthread_mutex_lock(&c->mu);
    if (s) c->stop = 1;
    pthread_mutex_unlock(&c->mu);
    /* the first request: fill the worker's prefetch queue */
    for (int k = 0; k < LS_DIST_PREFETCH && !*closed; k++) {
      mrc = give(c, src, closed);
      if (mrc != MPI_SUCCESS) { mpi_fail(c, "send", src, mrc); return -1; }
      pthread_mutex_lock(&c->mu);
      int none = c->stop || c->next >= c->total;
      pthread_mutex_unlock(&c->mu);
      if (none) break;
    }
    return 0;
  }
  if (st->MPI_TAG == TAG_RESULT) {
    if ((size_t)count > c->buf_cap) { mpi_fail(c, "receive (oversized result)", src, MPI_ERR_TRUNCATE); return -1; }
    mrc = MPI_Recv(c->buf, count, MPI_BYTE, src, TAG_RESULT, d->comm, MPI_STATUS_IGNORE);
    if (mrc != MPI_SUCCESS) { mpi_fail(c, "receive", src, mrc); return -1; }
    msg_head h;
    memcpy(&h, c->buf, sizeof h);
    pthread_mutex_lock(&c->mu);
    c->held[src]--;
    if (h.stop) c->stop = 1;
    if (h.unit >= 0 && h.unit < c->total && r->owner[h.unit] < 0)
      unit_finished(c, h.unit, src, h.ms, (const ls_example_score *)((char *)c->buf + sizeof(msg_head) + 8));
    pthread_mutex_unlock(&c->mu);
  } else if (st->MPI_TAG == TAG_ERROR) {
    /* the worker's whole ls_err (code, message, trace): one binary runs on every rank */
    if ((size_t)count != sizeof(ls_err)) { mpi_fail(c, "receive (malformed error)", src, MPI_ERR_TRUNCATE); return -1; }
    ls_err e;
    mrc = MPI_Recv(&e, count, MPI_BYTE, src, TAG_ERROR, d->comm, MPI_STATUS_IGNORE);
    if (mrc != MPI_SUCCESS) { mpi_fail(c, "receive", src, mrc); return -1; }
    e.msg[sizeof e.msg - 1] = e.trace[sizeof e.trace - 1] = '\0';
    pthread_mutex_lock(&c->mu);
    c->held[src]--;
    set_failed(c, src, &e);
    pthread_mutex_unlock(&c->mu);
  } else {
    return 0;
  }
  /* every result asks for the next unit */
  mrc = give(c, src, closed);
  if (mrc != MPI_SUCCESS) { mpi_fail(c, "send", src, mrc); return -1; }
  return 0;
}

/* The coordinator thread: answers workers until every one was told "no more", and runs the
 * done callback of complete candidates, until rank 0's main thread is done too. */
static void *coord_main(void *arg) {
  coord *c = arg;
  ls_dist *d = c->d;
  int active = d->size - 1;
  for (;;) {
    drain_done(c);
    if (active > 0) {
      int flag = 0;
      MPI_Status st;
      int mrc = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, d->comm, &flag, &st);
      if (mrc != MPI_SUCCESS) {
        mpi_fail(c, "probe", -1, mrc);
        active = 0;
        continue;
      }
      if (flag) {
        int closed = 0;
        if (handle_msg(c, &st, &closed) < 0) active = 0; /* the job is lost */
        if (closed) active--;
        continue;
      }
    }
    pthread_mutex_lock(&c->mu);
    int over = active == 0 && c->main_done && c->doneq_taken == c->doneq_n;
    pthread_mutex_unlock(&c->mu);
    if (over) break;
    struct timespec ts = {0, (long)d->poll_us * 1000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* Rank 0's main thread works on units while the coordinator thread talks and commits. */
static void rank0_work(coord *c, ls_example_score *tmp) {
  ls_round *r = c->r;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int u = take_unit(c);
    if (u < 0) c->main_done = 1;
    pthread_mutex_unlock(&c->mu);
    if (u < 0) return;
    int cand = u / r->n_shards, shard = u % r->n_shards;
    int b = r->shard_begin[shard], e = r->shard_begin[shard + 1];
    ls_err err = {0};
    double t0 = ls_now_ms();
    int rc = c->fn(c->user, cand, shard, b, e, tmp, &err);
    double ms = ls_now_ms() - t0;
    pthread_mutex_lock(&c->mu);
    if (rc != LS_OK) {
      err.code = rc;
      set_failed(c, 0, &err);
    } else {
      unit_finished(c, u, 0, ms, tmp);
    }
    pthread_mutex_unlock(&c->mu);
  }
}

/* A worker rank: ask once, then compute every unit that arrives and send it back, until told
 * "no more". The coordinator keeps up to LS_DIST_PREFETCH units queued here. */
static int worker_loop(ls_dist *d, ls_round *r, ls_unit_fn fn, void *user, char *buf, ls_err *err) {
  int32_t s = stop_requested(d) ? 1 : 0;
  int mrc = MPI_Send(&s, 1, MPI_INT32_T, 0, TAG_REQ, d->comm);
  if (mrc != MPI_SUCCESS) return ls_err_set(err, LS_EMPI, "rank %d: MPI send to the coordinator failed", d->rank);
  for (;;) {
    int32_t u = -1;
    mrc = MPI_Recv(&u, 1, MPI_INT32_T, 0, TAG_UNIT, d->comm, MPI_STATUS_IGNORE);
    if (mrc != MPI_SUCCESS)
      return ls_err_set(err, LS_EMPI, "rank %d: MPI receive from the coordinator failed (rank 0 died?)", d->rank);
    if (u < 0) return LS_OK;
    int cand = u / r->n_shards, shard = u % r->n_shards;
    int b = r->shard_begin[shard], e = r->shard_begin[shard + 1];
    ls_example_score *recs = (ls_example_score *)(buf + sizeof(msg_head) + 8);
    ls_err uerr = {0};
    double t0 = ls_now_ms();
    int rc = fn(user, cand, shard, b, e, recs, &uerr);
    msg_head h = {u, stop_requested(d) ? 1 : 0, ls_now_ms() - t0};
    if (rc != LS_OK) {
      uerr.code = rc;
      mrc = MPI_Send(&uerr, (int)sizeof uerr, MPI_BYTE, 0, TAG_ERROR, d->comm);
    } else {
      memcpy(buf, &h, sizeof h);
      size_t n = sizeof(msg_head) + 8 + (size_t)(e - b) * sizeof(ls_example_score);
      mrc = MPI_Send(buf, (int)n, MPI_BYTE, 0, TAG_RESULT, d->comm);
    }
    if (mrc != MPI_SUCCESS) return ls_err_set(err, LS_EMPI, "rank %d: MPI send to the coordinator failed", d->rank);
  }
}

/* Rank 0 shares the round's outcome with everyone. */
static int share(ls_dist *d, ls_round *r, int *failed, ls_err *fail, ls_err *err) {
  int32_t head[3] = {r->stopped, *failed, fail->code};
  size_t nu = (size_t)r->n_cands * r->n_shards, ne = (size_t)r->n_cands * r->n_examples;
  int rc = MPI_Bcast(head, 3, MPI_INT32_T, 0, d->comm);
  if (rc == MPI_SUCCESS) rc = MPI_Bcast(fail, (int)sizeof *fail, MPI_BYTE, 0, d->comm);
  if (rc == MPI_SUCCESS && nu) rc = MPI_Bcast(r->owner, (int)nu, MPI_INT, 0, d->comm);
  if (rc == MPI_SUCCESS && nu) rc = MPI_Bcast(r->unit_ms, (int)nu, MPI_DOUBLE, 0, d->comm);
  if (rc == MPI_SUCCESS && r->n_cands) rc = MPI_Bcast(r->complete, r->n_cands, MPI_UINT8_T, 0, d->comm);
  /* results in pieces below 2 GiB */
  size_t bytes = ne * sizeof(ls_example_score), off = 0;
  while (rc == MPI_SUCCESS && off < bytes) {
    size_t n = bytes - off > (1u << 30) ? (1u << 30) : bytes - off;
    rc = MPI_Bcast((char *)r->res + off, (int)n, MPI_BYTE, 0, d->comm);
    off += n;
  }
  if (rc != MPI_SUCCESS) return ls_err_set(err, LS_EMPI, "rank %d: MPI broadcast of round results failed (a rank died?)", d->rank);
  r->stopped = head[0];
  *failed = head[1];
  fail->code = head[2];
  return LS_OK;
}

int ls_dist_run(ls_dist *d, ls_round *r, ls_unit_fn fn, ls_cand_done_fn done, void *user, ls_err *err) {
  r->stopped = 0;
  int failed = 0;
  ls_err fail = {0};
  size_t unit_bytes = sizeof(msg_head) + 8 + (size_t)max_shard_len(r) * sizeof(ls_example_score);
  char *buf = ls_malloc(unit_bytes, err);
  if (!buf) return LS_ENOMEM;
  int rc = LS_OK;
  if (d->rank == 0) {
    coord c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.r = r;
    c.fn = fn;
    c.done_cb = done;
    c.user = user;
    c.total = r->n_cands * r->n_shards;
    c.buf = (ls_example_score *)buf;
    c.buf_cap = unit_bytes;
    size_t nc = r->n_cands > 0 ? (size_t)r->n_cands : 1;
    c.shards_done = ls_calloc(nc, sizeof(int), err);
    c.doneq = ls_calloc(nc, sizeof(int), err);
    c.held = ls_calloc((size_t)d->size, sizeof(int), err);
    ls_example_score *tmp = ls_calloc((size_t)max_shard_len(r) + 1, sizeof *tmp, err);
    if (!c.shards_done || !c.doneq || !c.held || !tmp) {
      free(c.shards_done);
      free(c.doneq);
      free(c.held);
      free(tmp);
      free(buf);
      return LS_ENOMEM;
    }
    pthread_mutex_init(&c.mu, NULL);
    pthread_t th;
    int have_thread = pthread_create(&th, NULL, coord_main, &c) == 0;
    if (!have_thread) {
      ls_err e = {0};
      ls_err_set(&e, LS_ESTATE, "rank 0: cannot start the coordinator thread");
      set_failed(&c, -1, &e);
    }
    if (have_thread || d->size == 1) rank0_work(&c, tmp);
    if (have_thread) pthread_join(th, NULL);
    pthread_mutex_destroy(&c.mu);
    r->stopped = c.finished < c.total;
    r->wall_ms = c.finished ? c.t_last - c.t_first : 0;
    r->busy_ms = 0;
    for (int u = 0; u < c.total; u++) r->busy_ms += r->owner[u] >= 0 ? r->unit_ms[u] : 0;
    failed = c.failed;
    fail = c.fail;
    free(c.shards_done);
    free(c.doneq);
    free(c.held);
    free(tmp);
  } else {
    rc = worker_loop(d, r, fn, user, buf, err);
  }
  free(buf);
  if (rc != LS_OK) return rc; /* this rank lost the coordinator: nothing to share */
  /* rank 0 lost a worker: a collective would hang on the dead rank, so report at once */
  if (!(d->rank == 0 && failed && fail.code == LS_EMPI)) LS_TRY(share(d, r, &failed, &fail, err));
  if (!failed) return LS_OK;
  /* the failure as it was raised, on whichever rank, with its trace; then this frame */
  *err = fail;
  if (!err->code) err->code = LS_EMPI;
  ls_err_trace(err, __FILE__, __LINE__, __func__);
  return err->code;
}

int ls_dist_any_stop(ls_dist *d, int *any, ls_err *err) {
  int mine = stop_requested(d) ? 1 : 0;
  if (MPI_Allreduce(&mine, any, 1, MPI_INT, MPI_MAX, d->comm) != MPI_SUCCESS)
    return ls_err_set(err, LS_EMPI, "rank %d: MPI_Allreduce failed (a rank died?)", d->rank);
  return LS_OK;
}
