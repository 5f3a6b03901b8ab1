/* The forward pass over a batch of rows (llama_batch-like: each row is a
 * token of some sequence at some position), prefill and decode alike.
 *
 * Work is split across the pool by output rows (matmuls, in chunks of a fixed
 * CHUNK_ROWS rows, handed out as spans of consecutive chunks: ls_pool_span), by
 * (token, head) (attention) or by token (norms, RoPE, activation
 * quantisation). A chunk's size never depends on the thread count
 * and every output element is computed by one thread with a fixed reduction
 * order, so the logits are bit-identical for any number of threads.
 *
 * Every linear layer runs once per call over all rows (each weight row is read
 * once for the whole batch); attention runs per (row, head) over the row's own
 * sequence. Every per-row operation (embedding, norms, RoPE, activation
 * quantisation, matmul element, attention, residual) depends only on that
 * row's data and the kernel level, never on the other rows, the batch size or
 * the thread count, so a row's logits are bit-identical whatever else is in
 * the batch (kernels.h states the matmul half of this contract; tested in
 * tests/kernels and tests/engine/test_batch.c).
 *
 * KV cache: f32, [n_seq][n_layers][n_ctx][kv_dim] for K and for V (per
 * sequence, llama2.c's layout). K/V rows of a batch go through a
 * [max_batch][kv_dim] scratch (RoPE applied there) and are then scattered to
 * their sequence and position. f32 rather than f16: decode reads the whole weight set (1.2 GB
 * for TinyLlama Q8_0) per token against a few MB of cache, so halving the
 * cache buys nothing measurable and would cost accuracy and conversions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "ls_forward.h"
#include "ls_schedule.h"
#include "ls_pool.h"

#define CHUNK_ROWS 32
/* Bound on the logits buffer (see ls_ctx_new). */
#define LOGITS_BYTES ((size_t)8 << 20)
#define LOGITS_MIN_ROWS 16
/* Distinct skip masks the context remembers for prefix reuse (position tags). */
#define MAX_MASKS 64
#define NO_MASK 255

struct ls_ctx {
  const ls_model *m;
  const ls_kernels *k;
  ls_pool *pool;
  int n_ctx, max_batch, n_threads, n_seq;
  int q_dim, kv_dim;

  float *key_cache;   /* [n_seq][n_layers][n_ctx][kv_dim] */
  float *value_cache; /* [n_seq][n_layers][n_ctx][kv_dim] */
  int *kv_len;        /* [n_seq] positions held per sequence */
  int *slot_tok;      /* [n_seq][n_ctx] token held at each position */
  uint8_t *slot_mask; /* [n_seq][n_ctx] index into masks of the mask it was computed under */
  uint8_t *slot_held; /* [n_seq][n_ctx] 1: recorded by ls_kv_seq_hold, K/V not computed */
  uint8_t *masks;     /* [MAX_MASKS][n_layers] masks seen (NULL skip = all zeros) */
  int n_masks;
  int *seq_last;      /* [n_seq] scratch: last position per sequence in the batch being checked */
  float *kbuf, *vbuf; /* [max_batch][kv_dim] K and V of the batch before the scatter */
  int *out_rows;      /* [max_batch] rows whose logits are computed, in batch order */
  int n_out;          /* logits rows of the last call */
  ls_batch own;       /* ls_forward's batch (sequence 0) */
  const ls_batch *b;  /* batch of the running call */
  float *x;           /* [max_batch][dim] residual stream */
  float *xb;          /* [max_batch][dim] normed input / sub-layer output */
  float *q;           /* [max_batch][q_dim] */
  float *att_out;     /* [max_batch][q_dim] */
  float *hb;          /* [max_batch][hidden_dim] gate, then silu(gate) * up */
  float *up;          /* [n_threads][max_batch][CHUNK_ROWS] one chunk of up, per thread */
  float *logits;      /* [logits_rows][vocab] */
  int logits_rows;    /* most tokens with logits per call (bounds the buffer) */
  void *xa;           /* prepared (quantised) activations, [slots][max_batch][xa_stride] */
  size_t xa_stride;   /* bytes per token of xa */
  float *att;         /* [n_threads][LS_ATTN_ROWS][n_ctx] attention scores */
  int *att_block;     /* [max_batch + 1] first row of each run of rows of one sequence (attention_rows) */
  double *cos_tmp;    /* [max_batch] per-token cosines of the current sub-layer */
  ls_sublayer_stats *stats;
};

/* ---- allocation ---------------------------------------------------------- */

static void *alloc_floats(size_t n, ls_err *err) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void *p = aligned_alloc(64, bytes ? bytes : 64);
  if (!p) {
    ls_err_set(err, LS_ENOMEM, "out of memory allocating %zu bytes for the inference context", bytes);
    return NULL;
  }
  memset(p, 0, bytes);
  return p;
}

static int check_mat(const ls_mat *w, int64_t rows, int64_t cols, const char *what, int layer, ls_err *err) {
  if (!ls_dtype_supported(w->type))
    return ls_err_set(err, LS_EUNSUPPORTED, "layer %d %s: tensor type %s is not supported", layer, what,
                      ls_dtype_name(w->type));
  if (!w->data || w->rows != rows || w->cols != cols || w->row_bytes != ls_dtype_row_bytes(w->type, cols))
    return ls_err_set(err, LS_EMISMATCH, "layer %d %s: shape [%lld x %lld] does not match the model (%lld x %lld)",
                      layer, what, (long long)w->rows, (long long)w->cols, (long long)rows, (long long)cols);
  return LS_OK;
}

