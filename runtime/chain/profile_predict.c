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

#include "ls_pipeline.h"
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
 * query i attends pos0 + i positions. The same terms, in the same order, as
 * summing attn_ctx_part(pos0 + i), but the decode table's segment is found
 * by walking forward with the increasing context and A_dec(0) is taken once
 * (the search predicts every candidate's chain through this loop). */
static double attn_ctx_sum(const ls_profile *p, int pos0, int n) {
  if (p->n_dec <= 1) {
    double s = 0.0;
    for (int i = 1; i <= n; i++) s += attn_ctx_part(p, (double)pos0 + i);
    return s;
  }
  double xs[LS_PROFILE_MAX_POINTS];
  for (int i = 0; i < p->n_dec; i++) xs[i] = p->dec_ctx[i];
  const double *ys = p->dec_attn_ms;
  const double at0 = ls_profile_dec_attn_ms(p, 0);
  const int last = p->n_dec - 1;
  double s = 0.0;
  int seg = 0; /* interp's segment for x: the first i with x <= xs[i + 1], at most n_dec - 2 */
  for (int i = 1; i <= n; i++) {
    double x = (double)pos0 + i;
    if (x >= xs[last])
      seg = last - 1;
    else
      while (seg < last - 1 && x > xs[seg + 1]) seg++;
    double t = (x - xs[seg]) / (xs[seg + 1] - xs[seg]);
    double y = ys[seg] + t * (ys[seg + 1] - ys[seg]);
    s += (y > 0 ? y : 0.0) - at0;
  }
  return s;
}

/* Prefill tables hold per-token costs at measured prompt lengths n_k (from
 * position 0). The fixed and FFN parts are interpolated as totals
 * (n * per-token), linear in n, exact at every n_k. Attention has a part
 * quadratic in n (each query reads all earlier positions); it is taken from
 * the decode table (attn_ctx_sum) and only the remainder is interpolated:
 *   A_pre(n, pos0) = R(n) + attn_ctx_sum(pos0, n),
 *   R(n_k) = n_k * attn_per_token[k] - attn_ctx_sum(0, n_k). */
/* R(n): the prefill attention total of n tokens at positions 0..n-1 without
 * its context part, interpolated linearly in n (may be negative at a point). */
static double attn_remainder(const ls_profile *p, int n_tokens) {
  double xs[LS_PROFILE_MAX_POINTS], ys[LS_PROFILE_MAX_POINTS];
  for (int i = 0; i < p->n_pre; i++) {
    xs[i] = p->pre_tokens[i];
    ys[i] = p->pre_attn_ms_per_token[i] * p->pre_tokens[i] - attn_ctx_sum(p, 0, p->pre_tokens[i]);
  }
  if (p->n_pre <= 0) return 0.0;
  if (p->n_pre == 1) return ys[0];
  int i = 0;
  if (n_tokens >= xs[p->n_pre - 1])
    i = p->n_pre - 2;
  else
    while (i < p->n_pre - 2 && n_tokens > xs[i + 1]) i++;
  return ys[i] + (n_tokens - xs[i]) / (xs[i + 1] - xs[i]) * (ys[i + 1] - ys[i]);
}

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
  /* the remainder may be negative at a point, so it is interpolated without the clamp */
  double t = attn_remainder(p, n_tokens) + attn_ctx_sum(p, pos0 > 0 ? pos0 : 0, n_tokens);
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

/* ---------------------------------------------------------------- groups */

/* How much more a batch of `to` rows costs than one of `from` rows, per kind
 * (0 fixed, LS_SKIP_ATTN without its context part, LS_SKIP_FFN): from the
 * prefill tables' totals, which time n rows through every linear layer in
 * one call, made non-decreasing in n (noise aside, more rows never cost
 * less). >= 0, and non-decreasing in `to`. */
static double batch_growth(const ls_profile *p, int kind, int from, int to) {
  if (to <= from || p->n_pre <= 1) return 0.0;
  double xs[LS_PROFILE_MAX_POINTS] = {0}, ys[LS_PROFILE_MAX_POINTS] = {0};
  for (int i = 0; i < p->n_pre; i++) {
    xs[i] = p->pre_tokens[i];
    ys[i] = kind == LS_SKIP_ATTN ? attn_remainder(p, p->pre_tokens[i])
            : kind == LS_SKIP_FFN ? p->pre_ffn_ms_per_token[i] * p->pre_tokens[i]
                                  : p->pre_fixed_ms_per_token[i] * p->pre_tokens[i];
    if (i > 0 && ys[i] < ys[i - 1]) ys[i] = ys[i - 1];
  }
  /* outside the points, the nearest segment's slope (>= 0 here); the clamp of interp at 0 is kept off
   * by differencing (ys may be negative for attention) */
  double lo = ys[0] < 0 ? ys[0] : 0.0;
  for (int i = 0; i < p->n_pre; i++) ys[i] -= lo;
  double g = interp(xs, ys, p->n_pre, to) - interp(xs, ys, p->n_pre, from);
  return g > 0 ? g : 0.0;
}

/* The growth of a batch's linear layers from `from` to `to` rows under a mask
 * running na attention and nf FFN sub-layers. */
static double rows_growth(const ls_profile *p, int na, int nf, int from, int to) {
  return batch_growth(p, 0, from, to) + nf * batch_growth(p, LS_SKIP_FFN, from, to) +
         na * batch_growth(p, LS_SKIP_ATTN, from, to);
}

/* One decode step of the group: the rows of the calls still decoding, each
 * attending ctx[i] positions. The first row costs a single decode call
 * (the per-call model, exactly); every further row adds its attention
 * context part (>= 0), and the batch grows the linear layers' cost as the
 * prefill tables say; the classifier, which runs once per row here (a
 * prefill computes one row's logits), grows as the FFN does: head_ms times
 * the FFN's growth ratio. */
static double decode_step_ms(const ls_profile *p, int na, int nf, const int *ctx, int rows) {
  double t = p->dec_fixed_ms + nf * p->dec_ffn_ms + na * ls_profile_dec_attn_ms(p, ctx[0]);
  for (int i = 1; i < rows; i++) {
    double part = attn_ctx_part(p, ctx[i]);
    t += na * (part > 0 ? part : 0.0);
  }
  double g_ffn1 = ls_profile_pre_ms(p, LS_SKIP_FFN, 1, 0);
  if (g_ffn1 > 0 && p->head_ms > 0) t += p->head_ms * batch_growth(p, LS_SKIP_FFN, 1, rows) / g_ffn1;
  return t + rows_growth(p, na, nf, 1, rows);
}

/* The suffixes' prefill, one batch of all calls' rows (as ls_engine_step
 * runs them): the first call's prefill as if alone (ls_predict_prefill_ms),
 * then per further call its attention context part (>= 0) and the linear
 * layers' growth to the summed rows. */
static double group_prefill_ms(const ls_profile *p, const uint8_t *skip, int na, int nf, const ls_stage_call *calls,
                               int n) {
  int base = 0;
  while (base < n && calls[base].n_prompt <= 0) base++;
  if (base == n) return 0.0;
  double t = ls_predict_prefill_ms(p, skip, calls[base].n_prompt, calls[base].pos0);
  int rows = calls[base].n_prompt;
  for (int i = base + 1; i < n; i++) {
    if (calls[i].n_prompt <= 0) continue;
    double ctx = attn_ctx_sum(p, calls[i].pos0 > 0 ? calls[i].pos0 : 0, calls[i].n_prompt);
    t += na * (ctx > 0 ? ctx : 0.0);
    rows += calls[i].n_prompt;
  }
  return t + rows_growth(p, na, nf, calls[base].n_prompt, rows);
}

double ls_predict_group_ms(const ls_profile *p, const uint8_t *skip, int n_shared, int shared_pos0,
                           const ls_stage_call *calls, int n_calls) {
  if (n_calls <= 0) return 0.0;
  if (n_calls > LS_MAX_SEQ) n_calls = LS_MAX_SEQ;
  int na, nf;
  count_executed(p, skip, &na, &nf);
  double t = ls_predict_prefill_ms(p, skip, n_shared, shared_pos0) + group_prefill_ms(p, skip, na, nf, calls, n_calls);
  int ctx[LS_MAX_SEQ];
  for (int step = 1;; step++) {
    int rows = 0;
    for (int i = 0; i < n_calls; i++)
      if (calls[i].n_decode >= step) ctx[rows++] = calls[i].pos0 + calls[i].n_prompt + step;
    if (!rows) return t;
    t += decode_step_ms(p, na, nf, ctx, rows);
  }
}

double ls_predict_example_ms(const ls_profile *p, const ls_stage_call *calls, int n_calls) {
  double t = 0.0;
  for (int i = 0; i < n_calls; i++)
    t += ls_predict_stage_ms(p, calls[i].skip, calls[i].n_prompt, calls[i].pos0, calls[i].n_decode);
  return t;
}

double ls_predict_chain_ms(const ls_profile *p, const ls_example_result *res, const uint8_t *masks, int n_layers) {
  double t = 0.0;
  ls_stage_call calls[LS_MAX_SEQ];
  for (int st = 0; st < res->n_stages; st++) {
    const ls_stage_result *sr = &res->stages[st];
    const uint8_t *skip = masks ? masks + (size_t)st * n_layers : NULL;
    /* a stage of more calls than slots ran in groups of LS_MAX_SEQ at most */
    for (int k0 = 0; k0 < sr->n_calls; k0 += LS_MAX_SEQ) {
      int n = sr->n_calls - k0 < LS_MAX_SEQ ? sr->n_calls - k0 : LS_MAX_SEQ;
      for (int i = 0; i < n; i++) {
        const ls_call_result *c = &sr->calls[k0 + i];
        calls[i] = (ls_stage_call){skip, c->n_prompt - c->n_reused, c->n_reused, ls_call_decode_calls(c)};
      }
      const ls_call_result *c0 = &sr->calls[k0];
      t += ls_predict_group_ms(p, skip, c0->n_reused - c0->n_cached, c0->n_cached, calls, n);
    }
  }
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
