/* Packing and all-gathering reference runs (ls_refshare.h). The format is the
 * ranks' native layout (one job runs one binary): per example its index, then
 * its fields, its stages and their calls with token arrays and text. */
#include <stdlib.h>
#include <string.h>

#include "ls_refshare.h"
#include "ls_strbuf.h"
#include "ls_util.h"

static void put_i32(ls_strbuf *w, int32_t v) { ls_strbuf_put(w, &v, sizeof v); }
static void put_f64(ls_strbuf *w, double v) { ls_strbuf_put(w, &v, sizeof v); }

int ls_ref_pack(const ls_example_result *ref, int n, const uint8_t *mine, char **buf, size_t *len, ls_err *err) {
  ls_strbuf w = {0};
  for (int i = 0; i < n; i++) {
    if (!mine[i]) continue;
    const ls_example_result *e = &ref[i];
    put_i32(&w, i);
    put_i32(&w, e->n_stages);
    put_i32(&w, e->answer);
    put_i32(&w, e->correct);
    put_f64(&w, e->total_ms);
    for (int s = 0; s < e->n_stages; s++) {
      const ls_stage_result *st = &e->stages[s];
      put_i32(&w, st->n_calls);
      put_i32(&w, st->prompt_tokens);
      put_i32(&w, st->n_generated);
      put_i32(&w, st->early_exits);
      put_i32(&w, st->sublayers_executed);
      put_i32(&w, st->reused_tokens);
      put_f64(&w, st->prefill_ms);
      put_f64(&w, st->decode_ms);
      for (int k = 0; k < st->n_calls; k++) {
        const ls_call_result *c = &st->calls[k];
        int32_t tl = c->text ? (int32_t)strlen(c->text) : -1;
        put_i32(&w, c->n_prompt);
        put_i32(&w, c->n_generated);
        put_i32(&w, c->stop);
        put_i32(&w, c->n_reused);
        put_i32(&w, c->n_cached);
        put_i32(&w, tl);
        put_f64(&w, c->prefill_ms);
        put_f64(&w, c->decode_ms);
        for (int t = 0; t < c->n_prompt; t++) put_i32(&w, c->prompt_tokens[t]);
        for (int t = 0; t < c->n_generated; t++) put_i32(&w, c->tokens[t]);
        if (tl > 0) ls_strbuf_put(&w, c->text, (size_t)tl);
      }
    }
  }
  if (w.oom) {
    ls_strbuf_free(&w);
    return ls_err_set(err, LS_ENOMEM, "out of memory packing reference results");
  }
  *buf = w.buf;
  *len = w.len;
  return LS_OK;
}

typedef struct rbuf {
  const char *p;
  size_t n, at;
  int bad;
} rbuf;

static void get(rbuf *r, void *x, size_t n) {
  if (r->bad || r->at + n > r->n) {
    r->bad = 1;
    memset(x, 0, n);
    return;
  }
  memcpy(x, r->p + r->at, n);
  r->at += n;
}
static int32_t get_i32(rbuf *r) {
  int32_t v;
  get(r, &v, sizeof v);
  return v;
}
static double get_f64(rbuf *r) {
  double v;
  get(r, &v, sizeof v);
  return v;
}
/* a count that must fit in what is left of the buffer (guards the allocations below) */
static int get_count(rbuf *r, size_t elem) {
  int32_t v = get_i32(r);
  if (v < 0 || (size_t)v > (r->n - r->at) / (elem ? elem : 1)) {
    r->bad = 1;
    return 0;
  }
  return v;
}