static int check_model(const ls_model *m, ls_err *err) {
  const ls_config *p = &m->cfg;
  int64_t q_dim = (int64_t)p->n_heads * p->head_dim, kv_dim = (int64_t)p->n_kv_heads * p->head_dim;
  if (p->dim <= 0 || p->n_layers <= 0 || p->n_heads <= 0 || p->n_kv_heads <= 0 || p->head_dim <= 0 ||
      p->n_heads % p->n_kv_heads || p->vocab_size <= 0 || p->hidden_dim <= 0)
    return ls_err_set(err, LS_EINVAL, "%s: model shape is not set", m->path);
  for (int l = 0; l < p->n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    if (!L->attn_norm || !L->ffn_norm) return ls_err_set(err, LS_EINVAL, "%s: layer %d has no norms", m->path, l);
    LS_TRY(check_mat(&L->wq, q_dim, p->dim, "wq", l, err));
    LS_TRY(check_mat(&L->wk, kv_dim, p->dim, "wk", l, err));
    LS_TRY(check_mat(&L->wv, kv_dim, p->dim, "wv", l, err));
    LS_TRY(check_mat(&L->wo, p->dim, q_dim, "wo", l, err));
    LS_TRY(check_mat(&L->w_gate, p->hidden_dim, p->dim, "ffn gate", l, err));
    LS_TRY(check_mat(&L->w_up, p->hidden_dim, p->dim, "ffn up", l, err));
    LS_TRY(check_mat(&L->w_down, p->dim, p->hidden_dim, "ffn down", l, err));
  }
  LS_TRY(check_mat(&m->tok_embd, p->vocab_size, p->dim, "token embedding", -1, err));
  LS_TRY(check_mat(&m->output, p->vocab_size, p->dim, "output", -1, err));
  if (!m->out_norm) return ls_err_set(err, LS_EINVAL, "%s: model has no output norm", m->path);
  return LS_OK;
}

static size_t act_bytes_max(const ls_kernels *k, const ls_model *m) {
  size_t best = 0;
  for (int l = 0; l < m->cfg.n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    const ls_mat *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
      size_t b = k->act_bytes(ws[i]->type, ws[i]->cols);
      if (b > best) best = b;
    }
  }
  size_t b = k->act_bytes(m->output.type, m->output.cols);
  if (b > best) best = b;
  return (best + 63) / 64 * 64;
}

/* Distinct prepared weight types among the mats (what run_matmuls needs slots for). */
static int distinct_prepared(const ls_kernels *k, const ls_mat *const *ws, int n) {
  int count = 0;
  for (int i = 0; i < n; i++) {
    if (!k->act_bytes(ws[i]->type, ws[i]->cols)) continue;
    int seen = 0;
    for (int j = 0; j < i; j++) seen |= k->act_bytes(ws[j]->type, ws[j]->cols) && ws[j]->type == ws[i]->type;
    count += !seen;
  }
  return count;
}

/* Most input slots one run_matmuls call needs (groups: q/k/v and gate/up). */
static int xa_slots(const ls_kernels *k, const ls_model *m) {
  int best = 1;
  for (int l = 0; l < m->cfg.n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    const ls_mat *qkv[] = {&L->wq, &L->wk, &L->wv}, *gu[] = {&L->w_gate, &L->w_up};
    int a = distinct_prepared(k, qkv, 3), b = distinct_prepared(k, gu, 2);
    if (a > best) best = a;
    if (b > best) best = b;
  }
  return best;
}

/* The KV cache is sized from the context length, which a model file declares
 * (an untrusted field): refuse, before allocating, a cache larger than this
 * machine's physical memory or a context over LS_MAX_CTX positions, naming
 * where the number came from. */
static int check_kv_fits(const ls_model *m, const ls_ctx_params *d, int from_flag, ls_err *err) {
  const ls_config *cfg = &m->cfg;
  double gib = 2.0 * sizeof(float) * (double)d->n_seq * cfg->n_layers * (double)d->n_ctx *
               (double)(cfg->n_kv_heads * cfg->head_dim) / (1u << 30);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  double machine_gib = pages > 0 && page > 0 ? (double)pages * (double)page / (1u << 30) : 0;
  const char *what = from_flag ? "-c/--ctx-size" : cfg->arch == LS_ARCH_QWEN2 ? "qwen2.context_length" : "llama.context_length";
  if (d->n_ctx > LS_MAX_CTX)
    return ls_err_set(err, LS_EINVAL, "%s: %s %d is over the engine's limit of %d positions; use -c to cap it",
                      m->path, what, d->n_ctx, LS_MAX_CTX);
  if (machine_gib > 0 && gib > machine_gib)
    return ls_err_set(err, LS_ENOMEM,
                      "%s: %s %d needs %.1f GiB of KV cache (%d sequence(s)), more than this machine's %.1f GiB; "
                      "use -c to cap it",
                      m->path, what, d->n_ctx, gib, d->n_seq, machine_gib);
  return LS_OK;
}

