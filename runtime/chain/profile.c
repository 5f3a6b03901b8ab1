/* Latency profiles: measurement with the real forward pass, the JSON form,
 * and the predictor (ls_profile.h, docs/latency.md). */
#include "ls_profile.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_util.h"

#define SCHEMA_NAME "litestage.latency_profile"

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

/* ---------------------------------------------------------------- JSON */

static json_t *real_array(const double *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
  return a;
}

static json_t *int_array(const int *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
  return a;
}

char *ls_profile_to_json(const ls_profile *p) {
  json_t *root = json_object();
  json_object_set_new(root, "schema", json_string(SCHEMA_NAME));
  json_object_set_new(root, "schema_version", json_integer(LS_PROFILE_SCHEMA_VERSION));
  json_t *model = json_object();
  json_object_set_new(model, "name", json_string(p->model_name));
  json_object_set_new(model, "fingerprint", json_string(p->model_fingerprint));
  json_object_set_new(model, "n_layers", json_integer(p->n_layers));
  json_object_set_new(model, "dim", json_integer(p->dim));
  json_object_set_new(model, "hidden_dim", json_integer(p->hidden_dim));
  json_object_set_new(model, "n_heads", json_integer(p->n_heads));
  json_object_set_new(model, "n_kv_heads", json_integer(p->n_kv_heads));
  json_object_set_new(model, "vocab_size", json_integer(p->vocab_size));
  json_object_set_new(root, "model", model);
  json_t *mach = json_object();
  json_object_set_new(mach, "cpu_model", json_string(p->cpu_model));
  json_object_set_new(mach, "kernel_level", json_string(p->kernel_level));
  json_object_set_new(mach, "threads", json_integer(p->n_threads));
  json_object_set_new(root, "machine", mach);
  json_object_set_new(root, "created", json_string(p->created));
  json_object_set_new(root, "commit", json_string(p->commit));
  json_t *meth = json_object();
  json_object_set_new(meth, "reps", json_integer(p->reps));
  json_object_set_new(meth, "min_ms_per_point", json_real(p->min_ms));
  json_object_set_new(meth, "statistic", json_string("median"));
  json_object_set_new(meth, "max_batch", json_integer(p->max_batch));
  json_object_set_new(meth, "clock", json_string(ls_clock_name(p->clock)));
  json_object_set_new(meth, "unit", json_string("ms"));
  json_object_set_new(root, "method", meth);
  json_t *dec = json_object();
  json_object_set_new(dec, "context", int_array(p->dec_ctx, p->n_dec));
  json_object_set_new(dec, "attn_ms_per_layer", real_array(p->dec_attn_ms, p->n_dec));
  json_object_set_new(dec, "ffn_ms_per_layer", json_real(p->dec_ffn_ms));
  json_object_set_new(dec, "fixed_ms", json_real(p->dec_fixed_ms));
  json_object_set_new(dec, "full_model_ms", real_array(p->dec_full_ms, p->n_dec));
  json_object_set_new(root, "decode", dec);
  json_t *pre = json_object();
  json_object_set_new(pre, "n_tokens", int_array(p->pre_tokens, p->n_pre));
  json_object_set_new(pre, "attn_ms_per_token_per_layer", real_array(p->pre_attn_ms_per_token, p->n_pre));
  json_object_set_new(pre, "ffn_ms_per_token_per_layer", real_array(p->pre_ffn_ms_per_token, p->n_pre));
  json_object_set_new(pre, "fixed_ms_per_token", real_array(p->pre_fixed_ms_per_token, p->n_pre));
  json_object_set_new(root, "prefill", pre);
  json_t *fix = json_object();
  json_object_set_new(fix, "embed_ms_per_token", json_real(p->embed_ms_per_token));
  json_object_set_new(fix, "head_ms", json_real(p->head_ms));
  json_object_set_new(root, "fixed", fix);
  char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
  json_decref(root);
  return s;
}

int ls_profile_save(const ls_profile *p, const char *path, ls_err *err) {
  char *s = ls_profile_to_json(p);
  if (!s) return ls_err_set(err, LS_ENOMEM, "%s: out of memory writing the profile", path);
  size_t n = strlen(s);
  char *t = realloc(s, n + 2);
  if (!t) {
    free(s);
    return ls_err_set(err, LS_ENOMEM, "%s: out of memory writing the profile", path);
  }
  t[n] = '\n';
  t[n + 1] = '\0';
  int rc = ls_write_file_atomic(path, t, n + 1, err);
  free(t);
  return rc;
}

/* A small reader that names the file and the field in every error. */
typedef struct {
  const char *path;
  ls_err *err;
} rd;

static int get(rd *r, json_t *obj, const char *where, const char *key, json_t **out) {
  *out = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  if (!*out) return ls_err_set(r->err, LS_EFORMAT, "%s: missing field %s%s", r->path, where, key);
  return LS_OK;
}

