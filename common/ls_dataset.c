#include "ls_dataset.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_json.h"
#include "ls_strbuf.h"
#include "ls_util.h"

/* ---- arena: every string and option array of a dataset ------------------- */

struct ls_dataset_arena {
  void **ptrs;
  int n, cap;
};

static void *arena_keep(ls_dataset *ds, void *p, ls_err *err) {
  struct ls_dataset_arena *a = ds->arena;
  if (!p) {
    ls_err_set(err, LS_ENOMEM, "%s: out of memory", ds->path);
    return NULL;
  }
  if (a->n == a->cap) {
    int cap = a->cap ? 2 * a->cap : 256;
    void **q = realloc(a->ptrs, (size_t)cap * sizeof *q);
    if (!q) {
      free(p);
      ls_err_set(err, LS_ENOMEM, "%s: out of memory", ds->path);
      return NULL;
    }
    a->ptrs = q;
    a->cap = cap;
  }
  a->ptrs[a->n++] = p;
  return p;
}

static char *arena_strndup(ls_dataset *ds, const char *s, size_t n, ls_err *err) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return arena_keep(ds, p, err);
}

static char *arena_strdup(ls_dataset *ds, const char *s, ls_err *err) { return arena_strndup(ds, s, strlen(s), err); }

/* A new example at the end of ds->ex (zeroed, answer -1). */
static ls_example *push_example(ls_dataset *ds, int *cap, ls_err *err) {
  if (ds->n == *cap) {
    int c = *cap ? 2 * *cap : 256;
    ls_example *e = realloc(ds->ex, (size_t)c * sizeof *e);
    if (!e) {
      ls_err_set(err, LS_ENOMEM, "%s: out of memory", ds->path);
      return NULL;
    }
    ds->ex = e;
    *cap = c;
  }
  ls_example *ex = &ds->ex[ds->n++];
  memset(ex, 0, sizeof *ex);
  ex->answer = -1;
  return ex;
}

static int set_options(ls_dataset *ds, ls_example *ex, const char *const *texts, int n, ls_err *err) {
  const char **opts = arena_keep(ds, calloc((size_t)(n ? n : 1), sizeof *opts), err);
  if (!opts) return err ? err->code : LS_ENOMEM;
  for (int i = 0; i < n; i++)
    if (!(opts[i] = arena_strdup(ds, texts[i], err))) return err ? err->code : LS_ENOMEM;
  ex->options = opts;
  ex->n_options = n;
  return LS_OK;
}

/* ---- formats -------------------------------------------------------------- */

static const struct {
  int format;
  const char *name;
} FORMATS[] = {
    {LS_DS_AUTO, "auto"}, {LS_DS_OBQA, "obqa"}, {LS_DS_CSQA, "csqa"}, {LS_DS_BIGBENCH, "strategyqa-bigbench"},
    {LS_DS_BIGBENCH, "bigbench"}, {LS_DS_KARD, "kard"}, {LS_DS_PLAIN, "plain"}, {LS_DS_STORIES, "stories"},
};

int ls_dataset_format_parse(const char *name, int *format, ls_err *err) {
  for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
    if (strcmp(name, FORMATS[i].name) == 0) {
      *format = FORMATS[i].format;
      return LS_OK;
    }
  return ls_err_set(err, LS_EINVAL, "--format %s: unknown dataset format (auto, obqa, csqa, strategyqa-bigbench, "
                    "kard, plain, stories)", name);
}

const char *ls_dataset_format_name(int format) {
  for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
    if (FORMATS[i].format == format) return FORMATS[i].name;
  return "?";
}

/* ---- JSON lines ----------------------------------------------------------- */

