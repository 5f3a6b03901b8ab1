/* Latency profiles: the JSON form (save, load, validate; docs/latency.md). */
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