static int get_str(rd *r, json_t *obj, const char *where, const char *key, char *dst, size_t cap) {
  ls_err *err = r->err; /* LS_TRY traces into it */
  json_t *v;
  LS_TRY(get(r, obj, where, key, &v));
  if (!json_is_string(v)) return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s is not a string", r->path, where, key);
  if (json_string_length(v) >= cap)
    return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s is too long", r->path, where, key);
  snprintf(dst, cap, "%s", json_string_value(v));
  return LS_OK;
}

static int get_int(rd *r, json_t *obj, const char *where, const char *key, int lo, int hi, int *dst) {
  ls_err *err = r->err; /* LS_TRY traces into it */
  json_t *v;
  LS_TRY(get(r, obj, where, key, &v));
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s must be an integer in [%d, %d]", r->path, where, key, lo,
                      hi);
  *dst = (int)json_integer_value(v);
  return LS_OK;
}

static int check_ms(rd *r, json_t *v, const char *where, const char *key, double *dst) {
  if (!json_is_number(v))
    return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s must hold numbers (milliseconds)", r->path, where, key);
  double x = json_number_value(v);
  if (!isfinite(x) || x < 0)
    return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s holds %g, not a finite non-negative time", r->path, where,
                      key, x);
  *dst = x;
  return LS_OK;
}

static int get_ms(rd *r, json_t *obj, const char *where, const char *key, double *dst) {
  ls_err *err = r->err; /* LS_TRY traces into it */
  json_t *v;
  LS_TRY(get(r, obj, where, key, &v));
  return check_ms(r, v, where, key, dst);
}

/* An array of n_expect numbers (n_expect < 0: any length 1..MAX, stored in *n). */
static int get_ms_array(rd *r, json_t *obj, const char *where, const char *key, int n_expect, double *dst) {
  ls_err *err = r->err; /* LS_TRY traces into it */
  json_t *a;
  LS_TRY(get(r, obj, where, key, &a));
  if (!json_is_array(a) || (int)json_array_size(a) != n_expect)
    return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s must be an array of %d numbers", r->path, where, key,
                      n_expect);
  for (int i = 0; i < n_expect; i++) LS_TRY(check_ms(r, json_array_get(a, (size_t)i), where, key, &dst[i]));
  return LS_OK;
}

/* Strictly increasing positive integers (the x axis of a table). */
static int get_axis(rd *r, json_t *obj, const char *where, const char *key, int *dst, int *n) {
  ls_err *err = r->err; /* LS_TRY traces into it */
  json_t *a;
  LS_TRY(get(r, obj, where, key, &a));
  if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > LS_PROFILE_MAX_POINTS)
    return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s must be an array of 1 to %d integers", r->path, where, key,
                      LS_PROFILE_MAX_POINTS);
  *n = (int)json_array_size(a);
  for (int i = 0; i < *n; i++) {
    json_t *v = json_array_get(a, (size_t)i);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 24))
      return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s[%d] must be a positive integer", r->path, where, key, i);
    dst[i] = (int)json_integer_value(v);
    if (i > 0 && dst[i] <= dst[i - 1])
      return ls_err_set(r->err, LS_EFORMAT, "%s: field %s%s must be strictly increasing (%d then %d)", r->path,
                        where, key, dst[i - 1], dst[i]);
  }
  return LS_OK;
}

