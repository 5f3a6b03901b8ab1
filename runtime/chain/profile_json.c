/* Latency profiles: the JSON form (save, load, validate; docs/latency.md), read and written
 * with common/ls_json: fields are named by their dotted path ("decode.context") in errors. */
#include "ls_profile.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ls_json.h"
#include "ls_util.h"

#define SCHEMA_NAME "litestage.latency_profile"

/* ---- writing ---------------------------------------------------------------- */

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

static json_t *to_json(const ls_profile *p, const char **bad) {
  json_t *root = json_object();
  json_object_set_new(root, "schema", json_string(SCHEMA_NAME));
  json_object_set_new(root, "schema_version", json_integer(LS_PROFILE_SCHEMA_VERSION));
  json_t *model = json_object();
  json_object_set_new(model, "name", ls_json_text_or_null(p->model_name, "model.name", bad));
  json_object_set_new(model, "fingerprint", ls_json_text_or_null(p->model_fingerprint, "model.fingerprint", bad));
  json_object_set_new(model, "n_layers", json_integer(p->n_layers));
  json_object_set_new(model, "dim", json_integer(p->dim));
  json_object_set_new(model, "hidden_dim", json_integer(p->hidden_dim));
  json_object_set_new(model, "n_heads", json_integer(p->n_heads));
  json_object_set_new(model, "n_kv_heads", json_integer(p->n_kv_heads));
  json_object_set_new(model, "vocab_size", json_integer(p->vocab_size));
  json_object_set_new(root, "model", model);
  json_t *mach = json_object();
  json_object_set_new(mach, "cpu_model", ls_json_text_or_null(p->cpu_model, "machine.cpu_model", bad));
  json_object_set_new(mach, "kernel_level", ls_json_text_or_null(p->kernel_level, "machine.kernel_level", bad));
  json_object_set_new(mach, "threads", json_integer(p->n_threads));
  json_object_set_new(root, "machine", mach);
  json_object_set_new(root, "created", ls_json_text_or_null(p->created, "created", bad));
  json_object_set_new(root, "commit", ls_json_text_or_null(p->commit, "commit", bad));
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
  return root;
}

int ls_profile_to_json(const ls_profile *p, char **out, ls_err *err) {
  *out = NULL;
  const char *bad = NULL;
  json_t *root = to_json(p, &bad);
  if (!root) return ls_err_set(err, LS_ENOMEM, "out of memory writing the profile");
  if (bad) {
    json_decref(root);
    return ls_err_set(err, LS_EFORMAT, "profile: %s is not UTF-8 text", bad);
  }
  int rc = ls_json_dump_string(root, out, err);
  json_decref(root);
  return rc;
}

int ls_profile_save(const ls_profile *p, const char *path, ls_err *err) {
  char *text;
  int rc = ls_profile_to_json(p, &text, err);
  if (rc != LS_OK) return ls_err_prefix(err, "%s", path);
  rc = ls_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

/* ---- reading ---------------------------------------------------------------- */

static int check_ms(const json_t *v, const char *path, const char *field, double *dst, ls_err *err) {
  if (!json_is_number(v))
    return ls_err_set(err, LS_EFORMAT, "%s: field %s must hold numbers (milliseconds)", path, field);
  double x = json_number_value(v);
  if (!isfinite(x) || x < 0)
    return ls_err_set(err, LS_EFORMAT, "%s: field %s holds %g, not a finite non-negative time", path, field, x);
  *dst = x;
  return LS_OK;
}

static int get_ms(const json_t *root, const char *path, const char *field, double *dst, ls_err *err) {
  json_t *v;
  LS_TRY(ls_json_field(root, path, field, &v, err));
  return check_ms(v, path, field, dst, err);
}

/* An array of n_expect times. */
static int get_ms_array(const json_t *root, const char *path, const char *field, int n_expect, double *dst,
                        ls_err *err) {
  json_t *a;
  LS_TRY(ls_json_field(root, path, field, &a, err));
  if (!json_is_array(a) || (int)json_array_size(a) != n_expect)
    return ls_err_set(err, LS_EFORMAT, "%s: field %s must be an array of %d numbers", path, field, n_expect);
  for (int i = 0; i < n_expect; i++) LS_TRY(check_ms(json_array_get(a, (size_t)i), path, field, &dst[i], err));
  return LS_OK;
}

/* Strictly increasing positive integers (the x axis of a table), 1..LS_PROFILE_MAX_POINTS of them. */
static int get_axis(const json_t *root, const char *path, const char *field, int *dst, int *n, ls_err *err) {
  json_t *a;
  LS_TRY(ls_json_field(root, path, field, &a, err));
  if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > LS_PROFILE_MAX_POINTS)
    return ls_err_set(err, LS_EFORMAT, "%s: field %s must be an array of 1 to %d integers", path, field,
                      LS_PROFILE_MAX_POINTS);
  *n = (int)json_array_size(a);
  for (int i = 0; i < *n; i++) {
    json_t *v = json_array_get(a, (size_t)i);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 24))
      return ls_err_set(err, LS_EFORMAT, "%s: field %s[%d] must be a positive integer", path, field, i);
    dst[i] = (int)json_integer_value(v);
    if (i > 0 && dst[i] <= dst[i - 1])
      return ls_err_set(err, LS_EFORMAT, "%s: field %s must be strictly increasing (%d then %d)", path, field,
                        dst[i - 1], dst[i]);
  }
  return LS_OK;
}