int ls_ctx_new(const ls_model *m, const ls_ctx_params *p, ls_ctx **out, ls_err *err) {
  *out = NULL;
  LS_TRY(check_model(m, err));
  const ls_config *cfg = &m->cfg;
  ls_ctx_params d = {0};
  if (p) d = *p;
  if (d.n_ctx <= 0) d.n_ctx = cfg->seq_len;
  if (d.max_batch <= 0) d.max_batch = 512;
  if (d.max_batch > d.n_ctx) d.max_batch = d.n_ctx;
  if (d.n_threads <= 0) d.n_threads = 1;
  if (d.n_seq <= 0) d.n_seq = 1;
  if (d.n_seq > LS_MAX_SEQ)
    return ls_err_set(err, LS_EINVAL, "%d sequences requested (at most %d)", d.n_seq, LS_MAX_SEQ);
  LS_TRY(check_kv_fits(m, &d, p && p->n_ctx > 0, err));

  ls_ctx *c = calloc(1, sizeof *c);
  if (!c) return ls_err_set(err, LS_ENOMEM, "out of memory for the inference context");
  c->m = m;
  c->k = ls_kernels_get();
  c->n_ctx = d.n_ctx;
  c->max_batch = d.max_batch;
  c->n_threads = d.n_threads;
  c->n_seq = d.n_seq;
  c->q_dim = cfg->n_heads * cfg->head_dim;
  c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
  /* The logits buffer is the one that scales with the vocabulary (65 MB for
   * 512 x 32000): hold at most LOGITS_BYTES of them, and never fewer than
   * LOGITS_MIN_ROWS rows, so peak memory stays near model + KV cache. */
  c->logits_rows = (int)(LOGITS_BYTES / (sizeof(float) * (size_t)cfg->vocab_size));
  if (c->logits_rows < LOGITS_MIN_ROWS) c->logits_rows = LOGITS_MIN_ROWS;
  if (c->logits_rows > d.max_batch) c->logits_rows = d.max_batch;
  size_t B = (size_t)d.max_batch,
         kv = (size_t)d.n_seq * (size_t)cfg->n_layers * (size_t)d.n_ctx * (size_t)c->kv_dim;
  c->xa_stride = act_bytes_max(c->k, m);
  int rc = ls_pool_new(d.n_threads, &c->pool, err);
  if (rc) {
    ls_ctx_free(c);
    return rc;
  }
  if (!(c->key_cache = alloc_floats(kv, err)) || !(c->value_cache = alloc_floats(kv, err)) ||
      !(c->x = alloc_floats(B * cfg->dim, err)) || !(c->xb = alloc_floats(B * cfg->dim, err)) ||
      !(c->q = alloc_floats(B * c->q_dim, err)) ||
      !(c->att_out = alloc_floats(B * c->q_dim, err)) || !(c->hb = alloc_floats(B * cfg->hidden_dim, err)) ||
      !(c->up = alloc_floats((size_t)d.n_threads * B * CHUNK_ROWS, err)) ||
      !(c->logits = alloc_floats((size_t)c->logits_rows * (size_t)cfg->vocab_size, err)) ||
      !(c->xa = alloc_floats(((size_t)xa_slots(c->k, m) * B * c->xa_stride + 3) / 4, err)) ||
      !(c->att = alloc_floats((size_t)d.n_threads * LS_ATTN_ROWS * d.n_ctx, err)) ||
      !(c->att_block = alloc_floats(B + 1, err)) ||
      !(c->cos_tmp = (double *)alloc_floats(2 * B, err)) || !(c->kbuf = alloc_floats(B * c->kv_dim, err)) ||
      !(c->vbuf = alloc_floats(B * c->kv_dim, err)) || !(c->kv_len = alloc_floats((size_t)d.n_seq, err)) ||
      !(c->seq_last = alloc_floats((size_t)d.n_seq, err)) || !(c->out_rows = alloc_floats(B, err)) ||
      !(c->slot_tok = alloc_floats((size_t)d.n_seq * d.n_ctx, err)) ||
      !(c->slot_mask = alloc_floats(((size_t)d.n_seq * d.n_ctx + 3) / 4, err)) ||
      !(c->slot_held = alloc_floats(((size_t)d.n_seq * d.n_ctx + 3) / 4, err)) ||
      !(c->masks = alloc_floats(((size_t)MAX_MASKS * cfg->n_layers + 3) / 4, err)) ||
      ls_batch_init(&c->own, d.max_batch, err)) {
    ls_ctx_free(c);
    return err ? err->code : LS_ENOMEM;
  }
  *out = c;
  return LS_OK;
}

void ls_ctx_free(ls_ctx *c) {
  if (!c) return;
  ls_pool_free(c->pool);
  free(c->key_cache);
  free(c->value_cache);
  free(c->x);
  free(c->xb);
  free(c->q);
  free(c->att_out);
  free(c->hb);
  free(c->up);
  free(c->logits);
  free(c->xa);
  free(c->att);
  free(c->att_block);
  free(c->cos_tmp);
  free(c->kbuf);
  free(c->vbuf);
  free(c->kv_len);
  free(c->seq_last);
  free(c->out_rows);
  free(c->slot_tok);
  free(c->slot_mask);
  free(c->slot_held);
  free(c->masks);
  ls_batch_free(&c->own);
  free(c);
}

const float *ls_ctx_logits(const ls_ctx *c) { return c->logits; }
void ls_ctx_set_stats(ls_ctx *c, ls_sublayer_stats *stats) { c->stats = stats; }
int ls_ctx_n_ctx(const ls_ctx *c) { return c->n_ctx; }
int ls_ctx_max_batch(const ls_ctx *c) { return c->max_batch; }
int ls_ctx_max_logits(const ls_ctx *c) { return c->logits_rows; }
size_t ls_ctx_kv_bytes(const ls_ctx *c) {
  return 2 * sizeof(float) * (size_t)c->n_seq * (size_t)c->m->cfg.n_layers * (size_t)c->n_ctx * (size_t)c->kv_dim;
}
int ls_ctx_n_seq(const ls_ctx *c) { return c->n_seq; }
int ls_ctx_n_outputs(const ls_ctx *c) { return c->n_out; }
const float *ls_ctx_logits_ith(const ls_ctx *c, int i) {
  return c->logits + (size_t)i * (size_t)c->m->cfg.vocab_size;
}
int ls_ctx_n_threads(const ls_ctx *c) { return c->n_threads; }
const ls_model *ls_ctx_model(const ls_ctx *c) { return c->m; }
const char *ls_ctx_kernels(const ls_ctx *c) { return c->k->name; }
const char *ls_ctx_kernel_streams(const ls_ctx *c) { return c->k->streams ? c->k->streams : "-"; }

/* ---- parallel jobs ------------------------------------------------------- */

/* Up to three matrices applied to the same input. With swiglu, parts 0 (gate)
 * and 1 (up) are computed chunk by chunk together and part 0's output becomes
 * silu(gate) * up; up goes to the running thread's chunk scratch (part 1's y
 * is that scratch: [n_threads][n][CHUNK_ROWS]), so no [batch][hidden]
 * buffer is needed for it. */
typedef struct mm_part {
  const ls_mat *w;
  float *y;
  int64_t ldy;
} mm_part;

typedef struct mm_job {
  const ls_kernels *k;
  const float *xf; /* [n][cols] f32 input */
  const void *xa[3]; /* each part's prepared input (parts may share one) */
  size_t xa_stride;
  int n;
  int n_parts, swiglu;
  mm_part part[3];
  int chunks[3]; /* chunks per part */
  int n_chunks, n_spans; /* all parts' chunks, in n_spans runs of consecutive chunks */
} mm_job;

static int needs_prep(const ls_kernels *k, const ls_mat *w) { return k->act_bytes(w->type, w->cols) != 0; }

static void mm_one(const mm_job *j, const ls_mat *w, const void *xa, float *y, int64_t ldy, int64_t r0, int64_t r1) {
  int prep = needs_prep(j->k, w);
  j->k->matmul(w, prep ? xa : (const void *)j->xf, prep ? j->xa_stride : (size_t)w->cols * sizeof(float), j->n, y,
               ldy, r0, r1);
}

