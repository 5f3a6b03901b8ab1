/* The forward pass over a batch of tokens (prefill) or one token (decode).
 *
 * Work is split across the pool by output rows (matmuls, in chunks of a fixed
 * CHUNK_ROWS rows), by (token, head) (attention) or by token (norms, RoPE,
 * activation quantisation). A chunk's size never depends on the thread count
 * and every output element is computed by one thread with a fixed reduction
 * order, so the logits are bit-identical for any number of threads.
 *
 * KV cache: f32, [n_layers][n_ctx][kv_dim] for K and for V (llama2.c's layout).
 * K/V rows of a batch are written straight into the cache by the wk/wv
 * matmuls. f32 rather than f16: decode reads the whole weight set (1.2 GB
 * for TinyLlama Q8_0) per token against a few MB of cache, so halving the
 * cache buys nothing measurable and would cost accuracy and conversions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ls_forward.h"
#include "ls_schedule.h"
#include "ls_pool.h"

#define CHUNK_ROWS 32
/* Bound on the logits buffer (see ls_ctx_new). */
#define LOGITS_BYTES ((size_t)8 << 20)
#define LOGITS_MIN_ROWS 16

struct ls_ctx {
  const ls_model *m;
  const ls_kernels *k;
  ls_pool *pool;
  int n_ctx, max_batch, n_threads;
  int q_dim, kv_dim;

  float *key_cache;   /* [n_layers][n_ctx][kv_dim] */
  float *value_cache; /* [n_layers][n_ctx][kv_dim] */
  float *x;           /* [max_batch][dim] residual stream */
  float *xb;          /* [max_batch][dim] normed input / sub-layer output */
  float *q;           /* [max_batch][q_dim] */
  float *att_out;     /* [max_batch][q_dim] */
  float *hb;          /* [max_batch][hidden_dim] gate, then silu(gate) * up */
  float *up;          /* [n_threads][max_batch][CHUNK_ROWS] one chunk of up, per thread */
  float *logits;      /* [logits_rows][vocab] */
  int logits_rows;    /* most tokens with logits per call (bounds the buffer) */
  void *xa;           /* prepared (quantised) activations, [max_batch][xa_stride] */
  size_t xa_stride;   /* bytes per token of xa */
  float *att;         /* [n_threads][n_ctx] attention scores */
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
  if (d.n_ctx > (1 << 22)) return ls_err_set(err, LS_EINVAL, "context length %d is absurd", d.n_ctx);

  ls_ctx *c = calloc(1, sizeof *c);
  if (!c) return ls_err_set(err, LS_ENOMEM, "out of memory for the inference context");
  c->m = m;
  c->k = ls_kernels_get();
  c->n_ctx = d.n_ctx;
  c->max_batch = d.max_batch;
  c->n_threads = d.n_threads;
  c->q_dim = cfg->n_heads * cfg->head_dim;
  c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
  /* The logits buffer is the one that scales with the vocabulary (65 MB for
   * 512 x 32000): hold at most LOGITS_BYTES of them, and never fewer than
   * LOGITS_MIN_ROWS rows, so peak memory stays near model + KV cache. */
  c->logits_rows = (int)(LOGITS_BYTES / (sizeof(float) * (size_t)cfg->vocab_size));
  if (c->logits_rows < LOGITS_MIN_ROWS) c->logits_rows = LOGITS_MIN_ROWS;
  if (c->logits_rows > d.max_batch) c->logits_rows = d.max_batch;
  size_t B = (size_t)d.max_batch, kv = (size_t)cfg->n_layers * (size_t)d.n_ctx * (size_t)c->kv_dim;
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
      !(c->xa = alloc_floats((B * c->xa_stride + 3) / 4, err)) ||
      !(c->att = alloc_floats((size_t)d.n_threads * d.n_ctx, err)) ||
      !(c->cos_tmp = (double *)alloc_floats(2 * B, err))) {
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
  free(c->cos_tmp);
  free(c);
}

const float *ls_ctx_logits(const ls_ctx *c) { return c->logits; }
void ls_ctx_set_stats(ls_ctx *c, ls_sublayer_stats *stats) { c->stats = stats; }
int ls_ctx_n_ctx(const ls_ctx *c) { return c->n_ctx; }
int ls_ctx_max_batch(const ls_ctx *c) { return c->max_batch; }
int ls_ctx_max_logits(const ls_ctx *c) { return c->logits_rows; }
size_t ls_ctx_kv_bytes(const ls_ctx *c) {
  return 2 * sizeof(float) * (size_t)c->m->cfg.n_layers * (size_t)c->n_ctx * (size_t)c->kv_dim;
}
int ls_ctx_n_threads(const ls_ctx *c) { return c->n_threads; }
const ls_model *ls_ctx_model(const ls_ctx *c) { return c->m; }
const char *ls_ctx_kernels(const ls_ctx *c) { return c->k->name; }

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
  const void *xa;  /* prepared input, stride xa_stride */
  size_t xa_stride;
  int n;
  int n_parts, swiglu;
  mm_part part[3];
  int chunks[3]; /* chunks per part */
} mm_job;

