/* Engine benchmark: decode (64 tokens after a 16-token prompt) and prefill
 * (256 tokens) for stories260K and for a TinyLlama-1.1B-shape model (dim 2048,
 * 22 layers, 32 heads, 4 KV heads, FFN 5632, vocab 32000) built in memory
 * with random weights of a given type (default Q8_0; no 1.2 GB file needed).
 *
 * Prints one machine-readable row per case, tab-separated key=value:
 *   bench=engine what=decode|prefill model= type= threads= tokens= tok_s=
 *   ms_tok= gb_s= peak_rss_mb= kernels= streams= reps=
 * tok_s is the best of `reps` runs. gb_s = weight bytes streamed per forward
 * call (all matrices except the embedding table) x calls / seconds: for
 * decode it is the achieved memory bandwidth.
 *
 * With --model FILE (e.g. written by `litestage-run synth`), that file is
 * loaded through ls_model_load (memory-mapped, as users run it) and
 * benchmarked instead of the in-memory synthetic model. --advise none (the
 * default) loads it as users get it (ls_model_load: weights copied into
 * anonymous huge-page memory where memory allows; LS_WEIGHTS=map keeps the
 * mapping; the row's source= says copy or mmap; anon_huge_mb= is the
 * process's AnonHugePages when the row is printed, i.e. whether the copy got
 * transparent huge pages; thp= is only the synthetic model's madvise); copy
 * forces the copy; the others keep the mapping and apply that madvise() to
 * it.
 *
 * Memory: rss_bound_mb = model bytes (the file, or the synthetic arena) + KV
 * cache + 64 MiB, the limit for peak_rss_mb.
 *
 * usage: bench_engine [--stories PATH] [--only stories|tinyllama] [--threads 1,2]
 *                     [--type q8_0|q4_0|q4_k|f16] [--reps N] [--decode N] [--prompt N] [--prefill N] [--no-thp]
 *                     [--model FILE] [--advise none|willneed|hugepage|sequential|populate|copy]
 *                     [--what decode,prefill,step] [--steps 1,2,4,8,16,32]
 * --what step: the cost of one forward call with N tokens (rows of a batch)
 * for each N of --steps, against the 1-row call (what=step rows= x_1row=). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "ls_forward.h"
#include "ls_kquants.h"
#include "ls_model.h"
#include "ls_util.h"

static int use_thp = 1; /* advise huge pages for the synthetic model */
static const char *advise = "none"; /* madvise for a --model file's mapping */
static size_t model_bytes; /* file size, or the synthetic arena's size */

typedef struct opts {
  const char *stories, *only, *model;
  int threads[8], n_threads;
  uint32_t type;
  int reps, n_decode, n_prompt, n_prefill;
  int what; /* WHAT_* bits */
  int steps[16], n_steps; /* rows per step for WHAT_STEP */
} opts;

enum { WHAT_DECODE = 1, WHAT_PREFILL = 2, WHAT_STEP = 4 };

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

/* CPU time of the whole process (all threads), ms: on a shared machine the
 * wall clock includes other people's work, CPU time mostly does not. */
static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t streamed_bytes(const ls_model *m) {
  size_t b = m->output.row_bytes * (size_t)m->output.rows;
  for (int l = 0; l < m->cfg.n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    const ls_mat *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (int i = 0; i < 7; i++) b += ws[i]->row_bytes * (size_t)ws[i]->rows;
  }
  return b;
}

/* The process's anonymous memory in transparent huge pages, MiB (-1 if
 * unknown): whether the weights copy (or the synthetic arena) got them. */
static double anon_huge_mb(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (!f) return -1;
  char line[256];
  unsigned long long kb = 0;
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "AnonHugePages: %llu kB", &kb) == 1;
  fclose(f);
  return found ? kb / 1024.0 : -1;
}

