#include "ls_template.h"

#include <stdlib.h>
#include <string.h>

#include "ls_json.h"

/* ---- placeholder scanning ------------------------------------------------ */

/* Calls fn for every literal run and every placeholder of tmpl, in order.
 * kind 0: literal text [s, s+n); kind 1: placeholder name [s, s+n). "{{" and "}}" are literal
 * braces; an unclosed "{", an empty "{}" or a lone "}" is an error naming `where`. */
typedef int (*piece_fn)(void *ctx, int kind, const char *s, size_t n, ls_err *err);

static int scan_template(const char *tmpl, const char *where, piece_fn fn, void *ctx, ls_err *err) {
  const char *p = tmpl, *lit = tmpl;
  while (*p) {
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
      LS_TRY(fn(ctx, 0, lit, (size_t)(p - lit) + 1, err)); /* up to and including one brace */
      p += 2;
      lit = p;
    } else if (*p == '{') {
      const char *q = strchr(p + 1, '}');
      const char *nb = strchr(p + 1, '{');
      if (!q || (nb && nb < q))
        return ls_err_set(err, LS_EFORMAT, "%s: unclosed \"{\" at offset %d (write \"{{\" for a brace)", where,
                          (int)(p - tmpl));
      if (q == p + 1) return ls_err_set(err, LS_EFORMAT, "%s: empty placeholder \"{}\"", where);
      LS_TRY(fn(ctx, 0, lit, (size_t)(p - lit), err));
      LS_TRY(fn(ctx, 1, p + 1, (size_t)(q - p - 1), err));
      p = q + 1;
      lit = p;
    } else if (*p == '}') {
      return ls_err_set(err, LS_EFORMAT, "%s: lone \"}\" at offset %d (write \"}}\" for a brace)", where,
                        (int)(p - tmpl));
    } else {
      p++;
    }
  }
  return fn(ctx, 0, lit, (size_t)(p - lit), err);
}

static int name_is(const char *s, size_t n, const char *name) { return strlen(name) == n && memcmp(s, name, n) == 0; }

static const char *const RESERVED[] = {"question", "options", "opening", "option", "option_text", "output", NULL};

static int is_reserved(const char *s, size_t n) {
  for (const char *const *r = RESERVED; *r; r++)
    if (name_is(s, n, *r)) return 1;
  return 0;
}

/* ---- load-time validation ------------------------------------------------ */

typedef struct check_ctx {
  const ls_template *t;
  int stage;     /* stage whose prompt is checked */
  int join;      /* checking a join_item */
  const char *where;
} check_ctx;

static int check_piece(void *vctx, int kind, const char *s, size_t n, ls_err *err) {
  check_ctx *c = vctx;
  if (kind == 0) return LS_OK;
  const ls_stage_def *st = &c->t->stages[c->stage];
  if (c->join) {
    if (name_is(s, n, "option") || name_is(s, n, "option_text") || name_is(s, n, "output")) return LS_OK;
    return ls_err_set(err, LS_EFORMAT, "%s: unknown placeholder \"{%.*s}\" in join item (allowed: {option}, "
                      "{option_text}, {output})", c->where, (int)n, s);
  }
  if (name_is(s, n, "question") || name_is(s, n, "options") || name_is(s, n, "opening")) return LS_OK;
  if (name_is(s, n, "option") || name_is(s, n, "option_text")) {
    if (st->per_option) return LS_OK;
    return ls_err_set(err, LS_EFORMAT, "%s: \"{%.*s}\" is only allowed in a per_option stage", c->where, (int)n, s);
  }
  for (int j = 0; j < c->t->n_stages; j++) {
    if (!name_is(s, n, c->t->stages[j].name)) continue;
    if (j >= c->stage)
      return ls_err_set(err, LS_EFORMAT, "%s: \"{%.*s}\" refers to a stage that is not before this one", c->where,
                        (int)n, s);
    return LS_OK;
  }
  return ls_err_set(err, LS_EFORMAT, "%s: unknown placeholder \"{%.*s}\"", c->where, (int)n, s);
}

/* ---- answer_regex budget --------------------------------------------------- */