/* OBQA / CSQA: {"id", "question": {"stem", "choices": [{"label", "text"}]}, "answerKey"}. */
static int parse_obqa(ls_dataset *ds, ls_example *ex, const json_t *o, const char *where, ls_err *err) {
  const char *s;
  json_t *q, *choices;
  LS_TRY(ls_json_get_string(o, "id", where, &s, err));
  if (!(ex->id = arena_strdup(ds, s, err))) return err ? err->code : LS_ENOMEM;
  LS_TRY(ls_json_get_object(o, "question", where, &q, err));
  LS_TRY(ls_json_get_string(q, "stem", where, &s, err));
  if (!(ex->question = arena_strdup(ds, s, err))) return err ? err->code : LS_ENOMEM;
  LS_TRY(ls_json_get_array(q, "choices", where, &choices, err));
  size_t n = json_array_size(choices);
  if (n < 1 || n > LS_MAX_OPTIONS)
    return ls_err_set(err, LS_EFORMAT, "%s: %zu choices (1..%d allowed)", where, n, LS_MAX_OPTIONS);
  const char *texts[LS_MAX_OPTIONS];
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(choices, i);
    const char *label;
    char cw[600];
    snprintf(cw, sizeof cw, "%s: choices[%zu]", where, i);
    LS_TRY(ls_json_get_string(c, "label", cw, &label, err));
    LS_TRY(ls_json_get_string(c, "text", cw, &texts[i], err));
    if (label[0] != ls_option_letter((int)i) || label[1])
      return ls_err_set(err, LS_EFORMAT, "%s: label \"%s\", expected \"%c\" (choices must be labelled A, B, ... in "
                        "order)", cw, label, ls_option_letter((int)i));
  }
  LS_TRY(set_options(ds, ex, texts, (int)n, err));
  const char *key;
  LS_TRY(ls_json_opt_string(o, "answerKey", where, NULL, &key, err));
  if (key) {
    if (!(key[0] >= 'A' && key[0] < 'A' + (int)n && !key[1]))
      return ls_err_set(err, LS_EFORMAT, "%s: answerKey \"%s\" is not one of the %zu choice labels", where, key, n);
    ex->answer = key[0] - 'A';
  }
  return LS_OK;
}

/* KARD SWAG form: {"id", "sent1", "ending0".."ending3", "label"}; the non-empty endings are the options. */
static int parse_kard(ls_dataset *ds, ls_example *ex, const json_t *o, const char *where, ls_err *err) {
  const char *s;
  LS_TRY(ls_json_get_string(o, "id", where, &s, err));
  if (!(ex->id = arena_strdup(ds, s, err))) return err ? err->code : LS_ENOMEM;
  LS_TRY(ls_json_get_string(o, "sent1", where, &s, err));
  if (!(ex->question = arena_strdup(ds, s, err))) return err ? err->code : LS_ENOMEM;
  const char *texts[4];
  int n = 0;
  for (int i = 0; i < 4; i++) {
    char key[16];
    snprintf(key, sizeof key, "ending%d", i);
    const char *e;
    if (i < 2) LS_TRY(ls_json_get_string(o, key, where, &e, err));
    else LS_TRY(ls_json_opt_string(o, key, where, "", &e, err));
    if (!e[0]) {
      if (i < 2) return ls_err_set(err, LS_EFORMAT, "%s: \"%s\" is empty", where, key);
      continue;
    }
    if (n != i) return ls_err_set(err, LS_EFORMAT, "%s: \"%s\" follows an empty ending", where, key);
    texts[n++] = e;
  }
  LS_TRY(set_options(ds, ex, texts, n, err));
  long long label;
  LS_TRY(ls_json_get_int(o, "label", where, &label, err));
  if (label < 0 || label >= n)
    return ls_err_set(err, LS_EFORMAT, "%s: label %lld is not an index of the %d endings", where, label, n);
  ex->answer = (int)label;
  return LS_OK;
}

/* Plain: {"id"?, "question", "options": [...], "answer"?}; answer is a letter "A".., a 0-based integer, or
 * absent/null (unlabelled). id is a string or integer; absent: the 0-based record index. */
