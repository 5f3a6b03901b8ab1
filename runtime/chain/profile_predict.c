/* Latency profiles: the clocks, the predictor (ls_profile.h, docs/latency.md)
 * and timed generation to check it against. The JSON form is in
 * profile_json.c, the measurement in profile_measure.c. */
#include "ls_profile.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_util.h"

/* ---------------------------------------------------------------- clocks */

double ls_clock_ms(int clock) {
  if (clock != LS_CLOCK_CPU) return ls_now_ms();
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

const char *ls_clock_name(int clock) { return clock == LS_CLOCK_CPU ? "cpu" : "wall"; }

/* ---------------------------------------------------------------- predictor */

/* Piecewise-linear y(x) through n points with strictly increasing xs; outside
 * [xs[0], xs[n-1]] the nearest segment is extended. Never below 0: a cost. */
static double interp(const double *xs, const double *ys, int n, double x) {
  if (n <= 0) return 0.0;
  if (n == 1) return ys[0] > 0 ? ys[0] : 0.0;
  int i = 0; /* segment [i, i+1] */
  if (x >= xs[n - 1])
    i = n - 2;
  else
    while (i < n - 2 && x > xs[i + 1]) i++;
  double t = (x - xs[i]) / (xs[i + 1] - xs[i]);
  double y = ys[i] + t * (ys[i + 1] - ys[i]);
  return y > 0 ? y : 0.0;
}

double ls_profile_dec_attn_ms(const ls_profile *p, double ctx) {
  double xs[LS_PROFILE_MAX_POINTS];
  for (int i = 0; i < p->n_dec; i++) xs[i] = p->dec_ctx[i];
  return interp(xs, p->dec_attn_ms, p->n_dec, ctx);
}

/* Context-dependent part of attention in one decode call attending c
 * positions: A_dec(c) - A_dec(0), the cost of the scores and the weighted sum
 * over c cached positions (may be slightly negative from noise). */
static double attn_ctx_part(const ls_profile *p, double c) {
  return ls_profile_dec_attn_ms(p, c) - ls_profile_dec_attn_ms(p, 0);
}

/* Sum of attn_ctx_part over the queries of a prefill of n tokens at pos0..:
 * query i attends pos0 + i positions. */
static double attn_ctx_sum(const ls_profile *p, int pos0, int n) {
  double s = 0.0;
  for (int i = 1; i <= n; i++) s += attn_ctx_part(p, (double)pos0 + i);
  return s;
}

/* Prefill tables hold per-token costs at measured prompt lengths n_k (from
 * position 0). The fixed and FFN parts are interpolated as totals
 * (n * per-token), linear in n, exact at every n_k. Attention has a part
 * quadratic in n (each query reads all earlier positions); it is taken from
 * the decode table (attn_ctx_sum) and only the remainder is interpolated:
 *   A_pre(n, pos0) = R(n) + attn_ctx_sum(pos0, n),
 *   R(n_k) = n_k * attn_per_token[k] - attn_ctx_sum(0, n_k). */
double ls_profile_pre_ms(const ls_profile *p, int kind, int n_tokens, int pos0) {
  if (n_tokens <= 0) return 0.0;
  const double *per = kind == LS_SKIP_ATTN  ? p->pre_attn_ms_per_token
                      : kind == LS_SKIP_FFN ? p->pre_ffn_ms_per_token
                                            : p->pre_fixed_ms_per_token;
  double xs[LS_PROFILE_MAX_POINTS], ys[LS_PROFILE_MAX_POINTS];
  for (int i = 0; i < p->n_pre; i++) {
    xs[i] = p->pre_tokens[i];
    ys[i] = per[i] * p->pre_tokens[i];
  }
  if (kind != LS_SKIP_ATTN) return interp(xs, ys, p->n_pre, n_tokens);
  for (int i = 0; i < p->n_pre; i++) ys[i] -= attn_ctx_sum(p, 0, p->pre_tokens[i]);
  /* the remainder may be negative at a point, so interpolate without the clamp */
  double r;
  if (p->n_pre == 1) {
    r = ys[0];
  } else {
    int i = 0;
    if (n_tokens >= xs[p->n_pre - 1])
      i = p->n_pre - 2;
    else
      while (i < p->n_pre - 2 && n_tokens > xs[i + 1]) i++;
    r = ys[i] + (n_tokens - xs[i]) / (xs[i + 1] - xs[i]) * (ys[i + 1] - ys[i]);
  }
  double t = r + attn_ctx_sum(p, pos0 > 0 ? pos0 : 0, n_tokens);
  return t > 0 ? t : 0.0;
}

static void count_executed(const ls_profile *p, const uint8_t *skip, int *n_attn, int *n_ffn) {
  *n_attn = *n_ffn = 0;
  for (int l = 0; l < p->n_layers; l++) {
    uint8_t s = skip ? skip[l] : 0;
    if (!(s & LS_SKIP_ATTN)) (*n_attn)++;
    if (!(s & LS_SKIP_FFN)) (*n_ffn)++;
  }
}

double ls_predict_prefill_ms(const ls_profile *p, const uint8_t *skip, int n_prompt, int pos0) {
  if (n_prompt <= 0) return 0.0;
  int na, nf;
  count_executed(p, skip, &na, &nf);
  double t = ls_profile_pre_ms(p, 0, n_prompt, 0) + nf * ls_profile_pre_ms(p, LS_SKIP_FFN, n_prompt, 0);
  if (na > 0) t += na * ls_profile_pre_ms(p, LS_SKIP_ATTN, n_prompt, pos0);
  return t;
}

double ls_predict_decode_ms(const ls_profile *p, const uint8_t *skip, int n_prompt, int pos0, int n_decode) {
  if (n_decode <= 0) return 0.0;
  int na, nf;
  count_executed(p, skip, &na, &nf);
  double fixed = p->dec_fixed_ms + nf * p->dec_ffn_ms;
  double attn = 0.0;
  if (na > 0) {
    /* the i-th decode call attends pos0 + n_prompt + i positions */
    int c0 = (pos0 > 0 ? pos0 : 0) + (n_prompt > 0 ? n_prompt : 0);
    for (int i = 1; i <= n_decode; i++) attn += ls_profile_dec_attn_ms(p, c0 + i);
  }
  return n_decode * fixed + na * attn;
}

double ls_predict_stage_ms(const ls_profile *p, const uint8_t *skip, int n_prompt, int pos0, int n_decode) {
  return ls_predict_prefill_ms(p, skip, n_prompt, pos0) + ls_predict_decode_ms(p, skip, n_prompt, pos0, n_decode);
}

double ls_predict_example_ms(const ls_profile *p, const ls_stage_call *calls, int n_calls) {
  double t = 0.0;
  for (int i = 0; i < n_calls; i++)
    t += ls_predict_stage_ms(p, calls[i].skip, calls[i].n_prompt, calls[i].pos0, calls[i].n_decode);
  return t;
}

int ls_profile_check_model(const ls_profile *p, const ls_model *m, const char *fingerprint, const char *path,
                           ls_err *err) {
  const ls_config *c = &m->cfg;
  if (p->n_layers != c->n_layers || p->dim != c->dim || p->hidden_dim != c->hidden_dim ||
      p->n_heads != c->n_heads || p->n_kv_heads != c->n_kv_heads || p->vocab_size != c->vocab_size)
    return ls_err_set(err, LS_EMISMATCH,
                      "%s: profile is for a model of shape layers=%d dim=%d ffn=%d heads=%d/%d vocab=%d, "
                      "not %s (layers=%d dim=%d ffn=%d heads=%d/%d vocab=%d)",
                      path, p->n_layers, p->dim, p->hidden_dim, p->n_heads, p->n_kv_heads, p->vocab_size, m->path,
                      c->n_layers, c->dim, c->hidden_dim, c->n_heads, c->n_kv_heads, c->vocab_size);
  if (fingerprint && strcmp(fingerprint, p->model_fingerprint) != 0)
    return ls_err_set(err, LS_EMISMATCH, "%s: profile fingerprint %.12s... does not match model %s (%.12s...)", path,
                      p->model_fingerprint, m->path, fingerprint);
  return LS_OK;
}

void ls_profile_free(ls_profile *p) {
  /* Everything is inline today; kept so callers need not change if tables grow. */
  if (p) memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- checking */

int ls_time_generation(ls_ctx *c, const int *prompt, int n_prompt, int pos0, int n_decode, const uint8_t *skip,
                       int clock, double *ms_total, double *ms_prefill, ls_err *err) {
  const ls_model *m = ls_ctx_model(c);
  int vocab = m->cfg.vocab_size, mb = ls_ctx_max_batch(c);
  if (n_prompt < 1) return ls_err_set(err, LS_EINVAL, "timed generation needs a prompt of at least one token");
  if (pos0 < 0 || pos0 + n_prompt + n_decode > ls_ctx_n_ctx(c))
    return ls_err_set(err, LS_EINVAL, "timed generation of %d+%d tokens at %d exceeds the context of %d", n_prompt,
                      n_decode, pos0, ls_ctx_n_ctx(c));
  double t0 = ls_clock_ms(clock);
  for (int i = 0; i < n_prompt; i += mb) {
    int k = n_prompt - i < mb ? n_prompt - i : mb;
    LS_TRY(ls_forward(c, prompt + i, k, pos0 + i, skip, 0, err));
  }
  int tok = ls_argmax(ls_ctx_logits(c), vocab);
  double t1 = ls_clock_ms(clock);
  for (int i = 0; i < n_decode; i++) {
    LS_TRY(ls_forward(c, &tok, 1, pos0 + n_prompt + i, skip, 0, err));
    tok = ls_argmax(ls_ctx_logits(c), vocab);
  }
  double t2 = ls_clock_ms(clock);
  *ms_total = t2 - t0;
  if (ms_prefill) *ms_prefill = t1 - t0;
  return LS_OK;
}
