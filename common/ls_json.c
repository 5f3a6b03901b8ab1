#include "ls_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_util.h"

int ls_json_load_file(const char *path, json_t **out, ls_err *err) {
  *out = NULL;
  char *text = NULL;
  size_t len = 0;
  LS_TRY(ls_read_file(path, &text, &len, err));
  int rc = ls_json_load_text(text, len, path, 1, out, err);
  free(text);
  return rc;
}

int ls_json_load_text(const char *text, size_t len, const char *where, int first_line, json_t **out,
                      ls_err *err) {
  json_error_t je;
  *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!*out) {
    int line = je.line > 0 ? first_line + je.line - 1 : first_line;
    int col = je.column > 0 ? je.column : 1;
    return ls_err_set(err, LS_EFORMAT, "%s:%d:%d: invalid JSON: %s", where, line, col, je.text);
  }
  return LS_OK;
}

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

static int wrong_type(const json_t *v, const char *key, const char *where, const char *want, ls_err *err) {
  return ls_err_set(err, LS_EFORMAT, "%s: key \"%s\": expected %s, found %s", where, key, want, type_name(v));
}

int ls_json_get(const json_t *obj, const char *key, const char *where, json_t **out, ls_err *err) {
  *out = NULL;
  if (!json_is_object(obj)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object, found %s", where, type_name(obj));
  json_t *v = json_object_get(obj, key);
  if (!v) return ls_err_set(err, LS_EFORMAT, "%s: missing key \"%s\"", where, key);
  *out = v;
  return LS_OK;
}

int ls_json_get_object(const json_t *obj, const char *key, const char *where, json_t **out, ls_err *err) {
  LS_TRY(ls_json_get(obj, key, where, out, err));
  if (!json_is_object(*out)) return wrong_type(*out, key, where, "an object", err);
  return LS_OK;
}

int ls_json_get_array(const json_t *obj, const char *key, const char *where, json_t **out, ls_err *err) {
  LS_TRY(ls_json_get(obj, key, where, out, err));
  if (!json_is_array(*out)) return wrong_type(*out, key, where, "an array", err);
  return LS_OK;
}

int ls_json_get_string(const json_t *obj, const char *key, const char *where, const char **out, ls_err *err) {
  json_t *v;
  *out = NULL;
  LS_TRY(ls_json_get(obj, key, where, &v, err));
  if (!json_is_string(v)) return wrong_type(v, key, where, "a string", err);
  *out = json_string_value(v);
  return LS_OK;
}

int ls_json_get_int(const json_t *obj, const char *key, const char *where, long long *out, ls_err *err) {
  json_t *v;
  LS_TRY(ls_json_get(obj, key, where, &v, err));
  if (!json_is_integer(v)) return wrong_type(v, key, where, "an integer", err);
  *out = (long long)json_integer_value(v);
  return LS_OK;
}

int ls_json_get_number(const json_t *obj, const char *key, const char *where, double *out, ls_err *err) {
  json_t *v;
  LS_TRY(ls_json_get(obj, key, where, &v, err));
  if (!json_is_number(v)) return wrong_type(v, key, where, "a number", err);
  *out = json_number_value(v);
  return LS_OK;
}

/* The value of an optional key, or NULL when absent or null. */
static json_t *opt_get(const json_t *obj, const char *key) {
  json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  return (v && !json_is_null(v)) ? v : NULL;
}

int ls_json_opt_string(const json_t *obj, const char *key, const char *where, const char *dflt,
                       const char **out, ls_err *err) {
  json_t *v = opt_get(obj, key);
  *out = dflt;
  if (!v) return LS_OK;
  if (!json_is_string(v)) return wrong_type(v, key, where, "a string", err);
  *out = json_string_value(v);
  return LS_OK;
}

int ls_json_opt_int(const json_t *obj, const char *key, const char *where, long long dflt, long long *out,
                    ls_err *err) {
  json_t *v = opt_get(obj, key);
  *out = dflt;
  if (!v) return LS_OK;
  if (!json_is_integer(v)) return wrong_type(v, key, where, "an integer", err);
  *out = (long long)json_integer_value(v);
  return LS_OK;
}

int ls_json_opt_number(const json_t *obj, const char *key, const char *where, double dflt, double *out,
                       ls_err *err) {
  json_t *v = opt_get(obj, key);
  *out = dflt;
  if (!v) return LS_OK;
  if (!json_is_number(v)) return wrong_type(v, key, where, "a number", err);
  *out = json_number_value(v);
  return LS_OK;
}

int ls_json_opt_bool(const json_t *obj, const char *key, const char *where, int dflt, int *out, ls_err *err) {
  json_t *v = opt_get(obj, key);
  *out = dflt;
  if (!v) return LS_OK;
  if (!json_is_boolean(v)) return wrong_type(v, key, where, "true or false", err);
  *out = json_is_true(v);
  return LS_OK;
}

int ls_json_field(const json_t *root, const char *path, const char *field, json_t **out, ls_err *err) {
  *out = NULL;
  if (!json_is_object(root)) return ls_err_set(err, LS_EFORMAT, "%s: not a JSON object", path);
  const json_t *v = root;
  for (const char *seg = field;;) {
    const char *dot = strchr(seg, '.');
    size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
    v = json_object_getn(v, seg, n);
    if (!v) return ls_err_set(err, LS_EFORMAT, "%s: missing field %.*s", path, (int)(seg + n - field), field);
    if (!dot) break;
    if (!json_is_object(v))
      return ls_err_set(err, LS_EFORMAT, "%s: field %.*s must be an object", path, (int)(dot - field), field);
    seg = dot + 1;
  }
  *out = (json_t *)v;
  return LS_OK;
}

int ls_json_field_string(const json_t *root, const char *path, const char *field, char *dst, size_t cap,
                         ls_err *err) {
  json_t *v;
  LS_TRY(ls_json_field(root, path, field, &v, err));
  if (!json_is_string(v)) return ls_err_set(err, LS_EFORMAT, "%s: field %s is not a string", path, field);
  if (json_string_length(v) >= cap) return ls_err_set(err, LS_EFORMAT, "%s: field %s is too long", path, field);
  memcpy(dst, json_string_value(v), json_string_length(v) + 1);
  return LS_OK;
}

int ls_json_field_int(const json_t *root, const char *path, const char *field, int lo, int hi, int *out,
                      ls_err *err) {
  json_t *v;
  LS_TRY(ls_json_field(root, path, field, &v, err));
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return ls_err_set(err, LS_EFORMAT, "%s: field %s must be an integer in [%d, %d]", path, field, lo, hi);
  *out = (int)json_integer_value(v);
  return LS_OK;
}

int ls_json_check_keys(const json_t *obj, const char *const *allowed, const char *where, ls_err *err) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      if (strcmp(*a, key) == 0) ok = 1;
    if (!ok) return ls_err_set(err, LS_EFORMAT, "%s: unknown key \"%s\"", where, key);
  }
  return LS_OK;
}