static int parse(rd *r, json_t *root, ls_profile *p) {
  ls_err *err = r->err; /* LS_TRY traces into it */
  if (!json_is_object(root)) return ls_err_set(r->err, LS_EFORMAT, "%s: not a JSON object", r->path);
  char schema[64];
  LS_TRY(get_str(r, root, "", "schema", schema, sizeof schema));
  if (strcmp(schema, SCHEMA_NAME) != 0)
    return ls_err_set(r->err, LS_EFORMAT, "%s: schema is \"%s\", not \"%s\"", r->path, schema, SCHEMA_NAME);
  int ver;
  LS_TRY(get_int(r, root, "", "schema_version", 0, 1 << 20, &ver));
  if (ver != LS_PROFILE_SCHEMA_VERSION)
    return ls_err_set(r->err, LS_EUNSUPPORTED, "%s: profile schema version %d (this build reads %d)", r->path, ver,
                      LS_PROFILE_SCHEMA_VERSION);
  json_t *model, *mach, *meth, *dec, *pre, *fix;
  LS_TRY(get(r, root, "", "model", &model));
  LS_TRY(get_str(r, model, "model.", "name", p->model_name, sizeof p->model_name));
  LS_TRY(get_str(r, model, "model.", "fingerprint", p->model_fingerprint, sizeof p->model_fingerprint));
  LS_TRY(get_int(r, model, "model.", "n_layers", 1, 1 << 16, &p->n_layers));
  LS_TRY(get_int(r, model, "model.", "dim", 1, 1 << 24, &p->dim));
  LS_TRY(get_int(r, model, "model.", "hidden_dim", 1, 1 << 24, &p->hidden_dim));
  LS_TRY(get_int(r, model, "model.", "n_heads", 1, 1 << 16, &p->n_heads));
  LS_TRY(get_int(r, model, "model.", "n_kv_heads", 1, 1 << 16, &p->n_kv_heads));
  LS_TRY(get_int(r, model, "model.", "vocab_size", 1, 1 << 24, &p->vocab_size));
  LS_TRY(get(r, root, "", "machine", &mach));
  LS_TRY(get_str(r, mach, "machine.", "cpu_model", p->cpu_model, sizeof p->cpu_model));
  LS_TRY(get_str(r, mach, "machine.", "kernel_level", p->kernel_level, sizeof p->kernel_level));
  LS_TRY(get_int(r, mach, "machine.", "threads", 1, 1 << 16, &p->n_threads));
  LS_TRY(get_str(r, root, "", "created", p->created, sizeof p->created));
  LS_TRY(get_str(r, root, "", "commit", p->commit, sizeof p->commit));
  LS_TRY(get(r, root, "", "method", &meth));
  LS_TRY(get_int(r, meth, "method.", "reps", 1, 1 << 20, &p->reps));
  LS_TRY(get_ms(r, meth, "method.", "min_ms_per_point", &p->min_ms));
  LS_TRY(get_int(r, meth, "method.", "max_batch", 1, 1 << 24, &p->max_batch));
  char clk[16];
  LS_TRY(get_str(r, meth, "method.", "clock", clk, sizeof clk));
  if (!strcmp(clk, "wall"))
    p->clock = LS_CLOCK_WALL;
  else if (!strcmp(clk, "cpu"))
    p->clock = LS_CLOCK_CPU;
  else
    return ls_err_set(r->err, LS_EFORMAT, "%s: method.clock is \"%s\", not \"wall\" or \"cpu\"", r->path, clk);
  char unit[16];
  LS_TRY(get_str(r, meth, "method.", "unit", unit, sizeof unit));
  if (strcmp(unit, "ms") != 0)
    return ls_err_set(r->err, LS_EFORMAT, "%s: method.unit is \"%s\", only \"ms\" is known", r->path, unit);

  LS_TRY(get(r, root, "", "decode", &dec));
  LS_TRY(get_axis(r, dec, "decode.", "context", p->dec_ctx, &p->n_dec));
  LS_TRY(get_ms_array(r, dec, "decode.", "attn_ms_per_layer", p->n_dec, p->dec_attn_ms));
  LS_TRY(get_ms(r, dec, "decode.", "ffn_ms_per_layer", &p->dec_ffn_ms));
  LS_TRY(get_ms(r, dec, "decode.", "fixed_ms", &p->dec_fixed_ms));
  LS_TRY(get_ms_array(r, dec, "decode.", "full_model_ms", p->n_dec, p->dec_full_ms));

  LS_TRY(get(r, root, "", "prefill", &pre));
  LS_TRY(get_axis(r, pre, "prefill.", "n_tokens", p->pre_tokens, &p->n_pre));
  LS_TRY(get_ms_array(r, pre, "prefill.", "attn_ms_per_token_per_layer", p->n_pre, p->pre_attn_ms_per_token));
  LS_TRY(get_ms_array(r, pre, "prefill.", "ffn_ms_per_token_per_layer", p->n_pre, p->pre_ffn_ms_per_token));
  LS_TRY(get_ms_array(r, pre, "prefill.", "fixed_ms_per_token", p->n_pre, p->pre_fixed_ms_per_token));

  LS_TRY(get(r, root, "", "fixed", &fix));
  LS_TRY(get_ms(r, fix, "fixed.", "embed_ms_per_token", &p->embed_ms_per_token));
  LS_TRY(get_ms(r, fix, "fixed.", "head_ms", &p->head_ms));
  return LS_OK;
}

int ls_profile_from_json(ls_profile *p, const char *text, const char *path, ls_err *err) {
  memset(p, 0, sizeof *p);
  json_error_t je;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!root) return ls_err_set(err, LS_EFORMAT, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
  rd r = {path, err};
  int rc = parse(&r, root, p);
  json_decref(root);
  if (rc != LS_OK) memset(p, 0, sizeof *p);
  return rc;
}

int ls_profile_load(ls_profile *p, const char *path, ls_err *err) {
  char *text;
  memset(p, 0, sizeof *p);
  LS_TRY(ls_read_file(path, &text, NULL, err));
  int rc = ls_profile_from_json(p, text, path, err);
  free(text);
  return rc;
}

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