static void mm_task(void *arg, int task, int thread) {
  mm_job *j = arg;
  int p = 0;
  while (task >= j->chunks[p]) task -= j->chunks[p++];
  const mm_part *q = &j->part[p];
  int64_t r0 = (int64_t)task * CHUNK_ROWS, r1 = r0 + CHUNK_ROWS;
  if (r1 > q->w->rows) r1 = q->w->rows;
  mm_one(j, q->w, j->xa[p], q->y, q->ldy, r0, r1);
  if (!j->swiglu) return;
  /* up rows [r0, r1) as a matrix of their own, written to row 0.. of the scratch */
  ls_mat up = j->part[1].w[0];
  up.data = (const char *)up.data + (size_t)r0 * up.row_bytes;
  up.rows = r1 - r0;
  float *u = j->part[1].y + (size_t)thread * (size_t)j->n * CHUNK_ROWS;
  mm_one(j, &up, j->xa[1], u, CHUNK_ROWS, 0, r1 - r0);
  for (int t = 0; t < j->n; t++) {
    float *g = q->y + (int64_t)t * q->ldy + r0;
    j->k->swiglu(g, g, u + (int64_t)t * CHUNK_ROWS, (int)(r1 - r0));
  }
}

/* One span of chunks (ls_pool_span: why matmuls run in spans), in order. */
static void mm_span_task(void *arg, int span, int thread) {
  mm_job *j = arg;
  int c0, c1;
  ls_pool_span(span, j->n_spans, j->n_chunks, &c0, &c1);
  for (int chunk = c0; chunk < c1; chunk++) mm_task(arg, chunk, thread);
}

typedef struct prep_job {
  const ls_kernels *k;
  uint32_t type;
  const float *x;
  int64_t cols;
  void *xa;
  size_t stride;
} prep_job;

static void prep_task(void *arg, int t, int thread) {
  (void)thread;
  prep_job *j = arg;
  j->k->act_prepare(j->type, j->x + (int64_t)t * j->cols, j->cols, (char *)j->xa + (size_t)t * j->stride);
}

/* y_i = W_i x for the parts given (x: [n][cols]). The input is prepared
 * once per distinct weight type among the parts (a file may mix types whose
 * prepared activations differ, e.g. Q4_0 beside Q5_1: Q8_0 vs Q8_1 blocks),
 * each into its own slot of c->xa (xa_slots() of them, sized at ls_ctx_new). */
static void run_matmuls(ls_ctx *c, const float *x, int n, mm_part *parts, int n_parts, int swiglu) {
  mm_job j = {.k = c->k, .xf = x, .xa_stride = c->xa_stride, .n = n, .n_parts = n_parts, .swiglu = swiglu};
  int n_tasks = 0, slots = 0;
  for (int i = 0; i < n_parts; i++) {
    j.part[i] = parts[i];
    j.chunks[i] = (int)((parts[i].w->rows + CHUNK_ROWS - 1) / CHUNK_ROWS);
    if (!swiglu || i == 0) n_tasks += j.chunks[i];
    if (!needs_prep(c->k, parts[i].w)) continue;
    int same = -1;
    for (int k = 0; k < i && same < 0; k++)
      if (j.xa[k] && parts[k].w->type == parts[i].w->type) same = k;
    if (same >= 0) {
      j.xa[i] = j.xa[same];
      continue;
    }
    void *xa = (char *)c->xa + (size_t)slots++ * (size_t)c->max_batch * c->xa_stride;
    prep_job pj = {c->k, parts[i].w->type, x, parts[i].w->cols, xa, c->xa_stride};
    ls_pool_run(c->pool, prep_task, &pj, n);
    j.xa[i] = xa;
  }
  if (swiglu) j.chunks[1] = 0;
  j.n_chunks = n_tasks;
  j.n_spans = ls_pool_spans(c->pool, n_tasks);
  ls_pool_run(c->pool, mm_span_task, &j, j.n_spans);
}

typedef struct tok_job {
  ls_ctx *c;
  int layer, n;
  const float *norm_w;
  const float *in;
  float *out;
} tok_job;

static void norm_task(void *arg, int t, int thread) {
  (void)thread;
  tok_job *j = arg;
  int dim = j->c->m->cfg.dim;
  j->c->k->rmsnorm(j->out + (int64_t)t * dim, j->in + (int64_t)t * dim, j->norm_w, dim, j->c->m->cfg.norm_eps);
}

/* Output norm of the t-th row that wants logits (gathered into out[t]). */
static void out_norm_task(void *arg, int t, int thread) {
  (void)thread;
  tok_job *j = arg;
  int dim = j->c->m->cfg.dim;
  j->c->k->rmsnorm(j->out + (int64_t)t * dim, j->in + (int64_t)j->c->out_rows[t] * dim, j->norm_w, dim,
                   j->c->m->cfg.norm_eps);
}

/* Offset of (sequence, layer, position 0) in the K or V cache. */
static int64_t kv_base(const ls_ctx *c, int seq, int layer) {
  return ((int64_t)seq * c->m->cfg.n_layers + layer) * c->n_ctx * c->kv_dim;
}

/* Rope for the variants the kernels' rope does not cover: NEOX pairs
 * (x[i], x[i + rope_dim/2]) (qwen2), per-frequency divisors (Llama 3's
 * rope_freqs) and linear position scaling. Angle of pair i: pos * scale *
 * theta^(-2i/rope_dim) / freqs[i]. */
static void rope_ext(float *x, int n_heads, int head_dim, const ls_config *p, const float *freqs, int pos) {
  int half = p->rope_dim / 2;
  float scale = p->rope_freq_scale > 0 ? p->rope_freq_scale : 1.0f;
  for (int i = 0; i < half; i++) {
    float freq = 1.0f / powf(p->rope_theta, (float)(2 * i) / (float)p->rope_dim);
    if (freqs) freq /= freqs[i];
    float angle = (float)pos * scale * freq, fc = cosf(angle), fs = sinf(angle);
    int a = p->rope_neox ? i : 2 * i, b = p->rope_neox ? i + half : 2 * i + 1;
    for (int h = 0; h < n_heads; h++) {
      float *v = x + (int64_t)h * head_dim;
      float v0 = v[a], v1 = v[b];
      v[a] = v0 * fc - v1 * fs;
      v[b] = v0 * fs + v1 * fc;
    }
  }
}

static void add_bias(float *x, const float *b, int n) {
  for (int i = 0; i < n; i++) x[i] += b[i];
}

/* Q/K/V biases (qwen2) and RoPE on row t's q and k (the variant the model
 * needs), then k and v to the row's sequence and position. */