/* glibc's regcomp copies a repeated sub-expression once per repetition ("x+" is
 * "xx*", "x{2,5}" five copies), so nesting multiplies: 22 stacked '+' take
 * gigabytes. Before compiling, the regex's compiled size is estimated with the
 * same rule (an atom is 1, a group the sum of its branches, "+" doubles, {m,n}
 * multiplies by max(m, n, 1)) and refused over a budget; a quantifier directly
 * after another (x++, x*{2}) is refused outright (POSIX leaves it undefined). */
typedef struct re_scan {
  const char *s, *p;
  int stacked_at;    /* offset of a stacked quantifier, or -1 */
} re_scan;

static double re_alt(re_scan *r, int depth);

/* Skips a bracket expression "[...]" (r->p at '['), with "[:alpha:]"-style classes. */
static void re_skip_bracket(re_scan *r) {
  const char *p = r->p + 1;
  if (*p == '^') p++;
  if (*p == ']') p++;
  while (*p && *p != ']') {
    if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
      const char *end = strchr(p + 2, p[1]);
      while (end && end[1] != ']') end = strchr(end + 1, p[1]);
      p = end ? end + 2 : p + 1;
    } else {
      p++;
    }
  }
  r->p = *p ? p + 1 : p;
}

/* A quantifier at r->p: its multiplier (0 if none); r->p moves past it. */
static double re_quantifier(re_scan *r) {
  const char *p = r->p;
  if (*p == '*' || *p == '?') return r->p++, 1.0;
  if (*p == '+') return r->p++, 2.0;
  if (*p != '{' || p[1] < '0' || p[1] > '9') return 0;
  char *end;
  double lo = (double)strtol(p + 1, &end, 10), hi = lo;
  if (*end == ',') hi = end[1] == '}' ? lo + 1 : (double)strtol(end + 1, &end, 10);
  if (*end == ',') end++;
  if (*end != '}') return 0; /* malformed: regcomp says so */
  r->p = end + 1;
  return hi > 1 ? hi : 1;
}

static double re_piece(re_scan *r, int depth) {
  double size = 1;
  if (*r->p == '(') {
    r->p++;
    size = re_alt(r, depth + 1);
    if (*r->p == ')') r->p++;
  } else if (*r->p == '[') {
    re_skip_bracket(r);
  } else {
    r->p += (r->p[0] == '\\' && r->p[1]) ? 2 : 1;
  }
  const char *q = r->p;
  double k = re_quantifier(r);
  if (k == 0) return size;
  size *= k;
  if (re_quantifier(r) != 0 && r->stacked_at < 0) r->stacked_at = (int)(q - r->s);
  return size;
}

static double re_alt(re_scan *r, int depth) {
  double size = 0;
  if (depth > 64) return 1e300; /* deeper than any sensible answer regex */
  while (*r->p && !(*r->p == ')' && depth > 0)) {
    if (*r->p == '|') r->p++;
    else size += re_piece(r, depth);
  }
  return size;
}

static int check_answer_regex(const char *re, const char *where, ls_err *err) {
  size_t len = strlen(re);
  if (len > LS_TEMPLATE_MAX_REGEX_LEN)
    return ls_err_set(err, LS_EFORMAT, "%s: answer_regex is %zu bytes, at most %d", where, len,
                      LS_TEMPLATE_MAX_REGEX_LEN);
  re_scan r = {.s = re, .p = re, .stacked_at = -1};
  double size = re_alt(&r, 0);
  if (r.stacked_at >= 0)
    return ls_err_set(err, LS_EFORMAT, "%s: answer_regex \"%s\": stacked quantifiers at offset %d (repeat a group "
                      "instead)", where, re, r.stacked_at);
  if (size > LS_TEMPLATE_MAX_REGEX_STATES)
    return ls_err_set(err, LS_EFORMAT, "%s: answer_regex \"%s\" compiles to about %.3g copies of its atoms, at most "
                      "%d (nested or bounded repetition)", where, re, size, LS_TEMPLATE_MAX_REGEX_STATES);
  return LS_OK;
}

/* ---- loading -------------------------------------------------------------- */

static int valid_stage_name(const char *s) {
  if (!*s) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
  return 1;
}