static int parse_plain(ls_dataset *ds, ls_example *ex, const json_t *o, const char *where, ls_err *err) {
  const char *s;
  char buf[32];
  json_t *id = json_object_get(o, "id");
  if (!id || json_is_null(id)) {
    snprintf(buf, sizeof buf, "%d", ds->n - 1);
    s = buf;
  } else if (json_is_integer(id)) {
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    s = buf;
  } else if (json_is_string(id)) {
    s = json_string_value(id);
  } else {
    return ls_err_set(err, LS_EFORMAT, "%s: key \"id\": expected a string or an integer", where);
  }
  if (!(ex->id = arena_strdup(ds, s, err))) return err ? err->code : LS_ENOMEM;
  LS_TRY(ls_json_get_string(o, "question", where, &s, err));
  if (!(ex->question = arena_strdup(ds, s, err))) return err ? err->code : LS_ENOMEM;
  json_t *opts;
  LS_TRY(ls_json_get_array(o, "options", where, &opts, err));
  size_t n = json_array_size(opts);
  if (n < 1 || n > LS_MAX_OPTIONS)
    return ls_err_set(err, LS_EFORMAT, "%s: %zu options (1..%d allowed)", where, n, LS_MAX_OPTIONS);
  const char *texts[LS_MAX_OPTIONS];
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(opts, i);
    if (!json_is_string(e)) return ls_err_set(err, LS_EFORMAT, "%s: options[%zu] is not a string", where, i);
    texts[i] = json_string_value(e);
  }
  LS_TRY(set_options(ds, ex, texts, (int)n, err));
  json_t *a = json_object_get(o, "answer");
  if (!a || json_is_null(a)) return LS_OK;
  if (json_is_integer(a)) {
    json_int_t v = json_integer_value(a);
    if (v < 0 || v >= (json_int_t)n)
      return ls_err_set(err, LS_EFORMAT, "%s: answer %" JSON_INTEGER_FORMAT " is not an index of the %zu options",
                        where, v, n);
    ex->answer = (int)v;
  } else if (json_is_string(a)) {
    const char *l = json_string_value(a);
    if (!(l[0] >= 'A' && l[0] < 'A' + (int)n && !l[1]))
      return ls_err_set(err, LS_EFORMAT, "%s: answer \"%s\" is not one of the letters A..%c", where, l,
                        ls_option_letter((int)n - 1));
    ex->answer = l[0] - 'A';
  } else {
    return ls_err_set(err, LS_EFORMAT, "%s: key \"answer\": expected a letter, a 0-based index or null", where);
  }
  return LS_OK;
}

static int detect_jsonl(const json_t *o) {
  if (!json_is_object(o)) return LS_DS_AUTO;
  if (json_object_get(o, "sent1") && json_object_get(o, "ending0")) return LS_DS_KARD;
  json_t *q = json_object_get(o, "question");
  if (json_is_object(q)) return json_object_get(q, "question_concept") ? LS_DS_CSQA : LS_DS_OBQA;
  if (json_is_string(q) && json_object_get(o, "options")) return LS_DS_PLAIN;
  return LS_DS_AUTO;
}

static int load_jsonl(ls_dataset *ds, const char *text, size_t len, ls_err *err) {
  int cap = 0, line = 0;
  const char *p = text, *end = text + len;
  char where[512];
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    line++;
    const char *q = p;
    while (q < le && isspace((unsigned char)*q)) q++;
    if (q < le) {
      snprintf(where, sizeof where, "%s:%d", ds->path, line);
      json_t *o;
      LS_TRY(ls_json_load_text(p, (size_t)(le - p), ds->path, line, &o, err));
      if (ds->format == LS_DS_AUTO) {
        ds->format = detect_jsonl(o);
        if (ds->format == LS_DS_AUTO) {
          json_decref(o);
          return ls_err_set(err, LS_EFORMAT, "%s: cannot tell the dataset format from this record; name it with "
                            "--format (obqa, csqa, kard, plain, ...)", where);
        }
      }
      int rc;
      ls_example *ex = push_example(ds, &cap, err);
      if (!ex) rc = err ? err->code : LS_ENOMEM;
      else if (!json_is_object(o)) rc = ls_err_set(err, LS_EFORMAT, "%s: expected a JSON object", where);
      else {
        ex->line = line;
        switch (ds->format) {
        case LS_DS_OBQA:
        case LS_DS_CSQA: rc = parse_obqa(ds, ex, o, where, err); break;
        case LS_DS_KARD: rc = parse_kard(ds, ex, o, where, err); break;
        case LS_DS_PLAIN: rc = parse_plain(ds, ex, o, where, err); break;
        default: rc = ls_err_set(err, LS_EINVAL, "%s: format %s is not JSON lines", ds->path, ls_dataset_format_name(ds->format));
        }
      }
      json_decref(o);
      LS_TRY(rc);
    }
    p = nl ? nl + 1 : end;
  }
  return LS_OK;
}