static void rope_task(void *arg, int t, int thread) {
  (void)thread;
  tok_job *j = arg;
  ls_ctx *c = j->c;
  const ls_config *p = &c->m->cfg;
  const ls_layer *L = &c->m->layers[j->layer];
  int pos = c->b->pos[t];
  float *q = c->q + (int64_t)t * c->q_dim, *k = c->kbuf + (int64_t)t * c->kv_dim;
  if (L->bq) {
    add_bias(q, L->bq, c->q_dim);
    add_bias(k, L->bk, c->kv_dim);
    add_bias(c->vbuf + (int64_t)t * c->kv_dim, L->bv, c->kv_dim);
  }
  const float *freqs = c->m->rope_freqs;
  if (p->rope_neox || freqs || (p->rope_freq_scale > 0 && p->rope_freq_scale != 1.0f)) {
    rope_ext(q, p->n_heads, p->head_dim, p, freqs, pos);
    rope_ext(k, p->n_kv_heads, p->head_dim, p, freqs, pos);
  } else {
    c->k->rope(q, p->n_heads, k, p->n_kv_heads, p->head_dim, p->rope_dim, pos, p->rope_theta);
  }
  int64_t at = kv_base(c, c->b->seq[t], j->layer) + (int64_t)pos * c->kv_dim;
  memcpy(c->key_cache + at, k, sizeof(float) * (size_t)c->kv_dim);
  memcpy(c->value_cache + at, c->vbuf + (int64_t)t * c->kv_dim, sizeof(float) * (size_t)c->kv_dim);
}

/* A thread's attention scratch: LS_ATTN_ROWS x n_ctx scores, the same
 * stride for one-row and several-row tasks (rows done alone inside an
 * attn_rows_task must not reach into another thread's rows). */
static float *attn_scratch(ls_ctx *c, int thread) { return c->att + (int64_t)thread * LS_ATTN_ROWS * c->n_ctx; }

/* Row t, head h attends to positions 0..pos of the row's own sequence. */
static void attn_one(ls_ctx *c, int layer, int t, int h, float *scratch) {
  const ls_config *p = &c->m->cfg;
  int kvh = h / (p->n_heads / p->n_kv_heads);
  int64_t base = kv_base(c, c->b->seq[t], layer) + (int64_t)kvh * p->head_dim;
  c->k->attention(c->att_out + (int64_t)t * c->q_dim + (int64_t)h * p->head_dim,
                  c->q + (int64_t)t * c->q_dim + (int64_t)h * p->head_dim, c->key_cache + base,
                  c->value_cache + base, c->kv_dim, c->b->pos[t] + 1, p->head_dim, 1.0f / sqrtf((float)p->head_dim),
                  scratch);
}

static void attn_task(void *arg, int task, int thread) {
  tok_job *j = arg;
  ls_ctx *c = j->c;
  int n_heads = c->m->cfg.n_heads;
  attn_one(c, j->layer, task / n_heads, task % n_heads, attn_scratch(c, thread));
}

/* x += d, returning cos(x before, x after) (one pass: no copy of x). */
static double add_cosine(float *x, const float *d, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; i++) {
    float a = x[i], b = a + d[i];
    x[i] = b;
    ab += (double)a * b;
    aa += (double)a * a;
    bb += (double)b * b;
  }
  if (aa == 0 || bb == 0) return aa == bb ? 1.0 : 0.0;
  double r = ab / sqrt(aa * bb);
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

/* x += xb per token; with stats, records cos(x before, x after) per token. */
static void residual_task(void *arg, int t, int thread) {
  (void)thread;
  tok_job *j = arg;
  ls_ctx *c = j->c;
  int dim = c->m->cfg.dim;
  float *x = c->x + (int64_t)t * dim;
  const float *d = c->xb + (int64_t)t * dim;
  if (c->stats) c->cos_tmp[t] = add_cosine(x, d, dim);
  else
    for (int i = 0; i < dim; i++) x[i] += d[i];
}

static void add_residual(ls_ctx *c, int n, int sublayer) {
  tok_job j = {.c = c, .n = n};
  ls_pool_run(c->pool, residual_task, &j, n);
  ls_sublayer_stats *s = c->stats;
  if (s && sublayer < s->n_sublayers) {
    for (int t = 0; t < n; t++) s->cos_sum[sublayer] += c->cos_tmp[t];
    s->count[sublayer] += n;
  }
}

/* Rows t0 .. t1-1 (one sequence, at most LS_ATTN_ROWS), head h: all rows
 * at once where the kernels take this head size (bit-identical to one row at
 * a time, see kernels.h) and there are at least LS_ATTN_ROWS_MIN of them,
 * otherwise row by row. */
static void attn_rows_task(void *arg, int task, int thread) {
  tok_job *j = arg;
  ls_ctx *c = j->c;
  const ls_config *p = &c->m->cfg;
  int blk = task / p->n_heads, h = task % p->n_heads;
  int t0 = c->att_block[blk], n_q = c->att_block[blk + 1] - t0;
  float *scratch = attn_scratch(c, thread);
  if (n_q < LS_ATTN_ROWS_MIN) {
    for (int r = 0; r < n_q; r++) attn_one(c, j->layer, t0 + r, h, scratch);
    return;
  }
  int kvh = h / (p->n_heads / p->n_kv_heads), n_pos[LS_ATTN_ROWS];
  for (int r = 0; r < n_q; r++) n_pos[r] = c->b->pos[t0 + r] + 1;
  int64_t base = kv_base(c, c->b->seq[t0], j->layer) + (int64_t)kvh * p->head_dim;
  int64_t at = (int64_t)t0 * c->q_dim + (int64_t)h * p->head_dim;
  if (c->k->attention_rows(c->att_out + at, c->q_dim, c->q + at, c->q_dim, n_pos, n_q, c->key_cache + base,
                           c->value_cache + base, c->kv_dim, p->head_dim, 1.0f / sqrtf((float)p->head_dim),
                           scratch))
    return;
  for (int r = 0; r < n_q; r++) attn_one(c, j->layer, t0 + r, h, scratch);
}

/* Splits rows 0..n-1 into runs of consecutive rows of one sequence, at most
 * LS_ATTN_ROWS each (c->att_block); returns the number of runs. */
static int attention_runs(ls_ctx *c, int n) {
  int nb = 0;
  for (int t = 0; t < n; t++)
    if (t == 0 || c->b->seq[t] != c->b->seq[t - 1] || t - c->att_block[nb - 1] == LS_ATTN_ROWS) c->att_block[nb++] = t;
  c->att_block[nb] = n;
  return nb;
}