static int needs_prep(const ls_kernels *k, const ls_mat *w) { return k->act_bytes(w->type, w->cols) != 0; }

static void mm_one(const mm_job *j, const ls_mat *w, float *y, int64_t ldy, int64_t r0, int64_t r1) {
  int prep = needs_prep(j->k, w);
  j->k->matmul(w, prep ? j->xa : (const void *)j->xf, prep ? j->xa_stride : (size_t)w->cols * sizeof(float), j->n, y,
               ldy, r0, r1);
}

static void mm_task(void *arg, int task, int thread) {
  mm_job *j = arg;
  int p = 0;
  while (task >= j->chunks[p]) task -= j->chunks[p++];
  const mm_part *q = &j->part[p];
  int64_t r0 = (int64_t)task * CHUNK_ROWS, r1 = r0 + CHUNK_ROWS;
  if (r1 > q->w->rows) r1 = q->w->rows;
  mm_one(j, q->w, q->y, q->ldy, r0, r1);
  if (!j->swiglu) return;
  /* up rows [r0, r1) as a matrix of their own, written to row 0.. of the scratch */
  ls_mat up = j->part[1].w[0];
  up.data = (const char *)up.data + (size_t)r0 * up.row_bytes;
  up.rows = r1 - r0;
  float *u = j->part[1].y + (size_t)thread * (size_t)j->n * CHUNK_ROWS;
  mm_one(j, &up, u, CHUNK_ROWS, 0, r1 - r0);
  for (int t = 0; t < j->n; t++) {
    float *g = q->y + (int64_t)t * q->ldy + r0;
    j->k->swiglu(g, g, u + (int64_t)t * CHUNK_ROWS, (int)(r1 - r0));
  }
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

/* y_i = W_i x for the parts given (x: [n][cols]). */
static void run_matmuls(ls_ctx *c, const float *x, int n, mm_part *parts, int n_parts, int swiglu) {
  mm_job j = {.k = c->k, .xf = x, .xa = c->xa, .xa_stride = c->xa_stride, .n = n, .n_parts = n_parts,
              .swiglu = swiglu};
  int prep = -1, n_tasks = 0;
  for (int i = 0; i < n_parts; i++) {
    j.part[i] = parts[i];
    if (needs_prep(c->k, parts[i].w)) prep = i;
    j.chunks[i] = (int)((parts[i].w->rows + CHUNK_ROWS - 1) / CHUNK_ROWS);
    if (!swiglu || i == 0) n_tasks += j.chunks[i];
  }
  if (swiglu) j.chunks[1] = 0;
  if (prep >= 0) {
    /* Q8_0 and Q4_0 share one prepared layout per level, so once suffices. */
    prep_job pj = {c->k, parts[prep].w->type, x, parts[prep].w->cols, c->xa, c->xa_stride};
    ls_pool_run(c->pool, prep_task, &pj, n);
  }
  ls_pool_run(c->pool, mm_task, &j, n_tasks);
}

typedef struct tok_job {
  ls_ctx *c;
  int layer, pos, n;
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

static void rope_task(void *arg, int t, int thread) {
  (void)thread;
  tok_job *j = arg;
  ls_ctx *c = j->c;
  const ls_config *p = &c->m->cfg;
  float *kc = c->key_cache + ((int64_t)j->layer * c->n_ctx + j->pos + t) * c->kv_dim;
  c->k->rope(c->q + (int64_t)t * c->q_dim, p->n_heads, p->head_dim, p->rope_dim, j->pos + t, p->rope_theta);
  c->k->rope(kc, p->n_kv_heads, p->head_dim, p->rope_dim, j->pos + t, p->rope_theta);
}

static void attn_task(void *arg, int task, int thread) {
  tok_job *j = arg;
  ls_ctx *c = j->c;
  const ls_config *p = &c->m->cfg;
  int t = task / p->n_heads, h = task % p->n_heads;
  int kvh = h / (p->n_heads / p->n_kv_heads);
  int64_t base = (int64_t)j->layer * c->n_ctx * c->kv_dim + (int64_t)kvh * p->head_dim;
  c->k->attention(c->att_out + (int64_t)t * c->q_dim + (int64_t)h * p->head_dim,
                  c->q + (int64_t)t * c->q_dim + (int64_t)h * p->head_dim, c->key_cache + base,
                  c->value_cache + base, c->kv_dim, j->pos + t + 1, p->head_dim, 1.0f / sqrtf((float)p->head_dim),
                  c->att + (int64_t)thread * c->n_ctx);
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

static void attention_block(ls_ctx *c, int l, int n, int pos) {
  const ls_layer *L = &c->m->layers[l];
  int dim = c->m->cfg.dim;
  tok_job j = {.c = c, .layer = l, .pos = pos, .n = n, .norm_w = L->attn_norm, .in = c->x, .out = c->xb};
  ls_pool_run(c->pool, norm_task, &j, n);
  int64_t kv_off = ((int64_t)l * c->n_ctx + pos) * c->kv_dim;
  mm_part qkv[3] = {{&L->wq, c->q, c->q_dim},
                    {&L->wk, c->key_cache + kv_off, c->kv_dim},
                    {&L->wv, c->value_cache + kv_off, c->kv_dim}};
  run_matmuls(c, c->xb, n, qkv, 3, 0);
  ls_pool_run(c->pool, rope_task, &j, n);
  ls_pool_run(c->pool, attn_task, &j, n * c->m->cfg.n_heads);
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

int ls_forward(ls_ctx *c, const int *tokens, int n, int pos, const uint8_t *skip, int all_logits, ls_err *err) {
  const ls_model *m = c->m;
  const ls_config *p = &m->cfg;
  if (n < 1 || n > c->max_batch)
    return ls_err_set(err, LS_EINVAL, "forward: %d tokens in one call (1..%d allowed)", n, c->max_batch);
  if (all_logits && n > c->logits_rows)
    return ls_err_set(err, LS_EINVAL, "forward: %d tokens with all logits in one call (at most %d, ls_ctx_max_logits)",
                      n, c->logits_rows);
  if (pos < 0 || pos + n > c->n_ctx)
    return ls_err_set(err, LS_EINVAL, "forward: positions %d..%d exceed the context length %d", pos, pos + n - 1,
                      c->n_ctx);
  for (int t = 0; t < n; t++)
    if (tokens[t] < 0 || tokens[t] >= p->vocab_size)
      return ls_err_set(err, LS_EINVAL, "forward: token id %d at batch index %d is outside the vocabulary (0..%d)",
                        tokens[t], t, p->vocab_size - 1);
  for (int t = 0; t < n; t++)
    ls_dequantize_row(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                      c->x + (int64_t)t * p->dim, p->dim);
  for (int l = 0; l < p->n_layers; l++) {
    uint8_t s = skip ? skip[l] : 0;
    if (!(s & LS_SKIP_ATTN)) attention_block(c, l, n, pos);
    if (!(s & LS_SKIP_FFN)) ffn_block(c, l, n);
  }
  /* classifier: every token, or only the last */
  int first = all_logits ? 0 : n - 1, n_out = n - first;
  tok_job j = {.c = c, .n = n_out, .norm_w = m->out_norm, .in = c->x + (int64_t)first * p->dim, .out = c->xb};
  ls_pool_run(c->pool, norm_task, &j, n_out);
  mm_part out = {&m->output, c->logits, p->vocab_size};
  run_matmuls(c, c->xb, n_out, &out, 1, 0);
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

int ls_teacher_forced_top1(ls_ctx *c, const int *tokens, int n, int n_prompt, const uint8_t *skip, int *n_agree,
                           int *n_total, ls_err *err) {
  *n_agree = 0;
  *n_total = 0;
  if (n_prompt < 1 || n_prompt > n)
    return ls_err_set(err, LS_EINVAL, "teacher forcing: prompt length %d outside 1..%d", n_prompt, n);
  if (n > c->n_ctx) return ls_err_set(err, LS_EINVAL, "teacher forcing: %d tokens exceed the context %d", n, c->n_ctx);
  int vocab = c->m->cfg.vocab_size;
  for (int pos = 0; pos < n - 1;) {
    int len = n - 1 - pos < c->max_batch ? n - 1 - pos : c->max_batch;
    /* the prompt's prefix predicts nothing: full batches without logits */
    int want = pos + len > n_prompt - 1;
    if (want && pos < n_prompt - 1) len = n_prompt - 1 - pos, want = 0;
    else if (want && len > c->logits_rows) len = c->logits_rows;
    LS_TRY(ls_forward(c, tokens + pos, len, pos, skip, want, err));
    for (int t = 0; want && t < len; t++) {
      int i = pos + t;
      if (i < n_prompt - 1) continue;
      *n_agree += ls_argmax(c->logits + (int64_t)t * vocab, vocab) == tokens[i + 1];
      (*n_total)++;
    }
    pos += len;
  }
  return LS_OK;
}

const char *ls_kernel_level_name(void) { return ls_kernels_get()->name; }