/* ---- BIG-bench task.json -------------------------------------------------- */

/* Line numbers of the elements of the top-level "examples" array (jansson keeps no positions):
 * a small scanner over strings and brackets. lines[k] = 1-based line of examples[k]. */
static void bigbench_lines(const char *text, size_t len, int *lines, int n) {
  int depth = 0, line = 1, in_ex = 0, k = 0, last_key_examples = 0;
  for (size_t i = 0; i < len && k < n; i++) {
    char c = text[i];
    if (c == '\n') line++;
    else if (c == '"') {
      size_t s = i + 1;
      for (i++; i < len && text[i] != '"'; i++)
        if (text[i] == '\\') i++;
        else if (text[i] == '\n') line++;
      if (depth == 1) last_key_examples = (i - s == 8 && memcmp(text + s, "examples", 8) == 0);
    } else if (c == '{' || c == '[') {
      if (in_ex && depth == 2) lines[k++] = line;
      if (depth == 1 && c == '[' && last_key_examples) in_ex = 1;
      depth++;
    } else if (c == '}' || c == ']') {
      depth--;
      if (depth == 1) in_ex = 0;
    }
  }
  for (; k < n; k++) lines[k] = 0;
}

static int load_bigbench(ls_dataset *ds, const json_t *root, const char *text, size_t len, ls_err *err) {
  json_t *examples;
  LS_TRY(ls_json_get_array(root, "examples", ds->path, &examples, err));
  size_t n = json_array_size(examples);
  int *lines = calloc(n ? n : 1, sizeof *lines);
  if (!lines) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", ds->path);
  bigbench_lines(text, len, lines, (int)n);
  int cap = 0, rc = LS_OK;
  static const char *const yes_no[2] = {"yes", "no"};
  for (size_t i = 0; i < n && rc == LS_OK; i++) {
    char where[512];
    if (lines[i]) snprintf(where, sizeof where, "%s:%d: examples[%zu]", ds->path, lines[i], i);
    else snprintf(where, sizeof where, "%s: examples[%zu]", ds->path, i);
    json_t *e = json_array_get(examples, i), *scores;
    const char *input;
    ls_example *ex = push_example(ds, &cap, err);
    if (!ex) {
      rc = err ? err->code : LS_ENOMEM;
      break;
    }
    ex->line = lines[i];
    if ((rc = ls_json_get_string(e, "input", where, &input, err)) != LS_OK) break;
    if ((rc = ls_json_get_object(e, "target_scores", where, &scores, err)) != LS_OK) break;
    json_t *y = json_object_get(scores, "Yes"), *no = json_object_get(scores, "No");
    if (json_object_size(scores) != 2 || !json_is_number(y) || !json_is_number(no) ||
        json_number_value(y) + json_number_value(no) != 1.0 ||
        (json_number_value(y) != 1.0 && json_number_value(no) != 1.0)) {
      rc = ls_err_set(err, LS_EFORMAT, "%s: target_scores must be {\"Yes\": 1, \"No\": 0} or {\"Yes\": 0, \"No\": 1}",
                      where);
      break;
    }
    char id[32];
    snprintf(id, sizeof id, "bigbench-%zu", i);
    if (!(ex->id = arena_strdup(ds, id, err)) || !(ex->question = arena_strdup(ds, input, err))) {
      rc = err ? err->code : LS_ENOMEM;
      break;
    }
    if ((rc = set_options(ds, ex, yes_no, 2, err)) != LS_OK) break;
    ex->answer = json_number_value(y) == 1.0 ? 0 : 1;
  }
  free(lines);
  return rc;
}

/* ---- story openings ------------------------------------------------------- */

/* First sentence of s[0..n): up to the first '.', '!' or '?' (with any closing quotes after it) that is
 * followed by whitespace or the end; the whole text if there is none. */
static size_t first_sentence(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '.' && s[i] != '!' && s[i] != '?') continue;
    size_t j = i + 1;
    while (j < n && (s[j] == '"' || s[j] == '\'')) j++;
    /* UTF-8 right double/single quotation marks U+201D, U+2019 */
    while (j + 2 < n && (unsigned char)s[j] == 0xE2 && (unsigned char)s[j + 1] == 0x80 &&
           ((unsigned char)s[j + 2] == 0x9D || (unsigned char)s[j + 2] == 0x99))
      j += 3;
    if (j >= n || isspace((unsigned char)s[j])) return j;
  }
  return n;
}