static void run_attention(ls_ctx *c, tok_job *j, int n) {
  int n_heads = c->m->cfg.n_heads;
  if (c->k->attention_rows && n > 1) ls_pool_run(c->pool, attn_rows_task, j, attention_runs(c, n) * n_heads);
  else ls_pool_run(c->pool, attn_task, j, n * n_heads);
}

static void attention_block(ls_ctx *c, int l, int n) {
  const ls_layer *L = &c->m->layers[l];
  int dim = c->m->cfg.dim;
  tok_job j = {.c = c, .layer = l, .n = n, .norm_w = L->attn_norm, .in = c->x, .out = c->xb};
  ls_pool_run(c->pool, norm_task, &j, n);
  mm_part qkv[3] = {{&L->wq, c->q, c->q_dim}, {&L->wk, c->kbuf, c->kv_dim}, {&L->wv, c->vbuf, c->kv_dim}};
  run_matmuls(c, c->xb, n, qkv, 3, 0);
  ls_pool_run(c->pool, rope_task, &j, n);
  run_attention(c, &j, n);
  mm_part o = {&L->wo, c->xb, dim};
  run_matmuls(c, c->att_out, n, &o, 1, 0);
  add_residual(c, n, 2 * l);
}

static void ffn_block(ls_ctx *c, int l, int n) {
  const ls_layer *L = &c->m->layers[l];
  int dim = c->m->cfg.dim, hidden = c->m->cfg.hidden_dim;
  tok_job j = {.c = c, .layer = l, .n = n, .norm_w = L->ffn_norm, .in = c->x, .out = c->xb};
  ls_pool_run(c->pool, norm_task, &j, n);
  mm_part gu[2] = {{&L->w_gate, c->hb, hidden}, {&L->w_up, c->up, CHUNK_ROWS}};
  run_matmuls(c, c->xb, n, gu, 2, 1);
  mm_part down = {&L->w_down, c->xb, dim};
  run_matmuls(c, c->hb, n, &down, 1, 0);
  add_residual(c, n, 2 * l + 1);
}

/* Checks a batch against the context without changing anything: rows of
 * one sequence come in strictly increasing positions, the first of them at
 * most the sequence's current length (so every position a row attends to is
 * held or written earlier in the same call). With `append` 0 (ls_forward),
 * positions are the caller's business, as they always were. */
static int check_batch(ls_ctx *c, const ls_batch *b, int append, int *n_out, ls_err *err) {
  const ls_config *p = &c->m->cfg;
  if (b->n_tokens < 1 || b->n_tokens > c->max_batch)
    return ls_err_set(err, LS_EINVAL, "forward: %d tokens in one call (1..%d allowed)", b->n_tokens, c->max_batch);
  for (int s = 0; s < c->n_seq; s++) c->seq_last[s] = -1;
  *n_out = 0;
  for (int t = 0; t < b->n_tokens; t++) {
    int s = b->seq[t], pos = b->pos[t];
    if (b->token[t] < 0 || b->token[t] >= p->vocab_size)
      return ls_err_set(err, LS_EINVAL, "forward: token id %d at batch index %d is outside the vocabulary (0..%d)",
                        b->token[t], t, p->vocab_size - 1);
    if (s < 0 || s >= c->n_seq)
      return ls_err_set(err, LS_EINVAL, "forward: batch index %d names sequence %d (the context has %d)", t, s,
                        c->n_seq);
    if (pos < 0 || pos >= c->n_ctx)
      return ls_err_set(err, LS_EINVAL, "forward: position %d at batch index %d exceeds the context length %d", pos,
                        t, c->n_ctx);
    int last = c->seq_last[s], next = last >= 0 ? last + 1 : c->kv_len[s];
    if (last >= 0 ? pos != next : append && pos > next)
      return ls_err_set(err, LS_EINVAL, "forward: batch index %d puts sequence %d at position %d, expected %s%d", t,
                        s, pos, last >= 0 ? "" : "at most ", next);
    c->seq_last[s] = pos;
    *n_out += b->logits[t] != 0;
  }
  if (*n_out > c->logits_rows)
    return ls_err_set(err, LS_EINVAL, "forward: %d tokens with all logits in one call (at most %d, ls_ctx_max_logits)",
                      *n_out, c->logits_rows);
  return LS_OK;
}

static int mask_is(const ls_ctx *c, int id, const uint8_t *skip) {
  const uint8_t *m = c->masks + (size_t)id * c->m->cfg.n_layers;
  for (int l = 0; l < c->m->cfg.n_layers; l++)
    if (m[l] != (skip ? skip[l] : 0)) return 0;
  return 1;
}

/* The tag of a mask, added to the table if new (a full table is emptied and
 * every held position forgets its mask: it is then never reused). */
static int mask_id(ls_ctx *c, const uint8_t *skip) {
  int L = c->m->cfg.n_layers;
  for (int i = 0; i < c->n_masks; i++)
    if (mask_is(c, i, skip)) return i;
  if (c->n_masks == MAX_MASKS) {
    memset(c->slot_mask, NO_MASK, (size_t)c->n_seq * c->n_ctx);
    c->n_masks = 0;
  }
  uint8_t *m = c->masks + (size_t)c->n_masks * L;
  if (skip) memcpy(m, skip, (size_t)L);
  else memset(m, 0, (size_t)L);
  return c->n_masks++;
}

static int run_batch(ls_ctx *c, const ls_batch *b, const uint8_t *skip, int append, ls_err *err) {
  const ls_model *m = c->m;
  const ls_config *p = &m->cfg;
  int n = b->n_tokens, n_out;
  LS_TRY(check_batch(c, b, append, &n_out, err));
  uint8_t id = (uint8_t)mask_id(c, skip);
  for (int t = 0; t < n; t++) {
    size_t at = (size_t)b->seq[t] * c->n_ctx + (size_t)b->pos[t];
    c->kv_len[b->seq[t]] = b->pos[t] + 1;
    c->slot_tok[at] = b->token[t];
    c->slot_mask[at] = id;
    c->slot_held[at] = 0;
  }
  c->b = b;
  for (int t = 0; t < n; t++)
    ls_dequantize_row(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)b->token[t] * m->tok_embd.row_bytes,
                      c->x + (int64_t)t * p->dim, p->dim);
  for (int l = 0; l < p->n_layers; l++) {
    uint8_t s = skip ? skip[l] : 0;
    if (!(s & LS_SKIP_ATTN)) attention_block(c, l, n);
    if (!(s & LS_SKIP_FFN)) ffn_block(c, l, n);
  }
  /* classifier for the rows that want logits, gathered in batch order */
  c->n_out = 0;
  for (int t = 0; t < n; t++)
    if (b->logits[t]) c->out_rows[c->n_out++] = t;
  c->b = NULL;
  if (!c->n_out) return LS_OK;
  tok_job j = {.c = c, .n = c->n_out, .norm_w = m->out_norm, .in = c->x, .out = c->xb};
  ls_pool_run(c->pool, out_norm_task, &j, c->n_out);
  mm_part out = {&m->output, c->logits, p->vocab_size};
  run_matmuls(c, c->xb, c->n_out, &out, 1, 0);
  return LS_OK;
}