void ls_json_format_double(double v, char *buf, size_t size) {
  if (!isfinite(v)) {
    snprintf(buf, size, "null");
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  /* Keep it a JSON real, so that it reads back as a real: "1" -> "1.0". */
  if (!strpbrk(buf, ".eEn")) {
    size_t n = strlen(buf);
    if (n + 2 < size) memcpy(buf + n, ".0", 3);
  }
}

static int dump_scalar(const json_t *v, ls_strbuf *out, ls_err *err) {
  char num[40];
  switch (json_typeof(v)) {
  case JSON_REAL:
    ls_json_format_double(json_real_value(v), num, sizeof num);
    return ls_strbuf_append(out, num, err);
  case JSON_INTEGER:
    return ls_strbuf_appendf(out, err, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  case JSON_TRUE: return ls_strbuf_append(out, "true", err);
  case JSON_FALSE: return ls_strbuf_append(out, "false", err);
  case JSON_NULL: return ls_strbuf_append(out, "null", err);
  case JSON_STRING: {
    /* jansson's own escaping */
    char *s = json_dumps(v, JSON_ENCODE_ANY);
    if (!s) return ls_err_set(err, LS_ENOMEM, "out of memory encoding a JSON string");
    int rc = ls_strbuf_append(out, s, err);
    free(s);
    return rc;
  }
  default: return ls_err_set(err, LS_ESTATE, "dump_scalar: not a scalar");
  }
}

/* Printed on one line: scalars, arrays of scalars, and objects of at most 3 scalar members. */
static int is_flat(const json_t *v) {
  if (json_is_object(v)) {
    if (json_object_size(v) > 3) return 0;
    const char *key;
    json_t *e;
    json_object_foreach((json_t *)v, key, e) if (json_is_object(e) || json_is_array(e)) return 0;
    return 1;
  }
  if (!json_is_array(v)) return 1;
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) if (json_is_object(e) || json_is_array(e)) return 0;
  return 1;
}

static int indent(ls_strbuf *out, int depth, ls_err *err) {
  for (int i = 0; i < depth; i++) LS_TRY(ls_strbuf_append(out, "  ", err));
  return LS_OK;
}

static int dump_value(const json_t *v, int depth, ls_strbuf *out, ls_err *err) {
  if (json_is_object(v)) {
    if (json_object_size(v) == 0) return ls_strbuf_append(out, "{}", err);
    int flat = depth > 0 && is_flat(v);
    LS_TRY(ls_strbuf_append(out, flat ? "{" : "{\n", err));
    const char *key;
    json_t *e;
    size_t i = 0, n = json_object_size(v);
    json_object_foreach((json_t *)v, key, e) {
      if (!flat) LS_TRY(indent(out, depth + 1, err));
      json_t *k = json_string(key);
      if (!k) return ls_err_set(err, LS_ENOMEM, "out of memory encoding a JSON key");
      int rc = dump_scalar(k, out, err);
      json_decref(k);
      LS_TRY(rc);
      LS_TRY(ls_strbuf_append(out, ": ", err));
      LS_TRY(dump_value(e, depth + 1, out, err));
      if (flat) LS_TRY(ls_strbuf_append(out, ++i < n ? ", " : "", err));
      else LS_TRY(ls_strbuf_append(out, ++i < n ? ",\n" : "\n", err));
    }
    if (!flat) LS_TRY(indent(out, depth, err));
    return ls_strbuf_append(out, "}", err);
  }
  if (json_is_array(v)) {
    size_t i, n = json_array_size(v);
    json_t *e;
    if (is_flat(v)) {
      LS_TRY(ls_strbuf_append(out, "[", err));
      json_array_foreach(v, i, e) {
        LS_TRY(dump_value(e, depth + 1, out, err));
        if (i + 1 < n) LS_TRY(ls_strbuf_append(out, ", ", err));
      }
      return ls_strbuf_append(out, "]", err);
    }
    LS_TRY(ls_strbuf_append(out, "[\n", err));
    json_array_foreach(v, i, e) {
      LS_TRY(indent(out, depth + 1, err));
      LS_TRY(dump_value(e, depth + 1, out, err));
      LS_TRY(ls_strbuf_append(out, i + 1 < n ? ",\n" : "\n", err));
    }
    LS_TRY(indent(out, depth, err));
    return ls_strbuf_append(out, "]", err);
  }
  return dump_scalar(v, out, err);
}

int ls_json_dump(const json_t *root, ls_strbuf *out, ls_err *err) {
  LS_TRY(dump_value(root, 0, out, err));
  return ls_strbuf_append(out, "\n", err);
}

int ls_json_dump_string(const json_t *root, char **out, ls_err *err) {
  *out = NULL;
  ls_strbuf b;
  ls_strbuf_init(&b);
  int rc = ls_json_dump(root, &b, err);
  if (rc != LS_OK) {
    ls_strbuf_free(&b);
    return rc;
  }
  *out = ls_strbuf_release(&b);
  return *out ? LS_OK : ls_err_set(err, LS_ENOMEM, "out of memory writing JSON");
}

json_t *ls_json_text_or_null(const char *s, const char *what, const char **bad) {
  if (!s) return json_null();
  json_t *j = json_string(s);
  if (j) return j;
  if (!*bad) *bad = what;
  return json_null();
}