static int add_story(ls_dataset *ds, int *cap, const char *s, size_t n, int line, ls_err *err) {
  size_t a, len;
  ls_text_trim_span(s, n, &a, &len);
  if (len == 0) return LS_OK;
  /* the opening never spans a paragraph break */
  const char *nl = memchr(s + a, '\n', len);
  if (nl) len = (size_t)(nl - (s + a));
  len = first_sentence(s + a, len);
  ls_example *ex = push_example(ds, cap, err);
  if (!ex) return err ? err->code : LS_ENOMEM;
  char id[32];
  snprintf(id, sizeof id, "story-%d", ds->n - 1);
  ex->line = line;
  if (!(ex->id = arena_strdup(ds, id, err)) || !(ex->opening = arena_strndup(ds, s + a, len, err)))
    return err ? err->code : LS_ENOMEM;
  ex->question = ex->opening;
  return LS_OK;
}

static int starts_story(const char *s, size_t n) {
  static const char *const starts[] = {"Once upon a time", "Once there ", NULL};
  for (const char *const *p = starts; *p; p++) {
    size_t k = strlen(*p);
    if (n >= k && memcmp(s, *p, k) == 0) return 1;
  }
  return 0;
}

static int load_stories(ls_dataset *ds, const char *text, size_t len, ls_err *err) {
  int cap = 0;
  static const char SEP[] = "<|endoftext|>";
  if (memmem(text, len, SEP, sizeof SEP - 1)) {
    /* the original TinyStories text files: stories separated by <|endoftext|> */
    const char *p = text, *end = text + len;
    int line = 1;
    while (p < end) {
      const char *q = memmem(p, (size_t)(end - p), SEP, sizeof SEP - 1);
      const char *e = q ? q : end;
      /* line of the first non-blank character */
      int l = line;
      const char *f = p;
      while (f < e && isspace((unsigned char)*f)) l += (*f++ == '\n');
      LS_TRY(add_story(ds, &cap, p, (size_t)(e - p), l, err));
      for (const char *c = p; c < e; c++) line += (*c == '\n');
      p = q ? q + sizeof SEP - 1 : end;
    }
    return LS_OK;
  }
  /* no separators (as in data/corpora/tinystories_val_subset.txt): paragraphs are separated by blank
   * lines and a story starts at a paragraph that begins with "Once upon a time" or "Once there ". */
  const char *p = text, *end = text + len;
  int line = 0, at_par_start = 1;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    line++;
    const char *q = p;
    while (q < le && isspace((unsigned char)*q)) q++;
    if (q == le) {
      at_par_start = 1;
    } else {
      if (at_par_start && starts_story(q, (size_t)(le - q))) LS_TRY(add_story(ds, &cap, q, (size_t)(le - q), line, err));
      at_par_start = 0;
    }
    p = nl ? nl + 1 : end;
  }
  return LS_OK;
}

/* ---- load ------------------------------------------------------------------ */

static int load_any(ls_dataset *ds, const char *text, size_t len, ls_err *err) {
  size_t i = 0;
  while (i < len && isspace((unsigned char)text[i])) i++;
  if (len == 0) return ls_err_set(err, LS_EFORMAT, "%s: the file is empty", ds->path);
  if (i == len)
    return ls_err_set(err, LS_EFORMAT, "%s: the file holds only blank lines (%zu bytes of whitespace), no examples",
                      ds->path, len);
  if (ds->format == LS_DS_STORIES) return load_stories(ds, text, len, err);
  if (ds->format == LS_DS_AUTO && text[i] != '{')
    return ls_err_set(err, LS_EFORMAT, "%s: not JSON; a story text file needs --format stories", ds->path);
  if (ds->format == LS_DS_AUTO || ds->format == LS_DS_BIGBENCH) {
    /* BIG-bench is one JSON document with "examples"; everything else is JSON lines */
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (root && json_is_object(root) && json_object_get(root, "examples")) {
      ds->format = LS_DS_BIGBENCH;
      int rc = load_bigbench(ds, root, text, len, err);
      json_decref(root);
      return rc;
    }
    json_decref(root);
    if (ds->format == LS_DS_BIGBENCH) {
      if (!root) return ls_err_set(err, LS_EFORMAT, "%s:%d:%d: %s", ds->path, je.line, je.column, je.text);
      return ls_err_set(err, LS_EFORMAT, "%s: a BIG-bench task needs an \"examples\" array", ds->path);
    }
  }
  return load_jsonl(ds, text, len, err);
}