int ls_decode(ls_ctx *c, const ls_batch *b, const uint8_t *skip, ls_err *err) { return run_batch(c, b, skip, 1, err); }

int ls_forward(ls_ctx *c, const int *tokens, int n, int pos, const uint8_t *skip, int all_logits, ls_err *err) {
  if (n < 1 || n > c->max_batch)
    return ls_err_set(err, LS_EINVAL, "forward: %d tokens in one call (1..%d allowed)", n, c->max_batch);
  if (pos < 0 || pos + n > c->n_ctx)
    return ls_err_set(err, LS_EINVAL, "forward: positions %d..%d exceed the context length %d", pos, pos + n - 1,
                      c->n_ctx);
  ls_batch_clear(&c->own);
  for (int t = 0; t < n; t++) ls_batch_add(&c->own, tokens[t], pos + t, 0, all_logits || t == n - 1);
  return run_batch(c, &c->own, skip, 0, err);
}

/* ---- batches and sequences ------------------------------------------------ */

int ls_batch_init(ls_batch *b, int capacity, ls_err *err) {
  memset(b, 0, sizeof *b);
  if (capacity < 1) return ls_err_set(err, LS_EINVAL, "batch capacity %d (at least 1)", capacity);
  b->token = malloc((size_t)capacity * sizeof *b->token);
  b->pos = malloc((size_t)capacity * sizeof *b->pos);
  b->seq = malloc((size_t)capacity * sizeof *b->seq);
  b->logits = malloc((size_t)capacity);
  if (!b->token || !b->pos || !b->seq || !b->logits) {
    ls_batch_free(b);
    return ls_err_set(err, LS_ENOMEM, "out of memory for a batch of %d", capacity);
  }
  b->capacity = capacity;
  return LS_OK;
}

void ls_batch_free(ls_batch *b) {
  free(b->token);
  free(b->pos);
  free(b->seq);
  free(b->logits);
  memset(b, 0, sizeof *b);
}

int ls_batch_add(ls_batch *b, int token, int pos, int seq, int want_logits) {
  if (b->n_tokens >= b->capacity) return -1;
  int i = b->n_tokens++;
  b->token[i] = token;
  b->pos[i] = pos;
  b->seq[i] = seq;
  b->logits[i] = (int8_t)(want_logits != 0);
  return i;
}

int ls_kv_seq_len(const ls_ctx *c, int seq) { return seq >= 0 && seq < c->n_seq ? c->kv_len[seq] : 0; }

void ls_kv_seq_keep(ls_ctx *c, int seq, int n_keep) {
  if (seq < 0 || seq >= c->n_seq) return;
  if (n_keep < 0) n_keep = 0;
  if (c->kv_len[seq] > n_keep) c->kv_len[seq] = n_keep;
}

int ls_kv_seq_hold(ls_ctx *c, int seq, const int *tokens, int from, int to, const uint8_t *skip, ls_err *err) {
  if (seq < 0 || seq >= c->n_seq || from != c->kv_len[seq] || to < from || to > c->n_ctx)
    return ls_err_set(err, LS_EINVAL, "KV hold: positions %d..%d of sequence %d, which holds %d (context %d)", from,
                      to, seq, seq >= 0 && seq < c->n_seq ? c->kv_len[seq] : 0, c->n_ctx);
  uint8_t id = (uint8_t)mask_id(c, skip);
  for (int p = from; p < to; p++) {
    c->slot_tok[(size_t)seq * c->n_ctx + (size_t)p] = tokens[p];
    c->slot_mask[(size_t)seq * c->n_ctx + (size_t)p] = id;
    c->slot_held[(size_t)seq * c->n_ctx + (size_t)p] = 1;
  }
  c->kv_len[seq] = to;
  return LS_OK;
}

void ls_kv_drop_held(ls_ctx *c) {
  for (int s = 0; s < c->n_seq; s++) {
    const uint8_t *held = c->slot_held + (size_t)s * c->n_ctx;
    int p = 0;
    while (p < c->kv_len[s] && !held[p]) p++;
    c->kv_len[s] = p;
  }
}

void ls_kv_clear(ls_ctx *c) {
  for (int s = 0; s < c->n_seq; s++) c->kv_len[s] = 0;
  memset(c->slot_mask, NO_MASK, (size_t)c->n_seq * c->n_ctx);
  c->n_masks = 0;
}

int ls_kv_seq_fork(ls_ctx *c, int dst, int src, int n_pos, ls_err *err) {
  if (dst < 0 || dst >= c->n_seq || src < 0 || src >= c->n_seq)
    return ls_err_set(err, LS_EINVAL, "KV fork: sequence %d -> %d outside 0..%d", src, dst, c->n_seq - 1);
  if (n_pos < 0 || n_pos > c->kv_len[src])
    return ls_err_set(err, LS_EINVAL, "KV fork: %d positions of sequence %d, which holds %d", n_pos, src,
                      c->kv_len[src]);
  if (dst != src) {
    memcpy(c->slot_tok + (size_t)dst * c->n_ctx, c->slot_tok + (size_t)src * c->n_ctx, sizeof(int) * (size_t)n_pos);
    memcpy(c->slot_mask + (size_t)dst * c->n_ctx, c->slot_mask + (size_t)src * c->n_ctx, (size_t)n_pos);
    memcpy(c->slot_held + (size_t)dst * c->n_ctx, c->slot_held + (size_t)src * c->n_ctx, (size_t)n_pos);
    size_t bytes = sizeof(float) * (size_t)n_pos * (size_t)c->kv_dim;
    for (int l = 0; l < c->m->cfg.n_layers; l++) {
      memcpy(c->key_cache + kv_base(c, dst, l), c->key_cache + kv_base(c, src, l), bytes);
      memcpy(c->value_cache + kv_base(c, dst, l), c->value_cache + kv_base(c, src, l), bytes);
    }
  }
  c->kv_len[dst] = n_pos;
  return LS_OK;
}