static int parse_header(const json_t *root, const char *path, ls_err *err) {
  char schema[64];
  LS_TRY(ls_json_field_string(root, path, "schema", schema, sizeof schema, err));
  if (strcmp(schema, SCHEMA_NAME) != 0)
    return ls_err_set(err, LS_EFORMAT, "%s: schema is \"%s\", not \"%s\"", path, schema, SCHEMA_NAME);
  int ver;
  LS_TRY(ls_json_field_int(root, path, "schema_version", 0, 1 << 20, &ver, err));
  if (ver != LS_PROFILE_SCHEMA_VERSION)
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: profile schema version %d (this build reads %d)", path, ver,
                      LS_PROFILE_SCHEMA_VERSION);
  return LS_OK;
}

static int parse_model_machine(const json_t *root, const char *path, ls_profile *p, ls_err *err) {
  LS_TRY(ls_json_field_string(root, path, "model.name", p->model_name, sizeof p->model_name, err));
  LS_TRY(ls_json_field_string(root, path, "model.fingerprint", p->model_fingerprint, sizeof p->model_fingerprint,
                              err));
  LS_TRY(ls_json_field_int(root, path, "model.n_layers", 1, 1 << 16, &p->n_layers, err));
  LS_TRY(ls_json_field_int(root, path, "model.dim", 1, 1 << 24, &p->dim, err));
  LS_TRY(ls_json_field_int(root, path, "model.hidden_dim", 1, 1 << 24, &p->hidden_dim, err));
  LS_TRY(ls_json_field_int(root, path, "model.n_heads", 1, 1 << 16, &p->n_heads, err));
  LS_TRY(ls_json_field_int(root, path, "model.n_kv_heads", 1, 1 << 16, &p->n_kv_heads, err));
  LS_TRY(ls_json_field_int(root, path, "model.vocab_size", 1, 1 << 24, &p->vocab_size, err));
  LS_TRY(ls_json_field_string(root, path, "machine.cpu_model", p->cpu_model, sizeof p->cpu_model, err));
  LS_TRY(ls_json_field_string(root, path, "machine.kernel_level", p->kernel_level, sizeof p->kernel_level, err));
  LS_TRY(ls_json_field_int(root, path, "machine.threads", 1, 1 << 16, &p->n_threads, err));
  LS_TRY(ls_json_field_string(root, path, "created", p->created, sizeof p->created, err));
  return ls_json_field_string(root, path, "commit", p->commit, sizeof p->commit, err);
}

static int parse_method(const json_t *root, const char *path, ls_profile *p, ls_err *err) {
  LS_TRY(ls_json_field_int(root, path, "method.reps", 1, 1 << 20, &p->reps, err));
  LS_TRY(get_ms(root, path, "method.min_ms_per_point", &p->min_ms, err));
  LS_TRY(ls_json_field_int(root, path, "method.max_batch", 1, 1 << 24, &p->max_batch, err));
  char clk[16];
  LS_TRY(ls_json_field_string(root, path, "method.clock", clk, sizeof clk, err));
  if (!strcmp(clk, "wall"))
    p->clock = LS_CLOCK_WALL;
  else if (!strcmp(clk, "cpu"))
    p->clock = LS_CLOCK_CPU;
  else
    return ls_err_set(err, LS_EFORMAT, "%s: method.clock is \"%s\", not \"wall\" or \"cpu\"", path, clk);
  char unit[16];
  LS_TRY(ls_json_field_string(root, path, "method.unit", unit, sizeof unit, err));
  if (strcmp(unit, "ms") != 0)
    return ls_err_set(err, LS_EFORMAT, "%s: method.unit is \"%s\", only \"ms\" is known", path, unit);
  return LS_OK;
}

static int parse_tables(const json_t *root, const char *path, ls_profile *p, ls_err *err) {
  LS_TRY(get_axis(root, path, "decode.context", p->dec_ctx, &p->n_dec, err));
  LS_TRY(get_ms_array(root, path, "decode.attn_ms_per_layer", p->n_dec, p->dec_attn_ms, err));
  LS_TRY(get_ms(root, path, "decode.ffn_ms_per_layer", &p->dec_ffn_ms, err));
  LS_TRY(get_ms(root, path, "decode.fixed_ms", &p->dec_fixed_ms, err));
  LS_TRY(get_ms_array(root, path, "decode.full_model_ms", p->n_dec, p->dec_full_ms, err));

  LS_TRY(get_axis(root, path, "prefill.n_tokens", p->pre_tokens, &p->n_pre, err));
  LS_TRY(get_ms_array(root, path, "prefill.attn_ms_per_token_per_layer", p->n_pre, p->pre_attn_ms_per_token, err));
  LS_TRY(get_ms_array(root, path, "prefill.ffn_ms_per_token_per_layer", p->n_pre, p->pre_ffn_ms_per_token, err));
  LS_TRY(get_ms_array(root, path, "prefill.fixed_ms_per_token", p->n_pre, p->pre_fixed_ms_per_token, err));

  LS_TRY(get_ms(root, path, "fixed.embed_ms_per_token", &p->embed_ms_per_token, err));
  return get_ms(root, path, "fixed.head_ms", &p->head_ms, err);
}

static int parse(const json_t *root, const char *path, ls_profile *p, ls_err *err) {
  LS_TRY(parse_header(root, path, err));
  LS_TRY(parse_model_machine(root, path, p, err));
  LS_TRY(parse_method(root, path, p, err));
  return parse_tables(root, path, p, err);
}

int ls_profile_from_json(ls_profile *p, const char *text, const char *path, ls_err *err) {
  memset(p, 0, sizeof *p);
  json_t *root;
  LS_TRY(ls_json_load_text(text, strlen(text), path, 1, &root, err));
  int rc = parse(root, path, p, err);
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