static void row(const char *what, const ls_model *m, const char *type, int threads, int tokens, double best_ms,
                double best_cpu_ms, int calls, const ls_ctx *c, int reps) {
  double s = best_ms / 1000.0;
  printf("bench=engine\twhat=%s\tmodel=%s\ttype=%s\tthreads=%d\ttokens=%d\ttok_s=%.1f\tms_tok=%.4f\tgb_s=%.2f\t"
         "peak_rss_mb=%.1f\trss_bound_mb=%.1f\tkernels=%s\tstreams=%s\treps=%d\tcpu_ms_tok=%.4f\tload=%.2f\tthp=%d\tsource=%s\t"
         "anon_huge_mb=%.0f\n",
         what, m->name, type, threads, tokens, tokens / s, best_ms / tokens,
         (double)streamed_bytes(m) * calls / s / 1e9, peak_rss_mb(),
         (double)(model_bytes + ls_ctx_kv_bytes(c) + ((size_t)64 << 20)) / (1 << 20), ls_ctx_kernels(c), ls_ctx_kernel_streams(c), reps,
         best_cpu_ms / tokens, ls_load_avg(), m->format == 0 ? use_thp : 0,
         m->format == 0 ? "memory" : m->weights_copied ? "copy" : m->map ? "mmap" : "file", anon_huge_mb());
  fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The small-batch cost: one forward call of N tokens (rows of the batch) at
 * position n_prompt, best and median of max(reps, 5) calls, for each N in
 * o->steps; x_1row is the ratio to the 1-row step of the same run (the
 * issue's target: 4 rows <= 1.3x 1 row, since the weights are read once). */
static int bench_steps(ls_ctx *c, const ls_model *m, const char *type, int th, const int *toks, const opts *o,
                       ls_err *err) {
  int reps = o->reps < 5 ? 5 : o->reps;
  double ms[64], one = 0;
  LS_TRY(ls_forward(c, toks, o->n_prompt, 0, NULL, 0, err));
  for (int si = 0; si < o->n_steps; si++) {
    int n = o->steps[si];
    for (int r = 0; r < reps && r < 64; r++) {
      double t0 = ls_now_ms();
      LS_TRY(ls_forward(c, toks + o->n_prompt, n, o->n_prompt, NULL, 0, err));
      ms[r] = ls_now_ms() - t0;
    }
    int k = reps < 64 ? reps : 64;
    qsort(ms, (size_t)k, sizeof *ms, cmp_double);
    if (n == 1) one = ms[k / 2];
    printf("bench=engine\twhat=step\tmodel=%s\ttype=%s\tthreads=%d\trows=%d\tms_step=%.3f\tms_step_best=%.3f\t"
           "x_1row=%.3f\tkernels=%s\tstreams=%s\treps=%d\tload=%.2f\n",
           m->name, type, th, n, ms[k / 2], ms[0], one > 0 ? ms[k / 2] / one : 0.0, ls_ctx_kernels(c),
           ls_ctx_kernel_streams(c), k, ls_load_avg());
    fflush(stdout);
  }
  return LS_OK;
}

static int bench_model(const ls_model *m, const char *type, const opts *o, ls_err *err) {
  int vocab = m->cfg.vocab_size;
  int *toks = malloc(sizeof(int) * (o->n_prefill + o->n_prompt + o->n_decode + 1));
  for (int i = 0; i < o->n_prefill + o->n_prompt + o->n_decode + 1; i++) toks[i] = 1 + (i * 7919) % (vocab - 1);
  for (int ti = 0; ti < o->n_threads; ti++) {
    int th = o->threads[ti];
    int n_ctx = o->n_prefill > o->n_prompt + o->n_decode ? o->n_prefill : o->n_prompt + o->n_decode;
    int max_batch = o->n_prefill > o->n_prompt ? o->n_prefill : o->n_prompt;
    for (int i = 0; i < o->n_steps; i++) {
      if (o->steps[i] > max_batch) max_batch = o->steps[i];
      if (o->n_prompt + o->steps[i] > n_ctx) n_ctx = o->n_prompt + o->steps[i];
    }
    if (max_batch > n_ctx) n_ctx = max_batch;
    ls_ctx_params p = {.n_ctx = n_ctx, .max_batch = max_batch, .n_threads = th};
    ls_ctx *c;
    LS_TRY(ls_ctx_new(m, &p, &c, err));
    /* decode: prompt in one call, then token by token (greedy) */
    double best = 1e300, best_cpu = 1e300;
    for (int r = 0; r < o->reps && (o->what & WHAT_DECODE); r++) {
      int rc = ls_forward(c, toks, o->n_prompt, 0, NULL, 0, err);
      if (rc) { ls_ctx_free(c); return rc; }
      int tok = ls_argmax(ls_ctx_logits(c), vocab);
      double t0 = ls_now_ms(), c0 = cpu_ms();
      for (int i = 0; i < o->n_decode; i++) {
        rc = ls_forward(c, &tok, 1, o->n_prompt + i, NULL, 0, err);
        if (rc) { ls_ctx_free(c); return rc; }
        tok = ls_argmax(ls_ctx_logits(c), vocab);
      }
      double ms = ls_now_ms() - t0, cms = cpu_ms() - c0;
      if (ms < best) best = ms;
      if (cms < best_cpu) best_cpu = cms;
    }
    if (o->what & WHAT_DECODE) row("decode", m, type, th, o->n_decode, best, best_cpu, o->n_decode, c, o->reps);
    best = best_cpu = 1e300;
    for (int r = 0; r < o->reps && (o->what & WHAT_PREFILL); r++) {
      double t0 = ls_now_ms(), c0 = cpu_ms();
      int rc = ls_forward(c, toks, o->n_prefill, 0, NULL, 0, err);
      if (rc) { ls_ctx_free(c); return rc; }
      double ms = ls_now_ms() - t0, cms = cpu_ms() - c0;
      if (ms < best) best = ms;
      if (cms < best_cpu) best_cpu = cms;
    }
    if (o->what & WHAT_PREFILL) row("prefill", m, type, th, o->n_prefill, best, best_cpu, 1, c, o->reps);
    if ((o->what & WHAT_STEP) && bench_steps(c, m, type, th, toks, o, err)) {
      ls_ctx_free(c);
      free(toks);
      return err->code;
    }
    ls_ctx_free(c);
  }
  free(toks);
  return LS_OK;
}

/* ---- an in-memory random model of TinyLlama's shape ---------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next64(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* All weights live in one 2 MiB-aligned arena advised for transparent huge
 * pages (this kernel's THP mode is "madvise"): with 4 KiB pages, streaming
 * 1.2 GB per token misses the TLB constantly. --no-thp measures without. */
static uint8_t *arena;
static size_t arena_size, arena_used;

static int arena_new(ls_model *m, size_t bytes, ls_err *err) {
  arena_size = (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
  model_bytes = arena_size;
  arena = aligned_alloc(2u << 20, arena_size);
  if (!arena) return ls_err_set(err, LS_ENOMEM, "synthetic model: out of memory for %zu bytes", bytes);
  if (use_thp) madvise(arena, arena_size, MADV_HUGEPAGE);
  arena_used = 0;
  return ls_model_own(m, arena, err);
}

static uint8_t *arena_take(size_t bytes) {
  size_t need = (bytes + 63) / 64 * 64;
  if (arena_used + need > arena_size) return NULL;
  uint8_t *p = arena + arena_used;
  arena_used += need;
  return p;
}

static int fill_mat(ls_mat *w, uint32_t type, int64_t rows, int64_t cols, ls_err *err) {
  w->type = type;
  w->rows = rows;
  w->cols = cols;
  w->row_bytes = ls_dtype_row_bytes(type, cols);
  size_t bytes = w->row_bytes * (size_t)rows;
  uint8_t *d = arena_take(bytes);
  if (!d) return ls_err_set(err, LS_ENOMEM, "synthetic model: out of memory for %zu bytes", bytes);
  w->data = d;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t v = next64();
    memcpy(d + i, &v, 8);
  }
  /* sane scales: weights of standard deviation ~0.02 */
  if (type == LS_Q8_0) {
    ls_block_q8_0 *b = (ls_block_q8_0 *)d;
    for (size_t i = 0; i < bytes / sizeof *b; i++) b[i].d = ls_fp32_to_fp16(0.02f / 73.0f);
  } else if (type == LS_Q4_0) {
    ls_block_q4_0 *b = (ls_block_q4_0 *)d;
    for (size_t i = 0; i < bytes / sizeof *b; i++) b[i].d = ls_fp32_to_fp16(0.02f / 4.6f);
  } else if (type == LS_Q4_K) { /* 6-bit scales ~31, q ~7.5: d, dmin ~0.02 / 150 */
    ls_block_q4_K *b = (ls_block_q4_K *)d;
    for (size_t i = 0; i < bytes / sizeof *b; i++) b[i].d = b[i].dmin = ls_fp32_to_fp16(0.02f / 150.0f);
  } else if (type == LS_F16) {
    uint16_t *h = (uint16_t *)d;
    for (size_t i = 0; i < bytes / 2; i++) h[i] = ls_fp32_to_fp16(((int)(next64() % 2001) - 1000) * 3.5e-5f);
  }
  return LS_OK;
}

static int synth_tinyllama(ls_model *m, uint32_t type, ls_err *err) {
  memset(m, 0, sizeof *m);
  ls_config *c = &m->cfg;
  *c = (ls_config){.dim = 2048, .hidden_dim = 5632, .n_layers = 22, .n_heads = 32, .n_kv_heads = 4,
                   .head_dim = 64, .vocab_size = 32000, .seq_len = 2048, .rope_dim = 64, .rope_theta = 10000.0f,
                   .norm_eps = 1e-5f};
  snprintf(m->name, sizeof m->name, "tinyllama-shape-random");
  snprintf(m->path, sizeof m->path, "(in memory)");
  m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
  float *ones = malloc(sizeof(float) * c->dim);
  if (!m->layers || !ones) return ls_err_set(err, LS_ENOMEM, "synthetic model: out of memory");
  LS_TRY(ls_model_own(m, ones, err));
  for (int i = 0; i < c->dim; i++) ones[i] = 1.0f;
  int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
  size_t per_layer = ls_dtype_row_bytes(type, c->dim) * (size_t)(2 * q + 2 * kv + 2 * c->hidden_dim) +
                     ls_dtype_row_bytes(type, q) * (size_t)c->dim + ls_dtype_row_bytes(type, c->hidden_dim) * (size_t)c->dim;
  LS_TRY(arena_new(m, per_layer * c->n_layers + 2 * ls_dtype_row_bytes(type, c->dim) * (size_t)c->vocab_size +
                          64 * (7 * c->n_layers + 2), err));
  for (int l = 0; l < c->n_layers; l++) {
    ls_layer *L = &m->layers[l];
    L->attn_norm = L->ffn_norm = ones;
    LS_TRY(fill_mat(&L->wq, type, q, c->dim, err));
    LS_TRY(fill_mat(&L->wk, type, kv, c->dim, err));
    LS_TRY(fill_mat(&L->wv, type, kv, c->dim, err));
    LS_TRY(fill_mat(&L->wo, type, c->dim, q, err));
    LS_TRY(fill_mat(&L->w_gate, type, c->hidden_dim, c->dim, err));
    LS_TRY(fill_mat(&L->w_up, type, c->hidden_dim, c->dim, err));
    LS_TRY(fill_mat(&L->w_down, type, c->dim, c->hidden_dim, err));
  }
  LS_TRY(fill_mat(&m->tok_embd, type, c->vocab_size, c->dim, err));
  LS_TRY(fill_mat(&m->output, type, c->vocab_size, c->dim, err));
  m->out_norm = ones;
  m->weight_bytes = streamed_bytes(m) + m->tok_embd.row_bytes * (size_t)m->tok_embd.rows;
  return LS_OK;
}

/* --advise: what could be done to a file mapping before the first token. */
static int advise_mapping(ls_model *m, ls_err *err) {
  int adv = -1;
  if (!strcmp(advise, "copy")) return ls_model_copy_weights(m, err);
  if (!strcmp(advise, "willneed")) adv = MADV_WILLNEED;
  else if (!strcmp(advise, "hugepage")) adv = MADV_HUGEPAGE;
  else if (!strcmp(advise, "sequential")) adv = MADV_SEQUENTIAL;
  else if (!strcmp(advise, "populate")) {
#ifdef MADV_POPULATE_READ
    adv = MADV_POPULATE_READ;
#else
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < m->map_size; i += 4096) sink ^= ((const uint8_t *)m->map)[i];
    (void)sink;
#endif
  }
  if (adv >= 0 && madvise(m->map, m->map_size, adv) != 0)
    return ls_err_set(err, LS_EIO, "%s: madvise(%s) failed", m->path, advise);
  return LS_OK;
}

static int parse_args(opts *o, int argc, char **argv, ls_err *err) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--no-thp")) {
      use_thp = 0;
      continue;
    }
    if (!v) return ls_err_set(err, LS_EINVAL, "%s: missing value", a);
    i++;
    if (!strcmp(a, "--stories")) o->stories = v;
    else if (!strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "--advise")) {
      if (strcmp(v, "none") && strcmp(v, "willneed") && strcmp(v, "hugepage") && strcmp(v, "sequential") &&
          strcmp(v, "populate") && strcmp(v, "copy"))
        return ls_err_set(err, LS_EINVAL, "--advise %s: expected none, willneed, hugepage, sequential, populate or copy", v);
      advise = v;
    }
    else if (!strcmp(a, "--only")) o->only = v;
    else if (!strcmp(a, "--reps")) o->reps = atoi(v);
    else if (!strcmp(a, "--decode")) o->n_decode = atoi(v);
    else if (!strcmp(a, "--prompt")) o->n_prompt = atoi(v);
    else if (!strcmp(a, "--prefill")) o->n_prefill = atoi(v);
    else if (!strcmp(a, "--type")) {
      LS_TRY(ls_dtype_arg(a, v, &o->type, err));
    } else if (!strcmp(a, "--what")) {
      o->what = 0;
      if (strstr(v, "decode")) o->what |= WHAT_DECODE;
      if (strstr(v, "prefill")) o->what |= WHAT_PREFILL;
      if (strstr(v, "step")) o->what |= WHAT_STEP;
      if (!o->what) return ls_err_set(err, LS_EINVAL, "--what %s: expected a list of decode, prefill, step", v);
    } else if (!strcmp(a, "--steps")) {
      o->n_steps = 0;
      for (const char *s = v; s && *s && o->n_steps < 16; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) {
        int n = atoi(s);
        if (n < 1 || n > 512) return ls_err_set(err, LS_EINVAL, "--steps %s: each 1..512", v);
        o->steps[o->n_steps++] = n;
      }
    } else if (!strcmp(a, "--threads")) {
      o->n_threads = 0;
      for (const char *s = v; *s && o->n_threads < 8;) {
        o->threads[o->n_threads++] = atoi(s);
        s = strchr(s, ',');
        if (!s) break;
        s++;
      }
    } else return ls_err_set(err, LS_EINVAL, "%s: unknown option", a);
  }
  if (!(o->what & WHAT_STEP)) o->n_steps = 0;
  if (o->reps < 1 || o->n_decode < 1 || o->n_prompt < 1 || o->n_prefill < 1)
    return ls_err_set(err, LS_EINVAL, "--reps, --decode, --prompt and --prefill must be positive");
  return LS_OK;
}