/* ---- skip masks ---------------------------------------------------------- */

int ls_skip_mask_parse(const char *list, int n_layers, uint8_t *mask, ls_err *err) {
  memset(mask, 0, (size_t)n_layers);
  if (!list) return LS_OK;
  const char *s = list;
  while (*s) {
    const char *e = strchr(s, ',');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    char name[64];
    if (len == 0 || len >= sizeof name)
      return ls_err_set(err, LS_EINVAL, "skip list '%s': %s entry", list, len ? "overlong" : "empty");
    memcpy(name, s, len);
    name[len] = '\0';
    int layer, kind;
    LS_TRY(ls_sublayer_name_parse(name, n_layers, &layer, &kind, err));
    /* as a schedule with a repeated sub-layer is refused, so is a list */
    if (mask[layer] & kind) return ls_err_set(err, LS_EINVAL, "skip list '%s': %s is listed twice", list, name);
    mask[layer] |= (uint8_t)kind;
    s += len;
    if (*s == ',') {
      s++;
      if (!*s) return ls_err_set(err, LS_EINVAL, "skip list '%s': empty entry at the end", list);
    }
  }
  return LS_OK;
}

int ls_skip_mask_executed(const uint8_t *mask, int n_layers) {
  int n = 2 * n_layers;
  if (!mask) return n;
  for (int l = 0; l < n_layers; l++) n -= !!(mask[l] & LS_SKIP_ATTN) + !!(mask[l] & LS_SKIP_FFN);
  return n;
}

int ls_argmax(const float *x, int n) {
  if (n <= 0) return -1;
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

int ls_forward_scored(ls_ctx *c, const int *tokens, int n, int n_prompt, const uint8_t *skip,
                      void (*on_row)(void *user, int pos, const float *logits), void *user, ls_err *err) {
  if (n_prompt < 1 || n_prompt > n + 1)
    return ls_err_set(err, LS_EINVAL, "teacher forcing: prompt length %d outside 1..%d", n_prompt, n + 1);
  if (n > c->n_ctx) return ls_err_set(err, LS_EINVAL, "teacher forcing: %d tokens exceed the context of %d", n, c->n_ctx);
  int vocab = c->m->cfg.vocab_size;
  for (int pos = 0, len; pos < n; pos += len) {
    len = n - pos < c->max_batch ? n - pos : c->max_batch;
    /* the prompt's prefix predicts nothing: full batches without logits, then
     * chunks of at most logits_rows (the logits buffer is bounded) */
    int want = pos + len > n_prompt - 1;
    if (want && pos < n_prompt - 1) len = n_prompt - 1 - pos, want = 0;
    else if (want && len > c->logits_rows) len = c->logits_rows;
    LS_TRY(ls_forward(c, tokens + pos, len, pos, skip, want, err));
    for (int t = 0; want && t < len; t++)
      if (pos + t >= n_prompt - 1) on_row(user, pos + t, c->logits + (int64_t)t * vocab);
  }
  return LS_OK;
}

typedef struct {
  const int *tokens;
  int vocab, n_agree, n_total;
} top1_count;

static void count_top1(void *user, int pos, const float *logits) {
  top1_count *t = user;
  t->n_agree += ls_argmax(logits, t->vocab) == t->tokens[pos + 1];
  t->n_total++;
}

int ls_teacher_forced_top1(ls_ctx *c, const int *tokens, int n, int n_prompt, const uint8_t *skip, int *n_agree,
                           int *n_total, ls_err *err) {
  *n_agree = 0;
  *n_total = 0;
  if (n_prompt < 1 || n_prompt > n)
    return ls_err_set(err, LS_EINVAL, "teacher forcing: prompt length %d outside 1..%d", n_prompt, n);
  top1_count t = {.tokens = tokens, .vocab = c->m->cfg.vocab_size};
  /* the last token is only predicted, never fed */
  LS_TRY(ls_forward_scored(c, tokens, n - 1, n_prompt, skip, count_top1, &t, err));
  *n_agree = t.n_agree;
  *n_total = t.n_total;
  return LS_OK;
}

int ls_kv_mask_serves(const uint8_t *held, const uint8_t *want, int n_layers, int policy) {
  if (policy == LS_KV_RECOMPUTE) return 0;
  for (int l = 0; l < n_layers; l++) {
    uint8_t h = held ? held[l] : 0, w = want ? want[l] : 0;
    if (policy == LS_KV_REUSE ? h != w : !(w & LS_SKIP_ATTN) && (h & LS_SKIP_ATTN))
      return 0; /* reuse: another mask; shared-prefix: a K/V the call reads is missing */
  }
  return 1;
}

/* Can a position computed under mask `id` serve a call under `skip`? */
static int mask_serves(const ls_ctx *c, int id, const uint8_t *skip, int policy) {
  if (id == NO_MASK) return 0;
  return ls_kv_mask_serves(c->masks + (size_t)id * c->m->cfg.n_layers, skip, c->m->cfg.n_layers, policy);
}

int ls_kv_seq_reusable(const ls_ctx *c, int seq, const int *tokens, int n, const uint8_t *skip, int policy) {
  if (seq < 0 || seq >= c->n_seq || policy == LS_KV_RECOMPUTE) return 0;
  if (n > c->kv_len[seq]) n = c->kv_len[seq];
  const int *tok = c->slot_tok + (size_t)seq * c->n_ctx;
  const uint8_t *tag = c->slot_mask + (size_t)seq * c->n_ctx;
  int ok[MAX_MASKS + 1] = {0}; /* per tag: -1 no, 1 yes, 0 not asked yet */
  int p = 0;
  for (; p < n && tok[p] == tokens[p]; p++) {
    int id = tag[p] == NO_MASK ? MAX_MASKS : tag[p];
    if (!ok[id]) ok[id] = mask_serves(c, tag[p], skip, policy) ? 1 : -1;
    if (ok[id] < 0) break;
  }
  return p;
}

const char *ls_kernel_level_name(void) { return ls_kernels_get()->name; }
