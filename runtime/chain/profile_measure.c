/* Latency profiles: measurement with the real forward pass (docs/latency.md). */
#include "ls_profile.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_util.h"

/* ---------------------------------------------------------------- measurement */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void read_cpu_model(char *out, size_t cap) {
  snprintf(out, cap, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) != 0) continue;
    char *c = strchr(line, ':');
    if (!c) continue;
    c++;
    while (*c == ' ' || *c == '\t') c++;
    c[strcspn(c, "\n")] = '\0';
    snprintf(out, cap, "%s", c);
    break;
  }
  fclose(f);
}

/* What the measuring run needs: a context, four masks, tokens, scratch. */
typedef struct {
  const ls_model *m;
  ls_ctx *ctx;
  uint8_t *mask[4]; /* MASK_NONE..MASK_FULL; MASK_FULL is NULL (run all) */
  int *tokens;      /* [max(n_ctx, max_batch)] arbitrary valid ids */
  double *t[4];     /* [cap] times per mask */
  int reps;         /* repetitions of the last time_masks() */
  int min_reps, cap;
  int clock;
  volatile int sink; /* keeps the argmax from being optimised away */
  double min_ms;
  double *scratch;  /* [cap] */
  const ls_profile_opts *o;
} meas;

enum { MASK_NONE, MASK_ATTN, MASK_FFN, MASK_FULL }; /* which sub-layers run */

static void progress(const meas *M, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const meas *M, const char *fmt, ...) {
  if (!M->o->progress) return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  M->o->progress(M->o->user, buf);
}

/* Runs tokens[0..n) from position pos in max_batch chunks (fills the KV cache). */
static int run_chunks(meas *M, int n, int pos, const uint8_t *mask, ls_err *err) {
  int mb = ls_ctx_max_batch(M->ctx);
  for (int i = 0; i < n; i += mb) {
    int k = n - i < mb ? n - i : mb;
    LS_TRY(ls_forward(M->ctx, M->tokens + i, k, pos + i, mask, 0, err));
  }
  return LS_OK;
}

/* Times one call of n tokens at pos for each of the masks in `which`, at
 * least o->reps times and for at least o->min_ms of wall time (so that a
 * scheduler hiccup on a busy machine is one sample among many, not the whole
 * window), rotating the order each repetition so that no mask always runs
 * right after another (cache state, frequency drift). Sets M->reps. */
static int time_masks(meas *M, int n, int pos, const int *which, int n_which, ls_err *err) {
  double start = ls_now_ms();
  int r = 0;
  while (r < M->cap && (r < M->min_reps || ls_now_ms() - start < M->min_ms)) {
    for (int j = 0; j < n_which; j++) {
      int k = which[(j + r) % n_which];
      double t0 = ls_clock_ms(M->clock);
      LS_TRY(ls_forward(M->ctx, M->tokens, n, pos, M->mask[k], 0, err));
      /* greedy token choice, as every generation step makes it: lands in the fixed cost */
      M->sink += ls_argmax(ls_ctx_logits(M->ctx), M->m->cfg.vocab_size);
      M->t[k][r] = ls_clock_ms(M->clock) - t0;
    }
    r++;
  }
  M->reps = r;
  return LS_OK;
}

/* Median over repetitions of (t[a] - t[b]) / div: paired differences cancel
 * drift shared by the two calls of one repetition. Clamped at 0 (a sub-layer
 * cheaper than the timer noise costs nothing, see docs/latency.md). */
static double paired(meas *M, int a, int b, double div) {
  double *d = M->scratch;
  for (int r = 0; r < M->reps; r++) d[r] = (M->t[a][r] - M->t[b][r]) / div;
  double x = median(d, M->reps);
  return x > 0 ? x : 0.0;
}

static double med_of(meas *M, int k, double div) {
  double *d = M->scratch;
  for (int r = 0; r < M->reps; r++) d[r] = M->t[k][r] / div;
  return median(d, M->reps);
}