int main(int argc, char **argv) {
  static char stories[2048];
  const char *dd = getenv("LS_DATA_DIR");
  snprintf(stories, sizeof stories, "%s/models/stories260K/stories260K.bin", dd ? dd : "data");
  opts o = {.stories = stories, .only = NULL, .threads = {1, 2}, .n_threads = 2, .type = LS_Q8_0, .reps = 3,
            .n_decode = 64, .n_prompt = 16, .n_prefill = 256, .what = WHAT_DECODE | WHAT_PREFILL,
            .steps = {1, 2, 4, 8, 16, 32}, .n_steps = 6};
  ls_err err = {0};
  if (parse_args(&o, argc, argv, &err)) {
    fprintf(stderr, "bench_engine: %s\n", err.msg);
    return 2;
  }
  if (!o.only || !strcmp(o.only, "stories")) {
    ls_model m;
    opts so = o;
    so.threads[0] = 1;
    so.n_threads = 1;
    so.reps = o.reps < 20 ? 20 : o.reps; /* a run takes milliseconds: take the best of many */
    if (ls_model_load(&m, o.stories, NULL, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    model_bytes = m.file_size;
    if (bench_model(&m, "F32", &so, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    ls_model_free(&m);
  }
  if (o.model && (!o.only || !strcmp(o.only, "tinyllama"))) {
    ls_model m;
    /* none: what users get (ls_model_load's automatic placement: a huge-page
     * copy where memory allows, LS_WEIGHTS=map keeps the mapping); any other
     * advice is about the mapping itself, so it is kept */
    ls_weights_place place = !strcmp(advise, "none") ? LS_WEIGHTS_AUTO : LS_WEIGHTS_MAP;
    if (ls_model_load_placed(&m, o.model, NULL, place, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    model_bytes = m.file_size;
    if (m.map && advise_mapping(&m, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    if (bench_model(&m, ls_dtype_name(m.layers[0].wq.type), &o, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    ls_model_free(&m);
  } else if (!o.only || !strcmp(o.only, "tinyllama")) {
    ls_model m;
    if (synth_tinyllama(&m, o.type, &err) || bench_model(&m, ls_dtype_name(o.type), &o, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    ls_model_free(&m);
  }
  return 0;
}
