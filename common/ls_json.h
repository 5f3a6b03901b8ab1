/* Small jansson helpers. Every error message names the file (and line, key)
 * it is about: "data/x.json:3:14: ..." for syntax errors, and
 * "WHERE: key \"k\": expected a string" for typed getters, where WHERE is the
 * caller's context (a path, "path:LINE" for a JSONL line, or
 * "path: stages[1]"). */
#ifndef LS_JSON_H
#define LS_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "ls_error.h"
#include "ls_strbuf.h"

/* Loads a JSON file; syntax errors read "PATH:LINE:COL: message". *out is a new reference. */
int ls_json_load_file(const char *path, json_t **out, ls_err *err);
/* Parses one JSON text (e.g. a JSONL line); errors read "WHERE:LINE:COL: message" with
 * line = first_line + jansson's line - 1 (pass the file line of the text). */
int ls_json_load_text(const char *text, size_t len, const char *where, int first_line, json_t **out,
                      ls_err *err);

/* Typed getters of a required key; the value is borrowed (owned by obj). */
int ls_json_get(const json_t *obj, const char *key, const char *where, json_t **out, ls_err *err);
int ls_json_get_object(const json_t *obj, const char *key, const char *where, json_t **out, ls_err *err);
int ls_json_get_array(const json_t *obj, const char *key, const char *where, json_t **out, ls_err *err);
int ls_json_get_string(const json_t *obj, const char *key, const char *where, const char **out, ls_err *err);
int ls_json_get_int(const json_t *obj, const char *key, const char *where, long long *out, ls_err *err);
/* Accepts integers and reals. */
int ls_json_get_number(const json_t *obj, const char *key, const char *where, double *out, ls_err *err);

/* Optional keys: absent (or JSON null) leaves *out = dflt; a wrong type is an error. */
int ls_json_opt_string(const json_t *obj, const char *key, const char *where, const char *dflt,
                       const char **out, ls_err *err);
int ls_json_opt_int(const json_t *obj, const char *key, const char *where, long long dflt, long long *out,
                    ls_err *err);
int ls_json_opt_number(const json_t *obj, const char *key, const char *where, double dflt, double *out,
                       ls_err *err);
int ls_json_opt_bool(const json_t *obj, const char *key, const char *where, int dflt, int *out, ls_err *err);

/* Fields named by their dotted path from the document's root ("model.n_layers"), for nested
 * formats that document their fields that way (the latency profile, docs/latency.md). Errors
 * name the file and the field: "PATH: missing field model.n_layers", "PATH: field model must be
 * an object", "PATH: field model.name is not a string". The value is borrowed (owned by root). */
int ls_json_field(const json_t *root, const char *path, const char *field, json_t **out, ls_err *err);
/* Copies a string field into dst[cap]: "PATH: field F is too long" when it does not fit. */
int ls_json_field_string(const json_t *root, const char *path, const char *field, char *dst, size_t cap,
                         ls_err *err);
/* An integer field in [lo, hi]: "PATH: field F must be an integer in [LO, HI]". */
int ls_json_field_int(const json_t *root, const char *path, const char *field, int lo, int hi, int *out,
                      ls_err *err);

/* Refuses keys of obj that are not in the NULL-terminated list `allowed` (catches typos such
 * as "max_new_token"): "WHERE: unknown key \"k\"". */
int ls_json_check_keys(const json_t *obj, const char *const *allowed, const char *where, ls_err *err);

/* Pretty printer for files people read: 2-space indent, arrays of scalars on one line, reals in
 * the shortest form that reads back to the same double (0.3, not 0.29999999999999999), non-finite
 * reals as null. Appends to out, ending with a newline. */
int ls_json_dump(const json_t *root, ls_strbuf *out, ls_err *err);
/* The same into a malloc'd string *out (the caller frees it). */
int ls_json_dump_string(const json_t *root, char **out, ls_err *err);

/* json_string(s), or null where s is NULL; where s is not UTF-8 text (a
 * name taken from a file), null and the first such field's name (what) in
 * *bad, so that a writer can fail naming it instead of writing a file that
 * does not read back. */
json_t *ls_json_text_or_null(const char *s, const char *what, const char **bad);

/* Shortest "%.Ng" form of a finite double that strtod reads back exactly (buf >= 32 bytes). */
void ls_json_format_double(double v, char *buf, size_t size);

#endif