int ls_dataset_load(const char *path, int format, ls_dataset **out, ls_err *err) {
  *out = NULL;
  if (format < LS_DS_AUTO || format > LS_DS_STORIES) return ls_err_set(err, LS_EINVAL, "%s: bad dataset format %d", path, format);
  ls_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  ds->format = format;
  ds->arena = calloc(1, sizeof *ds->arena);
  ds->path = ls_dupstr(path, err);
  if (!ds->arena || !ds->path) {
    ls_dataset_free(ds);
    return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  }
  char *text = NULL;
  size_t len = 0;
  int rc = ls_read_file(path, &text, &len, err);
  if (rc == LS_OK) rc = load_any(ds, text, len, err);
  free(text);
  if (rc == LS_OK && ds->n == 0) rc = ls_err_set(err, LS_EFORMAT, "%s: no examples", path);
  if (rc == LS_OK) {
    ds->n_total = ds->n;
    ds->source_index = malloc((size_t)ds->n * sizeof *ds->source_index);
    if (!ds->source_index) rc = ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
    else
      for (int i = 0; i < ds->n; i++) ds->source_index[i] = i;
  }
  if (rc != LS_OK) {
    ls_dataset_free(ds);
    return rc;
  }
  *out = ds;
  return LS_OK;
}

void ls_dataset_free(ls_dataset *ds) {
  if (!ds) return;
  if (ds->arena) {
    for (int i = 0; i < ds->arena->n; i++) free(ds->arena->ptrs[i]);
    free(ds->arena->ptrs);
    free(ds->arena);
  }
  free(ds->ex);
  free(ds->source_index);
  free(ds->path);
  free(ds);
}

/* ---- shards --------------------------------------------------------------- */

int ls_shard_bounds(int total, int i, int n, int *begin, int *end, ls_err *err) {
  if (n < 1 || i < 0 || i >= n || total < 0)
    return ls_err_set(err, LS_EINVAL, "shard %d/%d: need 0 <= I < N", i, n);
  *begin = (int)((long long)i * total / n);
  *end = (int)((long long)(i + 1) * total / n);
  return LS_OK;
}

int ls_shard_parse(const char *s, int *i, int *n, ls_err *err) {
  char *e1, *e2;
  long a = strtol(s, &e1, 10);
  if (e1 == s || *e1 != '/' || !isdigit((unsigned char)e1[1]) || !isdigit((unsigned char)s[0]))
    return ls_err_set(err, LS_EINVAL, "--shard %s: expected I/N, e.g. 0/4", s);
  long b = strtol(e1 + 1, &e2, 10);
  if (*e2 || b < 1 || b > 1000000 || a >= b)
    return ls_err_set(err, LS_EINVAL, "--shard %s: expected I/N with 0 <= I < N", s);
  *i = (int)a;
  *n = (int)b;
  return LS_OK;
}

int ls_dataset_select(ls_dataset *ds, int limit, int shard_i, int shard_n, ls_err *err) {
  if (limit > 0 && limit < ds->n) ds->n = limit;
  if (shard_n <= 1) {
    if (shard_n == 1 && shard_i != 0) return ls_err_set(err, LS_EINVAL, "shard %d/%d: need 0 <= I < N", shard_i, shard_n);
    return LS_OK;
  }
  int b, e;
  LS_TRY(ls_shard_bounds(ds->n, shard_i, shard_n, &b, &e, err));
  memmove(ds->ex, ds->ex + b, (size_t)(e - b) * sizeof *ds->ex);
  memmove(ds->source_index, ds->source_index + b, (size_t)(e - b) * sizeof *ds->source_index);
  ds->n = e - b;
  return LS_OK;
}

int ls_dataset_shard(ls_dataset *ds, int i, int n, ls_err *err) { return ls_dataset_select(ds, 0, i, n, err); }