static int default_lists(ls_profile *p, const ls_profile_opts *o, int seq_len, int max_batch, ls_err *err) {
  if (o->n_ctx_list > 0) {
    if (o->n_ctx_list > LS_PROFILE_MAX_POINTS) return ls_err_set(err, LS_EINVAL, "--contexts: at most %d values", LS_PROFILE_MAX_POINTS);
    for (int i = 0; i < o->n_ctx_list; i++) {
      if (o->ctx_list[i] < 1 || o->ctx_list[i] > seq_len)
        return ls_err_set(err, LS_EINVAL, "--contexts: %d is outside 1..%d (the model's context length)", o->ctx_list[i],
                          seq_len);
      if (i > 0 && o->ctx_list[i] <= o->ctx_list[i - 1])
        return ls_err_set(err, LS_EINVAL, "--contexts: values must be strictly increasing");
      p->dec_ctx[i] = o->ctx_list[i];
    }
    p->n_dec = o->n_ctx_list;
  } else {
    /* up to the model's context, capped at 2048 (linear extrapolation beyond) */
    static const int def[] = {16, 64, 256, 1024, 2048};
    int top = seq_len < 2048 ? seq_len : 2048;
    p->n_dec = 0;
    for (size_t i = 0; i < sizeof def / sizeof def[0] && def[i] <= top; i++) p->dec_ctx[p->n_dec++] = def[i];
    if (p->n_dec == 0 || p->dec_ctx[p->n_dec - 1] < top) p->dec_ctx[p->n_dec++] = top;
  }
  if (o->n_batch_list > 0) {
    if (o->n_batch_list > LS_PROFILE_MAX_POINTS) return ls_err_set(err, LS_EINVAL, "--batches: at most %d values", LS_PROFILE_MAX_POINTS);
    for (int i = 0; i < o->n_batch_list; i++) {
      if (o->batch_list[i] < 1 || o->batch_list[i] > max_batch)
        return ls_err_set(err, LS_EINVAL, "--batches: %d is outside 1..%d (the prefill chunk size)", o->batch_list[i],
                          max_batch);
      if (i > 0 && o->batch_list[i] <= o->batch_list[i - 1])
        return ls_err_set(err, LS_EINVAL, "--batches: values must be strictly increasing");
      p->pre_tokens[i] = o->batch_list[i];
    }
    p->n_pre = o->n_batch_list;
  } else {
    static const int def[] = {1, 8, 32, 128, 512};
    p->n_pre = 0;
    for (size_t i = 0; i < sizeof def / sizeof def[0] && def[i] <= max_batch; i++) p->pre_tokens[p->n_pre++] = def[i];
  }
  return LS_OK;
}

static int measure_decode(meas *M, ls_profile *p, ls_err *err) {
  const int L = p->n_layers;
  double ffn[LS_PROFILE_MAX_POINTS], fixed[LS_PROFILE_MAX_POINTS];
  static const int which[] = {MASK_NONE, MASK_ATTN, MASK_FFN, MASK_FULL};
  for (int i = 0; i < p->n_dec; i++) {
    int c = p->dec_ctx[i];
    progress(M, "decode: context %d (%d/%d)", c, i + 1, p->n_dec);
    /* K/V of every layer for positions 0..c-2, so attention at pos c-1 reads c positions */
    LS_TRY(run_chunks(M, c - 1, 0, M->mask[MASK_ATTN], err));
    LS_TRY(time_masks(M, 1, c - 1, which, 4, err));
    p->dec_attn_ms[i] = paired(M, MASK_ATTN, MASK_NONE, L);
    ffn[i] = paired(M, MASK_FFN, MASK_NONE, L);
    fixed[i] = med_of(M, MASK_NONE, 1);
    p->dec_full_ms[i] = med_of(M, MASK_FULL, 1);
  }
  /* FFN and fixed costs do not depend on the context: one number, the median over contexts */
  p->dec_ffn_ms = median(ffn, p->n_dec);
  p->dec_fixed_ms = median(fixed, p->n_dec);
  return LS_OK;
}

static int measure_prefill(meas *M, ls_profile *p, ls_err *err) {
  const int L = p->n_layers;
  static const int which[] = {MASK_NONE, MASK_ATTN, MASK_FFN};
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (int i = 0; i < p->n_pre; i++) {
    int n = p->pre_tokens[i];
    progress(M, "prefill: %d tokens (%d/%d)", n, i + 1, p->n_pre);
    LS_TRY(time_masks(M, n, 0, which, 3, err));
    p->pre_attn_ms_per_token[i] = paired(M, MASK_ATTN, MASK_NONE, (double)L * n);
    p->pre_ffn_ms_per_token[i] = paired(M, MASK_FFN, MASK_NONE, (double)L * n);
    double fx = med_of(M, MASK_NONE, 1);
    p->pre_fixed_ms_per_token[i] = fx / n;
    sx += n;
    sy += fx;
    sxx += (double)n * n;
    sxy += (double)n * fx;
  }
  /* embedding per token = slope of the all-skipped prefill time over n (the
   * classifier runs once per call, for the last token) */
  int k = p->n_pre;
  double den = k * sxx - sx * sx;
  double slope = (k >= 2 && den > 0) ? (k * sxy - sx * sy) / den : 0.0;
  p->embed_ms_per_token = slope > 0 ? slope : 0.0;
  double head = p->dec_fixed_ms - p->embed_ms_per_token;
  p->head_ms = head > 0 ? head : 0.0;
  return LS_OK;
}