static int unpack_one(rbuf *r, ls_example_result *e) {
  e->n_stages = get_count(r, 1);
  e->answer = get_i32(r);
  e->correct = get_i32(r);
  e->total_ms = get_f64(r);
  if (r->bad) return -1;
  e->stages = calloc((size_t)(e->n_stages ? e->n_stages : 1), sizeof *e->stages);
  if (!e->stages) return -1;
  for (int s = 0; s < e->n_stages && !r->bad; s++) {
    ls_stage_result *st = &e->stages[s];
    int nc = get_count(r, 1);
    st->prompt_tokens = get_i32(r);
    st->n_generated = get_i32(r);
    st->early_exits = get_i32(r);
    st->sublayers_executed = get_i32(r);
    st->reused_tokens = get_i32(r);
    st->prefill_ms = get_f64(r);
    st->decode_ms = get_f64(r);
    if (r->bad) return -1;
    st->calls = calloc((size_t)(nc ? nc : 1), sizeof *st->calls);
    if (!st->calls) return -1;
    st->n_calls = nc;
    for (int k = 0; k < nc && !r->bad; k++) {
      ls_call_result *c = &st->calls[k];
      int np = get_count(r, 4), ng = get_count(r, 4);
      c->stop = get_i32(r);
      c->n_reused = get_i32(r);
      c->n_cached = get_i32(r);
      int32_t tl = get_i32(r);
      c->prefill_ms = get_f64(r);
      c->decode_ms = get_f64(r);
      if (tl < -1 || (tl > 0 && (size_t)tl > r->n - r->at)) r->bad = 1;
      if (r->bad) return -1;
      c->prompt_tokens = malloc(sizeof(int) * (size_t)(np ? np : 1));
      c->tokens = malloc(sizeof(int) * (size_t)(ng ? ng : 1));
      if (!c->prompt_tokens || !c->tokens) return -1;
      c->n_prompt = np;
      c->n_generated = ng;
      for (int t = 0; t < np; t++) c->prompt_tokens[t] = get_i32(r);
      for (int t = 0; t < ng; t++) c->tokens[t] = get_i32(r);
      if (tl >= 0) {
        c->text = malloc((size_t)tl + 1);
        if (!c->text) return -1;
        get(r, c->text, (size_t)tl);
        c->text[tl] = 0;
      }
    }
  }
  return r->bad ? -1 : 0;
}

int ls_ref_unpack(const char *buf, size_t len, ls_example_result *ref, int n, ls_err *err) {
  rbuf r = {buf, len, 0, 0};
  while (r.at < r.n) {
    int32_t i = get_i32(&r);
    if (r.bad || i < 0 || i >= n || ref[i].stages)
      return ls_err_set(err, LS_EFORMAT, "reference exchange: bad or repeated example index %d", (int)i);
    if (unpack_one(&r, &ref[i]) < 0) {
      ls_example_result_free(&ref[i]);
      return ls_err_set(err, r.bad ? LS_EFORMAT : LS_ENOMEM, "reference exchange: example %d %s", (int)i,
                        r.bad ? "truncated" : "out of memory");
    }
  }
  return LS_OK;
}

int ls_ref_allgather(MPI_Comm comm, ls_example_result *ref, int n, const uint8_t *mine, ls_err *err) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  char *buf = NULL;
  size_t len = 0;
  LS_TRY(ls_ref_pack(ref, n, mine, &buf, &len, err));
  if (len > (size_t)1 << 30) {
    free(buf);
    return ls_err_set(err, LS_EUNSUPPORTED, "reference exchange: %zu bytes on rank %d (limit 1 GiB)", len, rank);
  }
  int mylen = (int)len;
  int *lens = calloc((size_t)size, sizeof *lens), *offs = calloc((size_t)size, sizeof *offs);
  char *all = NULL;
  int rc = lens && offs ? LS_OK : ls_err_set(err, LS_ENOMEM, "out of memory for the reference exchange");
  if (rc == LS_OK && MPI_Allgather(&mylen, 1, MPI_INT, lens, 1, MPI_INT, comm) != MPI_SUCCESS)
    rc = ls_err_set(err, LS_EMPI, "rank %d: MPI_Allgather of reference sizes failed (a rank died?)", rank);
  size_t total = 0;
  for (int q = 0; rc == LS_OK && q < size; q++) {
    offs[q] = (int)total;
    total += (size_t)lens[q];
  }
  if (rc == LS_OK && total > (size_t)1 << 30) rc = ls_err_set(err, LS_EUNSUPPORTED, "reference exchange: %zu bytes (limit 1 GiB)", total);
  if (rc == LS_OK && !(all = malloc(total ? total : 1))) rc = ls_err_set(err, LS_ENOMEM, "out of memory for the reference exchange");
  if (rc == LS_OK && MPI_Allgatherv(buf, mylen, MPI_BYTE, all, lens, offs, MPI_BYTE, comm) != MPI_SUCCESS)
    rc = ls_err_set(err, LS_EMPI, "rank %d: MPI_Allgatherv of reference results failed (a rank died?)", rank);
  for (int q = 0; rc == LS_OK && q < size; q++)
    if (q != rank) rc = ls_ref_unpack(all + offs[q], (size_t)lens[q], ref, n, err);
  for (int i = 0; rc == LS_OK && i < n; i++)
    if (!ref[i].stages) rc = ls_err_set(err, LS_ESTATE, "reference exchange: no rank holds example %d", i);
  free(buf);
  free(all);
  free(lens);
  free(offs);
  return rc;
}