static int load_stage(ls_template *t, int i, const json_t *js, const char *path, int last, ls_err *err) {
  ls_stage_def *st = &t->stages[i];
  char where[512];
  snprintf(where, sizeof where, "%s: stages[%d]", path, i);
  if (!json_is_object(js)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object", where);
  static const char *const keys[] = {"name", "prompt", "per_option", "max_new_tokens", "stop", "join",
                                     "keep_stop", "answer_regex", "answer_ignore_case", "description", NULL};
  LS_TRY(ls_json_check_keys(js, keys, where, err));

  const char *s;
  LS_TRY(ls_json_get_string(js, "name", where, &s, err));
  if (!valid_stage_name(s) || is_reserved(s, strlen(s)))
    return ls_err_set(err, LS_EFORMAT, "%s: stage name \"%s\" must match [a-z0-9_]+ and not be one of question, "
                      "options, opening, option, option_text, output", where, s);
  for (int j = 0; j < i; j++)
    if (strcmp(t->stages[j].name, s) == 0) return ls_err_set(err, LS_EFORMAT, "%s: duplicate stage name \"%s\"", where, s);
  if (!(st->name = ls_dupstr(s, err))) return err ? err->code : LS_ENOMEM;
  snprintf(where, sizeof where, "%s: stage \"%s\"", path, st->name);

  LS_TRY(ls_json_get_string(js, "prompt", where, &s, err));
  if (!(st->prompt = ls_dupstr(s, err))) return err ? err->code : LS_ENOMEM;
  LS_TRY(ls_json_opt_bool(js, "per_option", where, 0, &st->per_option, err));
  long long mnt;
  LS_TRY(ls_json_get_int(js, "max_new_tokens", where, &mnt, err));
  if (mnt <= 0 || mnt > 1000000)
    return ls_err_set(err, LS_EFORMAT, "%s: max_new_tokens %lld must be in 1..1000000", where, mnt);
  st->max_new_tokens = (int)mnt;

  json_t *stop = json_object_get(js, "stop");
  if (stop && !json_is_null(stop)) {
    if (!json_is_array(stop)) return ls_err_set(err, LS_EFORMAT, "%s: key \"stop\": expected an array of strings", where);
    size_t n = json_array_size(stop);
    if (n > LS_TEMPLATE_MAX_STOPS)
      return ls_err_set(err, LS_EFORMAT, "%s: %zu stop strings, at most %d", where, n, LS_TEMPLATE_MAX_STOPS);
    st->stop = calloc(n ? n : 1, sizeof *st->stop);
    if (!st->stop) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", where);
    for (size_t k = 0; k < n; k++) {
      json_t *e = json_array_get(stop, k);
      if (!json_is_string(e) || json_string_length(e) == 0)
        return ls_err_set(err, LS_EFORMAT, "%s: stop[%zu] must be a non-empty string", where, k);
      if (json_string_length(e) > LS_TEMPLATE_MAX_STOP_LEN)
        return ls_err_set(err, LS_EFORMAT, "%s: stop[%zu] is %zu bytes, at most %d", where, k, json_string_length(e),
                          LS_TEMPLATE_MAX_STOP_LEN);
      if (!(st->stop[k] = ls_dupstr(json_string_value(e), err))) return err ? err->code : LS_ENOMEM;
      st->n_stop = (int)k + 1;
    }
  }

  LS_TRY(ls_json_opt_bool(js, "keep_stop", where, 0, &st->keep_stop, err));
  if (st->keep_stop && st->n_stop == 0) return ls_err_set(err, LS_EFORMAT, "%s: keep_stop without stop strings", where);

  json_t *join = json_object_get(js, "join");
  const char *item = "{output}", *sep = " ";
  if (join && !json_is_null(join)) {
    char jw[560];
    snprintf(jw, sizeof jw, "%s: join", where);
    if (!st->per_option) return ls_err_set(err, LS_EFORMAT, "%s: \"join\" needs \"per_option\": true", where);
    if (!json_is_object(join)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object", jw);
    static const char *const jkeys[] = {"item", "separator", "ensure_period", NULL};
    LS_TRY(ls_json_check_keys(join, jkeys, jw, err));
    LS_TRY(ls_json_opt_string(join, "item", jw, item, &item, err));
    LS_TRY(ls_json_opt_string(join, "separator", jw, sep, &sep, err));
    LS_TRY(ls_json_opt_bool(join, "ensure_period", jw, 0, &st->join_ensure_period, err));
  }
  if (!(st->join_item = ls_dupstr(item, err)) || !(st->join_separator = ls_dupstr(sep, err)))
    return err ? err->code : LS_ENOMEM;

  const char *re = NULL;
  LS_TRY(ls_json_opt_string(js, "answer_regex", where, NULL, &re, err));
  int icase = 0;
  LS_TRY(ls_json_opt_bool(js, "answer_ignore_case", where, 0, &icase, err));
  if (re && !last) return ls_err_set(err, LS_EFORMAT, "%s: only the last stage may have an answer_regex", where);
  if (!re && json_object_get(js, "answer_ignore_case"))
    return ls_err_set(err, LS_EFORMAT, "%s: answer_ignore_case without answer_regex", where);
  if (re) {
    LS_TRY(check_answer_regex(re, where, err));
    if (!(t->answer_regex = ls_dupstr(re, err))) return err ? err->code : LS_ENOMEM;
    t->answer_ignore_case = icase;
    int rc = regcomp(&t->answer_re, re, REG_EXTENDED | (icase ? REG_ICASE : 0));
    if (rc != 0) {
      char buf[256];
      regerror(rc, &t->answer_re, buf, sizeof buf);
      return ls_err_set(err, LS_EFORMAT, "%s: answer_regex \"%s\": %s", where, re, buf);
    }
    t->has_answer_re = 1;
    if (t->answer_re.re_nsub < 1)
      return ls_err_set(err, LS_EFORMAT, "%s: answer_regex \"%s\" needs a group \"(...)\" capturing the option letter",
                        where, re);
  }
  return LS_OK;
}

static int load_template(ls_template *t, const json_t *root, const char *path, ls_err *err) {
  if (!json_is_object(root)) return ls_err_set(err, LS_EFORMAT, "%s: expected a JSON object", path);
  static const char *const keys[] = {"name", "description", "stages", NULL};
  LS_TRY(ls_json_check_keys(root, keys, path, err));
  const char *s;
  LS_TRY(ls_json_get_string(root, "name", path, &s, err));
  if (!(t->name = ls_dupstr(s, err))) return err ? err->code : LS_ENOMEM;
  LS_TRY(ls_json_opt_string(root, "description", path, NULL, &s, err));
  if (s && !(t->description = ls_dupstr(s, err))) return err ? err->code : LS_ENOMEM;
  json_t *stages;
  LS_TRY(ls_json_get_array(root, "stages", path, &stages, err));
  size_t n = json_array_size(stages);
  if (n == 0 || n > LS_TEMPLATE_MAX_STAGES)
    return ls_err_set(err, LS_EFORMAT, "%s: %zu stages; a template has 1..%d", path, n, LS_TEMPLATE_MAX_STAGES);
  t->stages = calloc(n, sizeof *t->stages);
  if (!t->stages) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < n; i++) {
    t->n_stages = (int)i + 1; /* so that free() sees what was allocated */
    LS_TRY(load_stage(t, (int)i, json_array_get(stages, i), path, i + 1 == n, err));
  }
  /* placeholders, now that every stage name is known */
  for (int i = 0; i < t->n_stages; i++) {
    char where[512];
    snprintf(where, sizeof where, "%s: stage \"%s\": prompt", path, t->stages[i].name);
    check_ctx c = {t, i, 0, where};
    LS_TRY(scan_template(t->stages[i].prompt, where, check_piece, &c, err));
    snprintf(where, sizeof where, "%s: stage \"%s\": join item", path, t->stages[i].name);
    c.join = 1;
    LS_TRY(scan_template(t->stages[i].join_item, where, check_piece, &c, err));
  }
  return LS_OK;
}

int ls_template_load(const char *path, ls_template **out, ls_err *err) {
  *out = NULL;
  json_t *root;
  LS_TRY(ls_json_load_file(path, &root, err));
  ls_template *t = calloc(1, sizeof *t);
  if (!t) {
    json_decref(root);
    return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  }
  int rc = (t->path = ls_dupstr(path, err)) ? load_template(t, root, path, err) : LS_ENOMEM;
  json_decref(root);
  if (rc != LS_OK) {
    ls_template_free(t);
    return rc;
  }
  *out = t;
  return LS_OK;
}

void ls_template_free(ls_template *t) {
  if (!t) return;
  for (int i = 0; i < t->n_stages; i++) {
    ls_stage_def *st = &t->stages[i];
    free(st->name);
    free(st->prompt);
    for (int k = 0; k < st->n_stop; k++) free(st->stop[k]);
    free(st->stop);
    free(st->join_item);
    free(st->join_separator);
  }
  free(t->stages);
  if (t->has_answer_re) regfree(&t->answer_re);
  free(t->answer_regex);
  free(t->name);
  free(t->description);
  free(t->path);
  free(t);
}

/* ---- rendering ------------------------------------------------------------ */

int ls_render_options(const ls_example *ex, ls_strbuf *out, ls_err *err) {
  for (int i = 0; i < ex->n_options; i++) {
    if (i) LS_TRY(ls_strbuf_appendc(out, ' ', err));
    LS_TRY(ls_strbuf_appendf(out, err, "(%c) %s", ls_option_letter(i), ex->options[i]));
  }
  return LS_OK;
}

typedef struct render_ctx {
  const ls_template *t;
  int stage;
  const ls_example *ex;
  const ls_stage_text *prev;
  int option;
  const char *output; /* join items: the trimmed output */
  size_t output_len;
  int add_period;
  ls_strbuf *out;
  const char *where;
} render_ctx;

static int render_piece(void *vctx, int kind, const char *s, size_t n, ls_err *err) {
  render_ctx *c = vctx;
  const ls_example *ex = c->ex;
  const char *id = ex->id ? ex->id : "?";
  if (kind == 0) return ls_strbuf_appendn(c->out, s, n, err);
  if (name_is(s, n, "question")) {
    if (!ex->question) return ls_err_set(err, LS_EINVAL, "%s: example %s has no question", c->where, id);
    return ls_strbuf_append(c->out, ex->question, err);
  }
  if (name_is(s, n, "opening")) {
    if (!ex->opening) return ls_err_set(err, LS_EINVAL, "%s: example %s has no story opening", c->where, id);
    return ls_strbuf_append(c->out, ex->opening, err);
  }
  if (name_is(s, n, "options")) {
    if (ex->n_options <= 0) return ls_err_set(err, LS_EINVAL, "%s: example %s has no options", c->where, id);
    return ls_render_options(ex, c->out, err);
  }
  if (name_is(s, n, "option")) return ls_strbuf_appendc(c->out, ls_option_letter(c->option), err);
  if (name_is(s, n, "option_text")) return ls_strbuf_append(c->out, ex->options[c->option], err);
  if (name_is(s, n, "output")) {
    LS_TRY(ls_strbuf_appendn(c->out, c->output, c->output_len, err));
    return c->add_period ? ls_strbuf_appendc(c->out, '.', err) : LS_OK;
  }
  for (int j = 0; j < c->stage; j++)
    if (name_is(s, n, c->t->stages[j].name)) {
      if (!c->prev) return ls_err_set(err, LS_EINVAL, "%s: no outputs given for earlier stages", c->where);
      return ls_template_join_outputs(c->t, j, ex, &c->prev[j], c->out, err);
    }
  /* load_template refused anything else */
  return ls_err_set(err, LS_ESTATE, "%s: unexpected placeholder \"{%.*s}\"", c->where, (int)n, s);
}

static int check_stage(const ls_template *t, int stage, ls_err *err) {
  if (stage < 0 || stage >= t->n_stages)
    return ls_err_set(err, LS_EINVAL, "%s: stage %d out of range (template has %d)", t->path, stage, t->n_stages);
  return LS_OK;
}

int ls_template_join_outputs(const ls_template *t, int stage, const ls_example *ex, const ls_stage_text *outputs,
                             ls_strbuf *out, ls_err *err) {
  LS_TRY(check_stage(t, stage, err));
  const ls_stage_def *st = &t->stages[stage];
  const char *id = ex->id ? ex->id : "?";
  int want = st->per_option ? ex->n_options : 1;
  if (!outputs || outputs->n != want || (want > 0 && !outputs->text))
    return ls_err_set(err, LS_EINVAL, "%s: stage \"%s\": example %s needs %d output(s), got %d", t->path, st->name, id,
                      want, outputs ? outputs->n : 0);
  for (int k = 0; k < want; k++) {
    const char *raw = outputs->text[k] ? outputs->text[k] : "";
    size_t a, len;
    ls_text_trim_span(raw, strlen(raw), &a, &len);
    if (!st->per_option) return ls_strbuf_appendn(out, raw + a, len, err);
    if (k) LS_TRY(ls_strbuf_append(out, st->join_separator, err));
    int add_period = st->join_ensure_period && !(len > 0 && raw[a + len - 1] == '.');
    render_ctx c = {t, stage, ex, NULL, k, raw + a, len, add_period, out, t->path};
    LS_TRY(scan_template(st->join_item, t->path, render_piece, &c, err));
  }
  return LS_OK;
}

int ls_template_render(const ls_template *t, int stage, const ls_example *ex, const ls_stage_text *prev, int option,
                       ls_strbuf *out, ls_err *err) {
  LS_TRY(check_stage(t, stage, err));
  const ls_stage_def *st = &t->stages[stage];
  ls_strbuf_clear(out);
  if (st->per_option && (option < 0 || option >= ex->n_options))
    return ls_err_set(err, LS_EINVAL, "%s: stage \"%s\": option %d out of range for example %s (%d options)", t->path,
                      st->name, option, ex->id ? ex->id : "?", ex->n_options);
  char where[512];
  snprintf(where, sizeof where, "%s: stage \"%s\"", t->path, st->name);
  render_ctx c = {t, stage, ex, prev, st->per_option ? option : -1, NULL, 0, 0, out, where};
  return scan_template(st->prompt, where, render_piece, &c, err);
}

/* ---- generation helpers --------------------------------------------------- */

int ls_template_find_stop(const ls_template *t, int stage, const char *text, size_t len, size_t from, size_t *cut) {
  if (stage < 0 || stage >= t->n_stages) return 0;
  const ls_stage_def *st = &t->stages[stage];
  int found = 0;
  size_t best = 0, best_len = 0;
  for (int k = 0; k < st->n_stop; k++) {
    const char *s = st->stop[k];
    size_t n = strlen(s);
    for (size_t i = from; i + n <= len && (!found || i < best); i++)
      if (text[i] == s[0] && memcmp(text + i, s, n) == 0) {
        found = 1;
        best = i;
        best_len = n;
        break;
      }
  }
  if (found) *cut = best + (st->keep_stop ? best_len : 0);
  return found;
}

size_t ls_template_max_stop_len(const ls_template *t, int stage) {
  if (stage < 0 || stage >= t->n_stages) return 0;
  size_t m = 0;
  for (int k = 0; k < t->stages[stage].n_stop; k++) {
    size_t n = strlen(t->stages[stage].stop[k]);
    if (n > m) m = n;
  }
  return m;
}

int ls_template_extract_answer(const ls_template *t, const char *text, int *option) {
  *option = -1;
  if (!t->has_answer_re || !text) return 0;
  const char *p = text;
  regmatch_t m[2];
  int flags = 0;
  while (*p && regexec(&t->answer_re, p, 2, m, flags) == 0) {
    if (m[1].rm_so >= 0 && m[1].rm_eo == m[1].rm_so + 1) {
      char c = p[m[1].rm_so];
      if (c >= 'A' && c <= 'Z') {
        *option = c - 'A';
        return 1;
      }
    }
    /* not an upper-case letter (e.g. "option b" under answer_ignore_case): look further,
     * unless the match was the empty string at the very end ("([A-Z])?$") */
    if (!p[m[0].rm_so]) break;
    p += m[0].rm_so + 1;
    flags = REG_NOTBOL;
  }
  return 0;
}