static void meas_free(meas *M) {
  ls_ctx_free(M->ctx);
  for (int k = 0; k < 4; k++) {
    free(M->mask[k]);
    free(M->t[k]);
  }
  free(M->scratch);
  free(M->tokens);
}

int ls_profile_measure(ls_profile *p, const ls_model *m, const ls_profile_opts *o, ls_err *err) {
  memset(p, 0, sizeof *p);
  const ls_config *cfg = &m->cfg;
  int threads = o->n_threads > 0 ? o->n_threads : 1;
  int reps = o->reps > 0 ? o->reps : 7;
  int seq = cfg->seq_len > 0 ? cfg->seq_len : 2048;
  int mb = o->max_batch > 0 ? o->max_batch : 512;
  if (mb > seq) mb = seq;
  LS_TRY(default_lists(p, o, seq, mb, err));

  snprintf(p->model_name, sizeof p->model_name, "%s", m->name);
  LS_TRY(ls_sha256_file(m->path, p->model_fingerprint, err));
  p->n_layers = cfg->n_layers;
  p->dim = cfg->dim;
  p->hidden_dim = cfg->hidden_dim;
  p->n_heads = cfg->n_heads;
  p->n_kv_heads = cfg->n_kv_heads;
  p->vocab_size = cfg->vocab_size;
  read_cpu_model(p->cpu_model, sizeof p->cpu_model);
  ls_utc_now(p->created);
  snprintf(p->commit, sizeof p->commit, "%s", ls_git_commit());
  p->n_threads = threads;
  p->reps = reps;
  p->max_batch = mb;

  int n_ctx = p->dec_ctx[p->n_dec - 1];
  if (n_ctx < mb) n_ctx = mb;
  meas M = {.m = m, .min_reps = reps, .o = o, .min_ms = o->min_ms > 0 ? o->min_ms : 200.0};
  M.cap = reps > 4096 ? reps : 4096;
  p->min_ms = M.min_ms;
  M.clock = p->clock = o->clock == LS_CLOCK_CPU ? LS_CLOCK_CPU : LS_CLOCK_WALL;
  int rc = LS_OK;
  ls_ctx_params cp = {.n_ctx = n_ctx, .max_batch = mb, .n_threads = threads};
  if ((rc = ls_ctx_new(m, &cp, &M.ctx, err)) != LS_OK) return rc;
  snprintf(p->kernel_level, sizeof p->kernel_level, "%s", ls_ctx_kernels(M.ctx));
  int L = cfg->n_layers;
  for (int k = 0; k < 4 && rc == LS_OK; k++) {
    M.t[k] = ls_calloc((size_t)M.cap, sizeof(double), err);
    if (!M.t[k]) rc = LS_ENOMEM;
    if (k == MASK_FULL || rc != LS_OK) continue;
    M.mask[k] = ls_calloc((size_t)L, 1, err);
    if (!M.mask[k]) rc = LS_ENOMEM;
  }
  M.scratch = rc == LS_OK ? ls_calloc((size_t)M.cap, sizeof(double), err) : NULL;
  if (rc == LS_OK && !M.scratch) rc = LS_ENOMEM;
  M.tokens = rc == LS_OK ? ls_malloc((size_t)n_ctx * sizeof(int), err) : NULL;
  if (rc == LS_OK && !M.tokens) rc = LS_ENOMEM;
  if (rc == LS_OK) {
    for (int l = 0; l < L; l++) {
      M.mask[MASK_NONE][l] = LS_SKIP_ATTN | LS_SKIP_FFN;
      M.mask[MASK_ATTN][l] = LS_SKIP_FFN;
      M.mask[MASK_FFN][l] = LS_SKIP_ATTN;
    }
    /* arbitrary valid ids (timing does not depend on which) */
    for (int i = 0; i < n_ctx; i++) M.tokens[i] = (int)((1u + 7919u * (unsigned)i) % (unsigned)cfg->vocab_size);
    /* warm up: fault in the mapped weights and the caches */
    progress(&M, "warm-up: %d layers, %d threads", L, threads);
    for (int i = 0; i < 3 && rc == LS_OK; i++) rc = ls_forward(M.ctx, M.tokens, 1, i, NULL, 0, err);
    if (rc == LS_OK) rc = measure_decode(&M, p, err);
    if (rc == LS_OK) rc = measure_prefill(&M, p, err);
  }
  meas_free(&M);
  return rc;
}

