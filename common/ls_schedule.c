#include "ls_schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_earlyexit.h"
#include "ls_util.h"
#include "ls_json.h"

/* ---- sub-layer names ------------------------------------------------------ */

int ls_sublayer_name_parse(const char *name, int n_layers, int *layer, int *kind, ls_err *err) {
  const char *p = name;
  if (*p != 'L' || !(p[1] >= '0' && p[1] <= '9'))
    return ls_err_set(err, LS_EINVAL, "sub-layer \"%s\": expected L<layer>.attn or L<layer>.ffn", name);
  p++;
  if (p[0] == '0' && p[1] >= '0' && p[1] <= '9')
    return ls_err_set(err, LS_EINVAL, "sub-layer \"%s\": layer number with a leading zero", name);
  long v = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (*p++ - '0');
    if (v > 1000000) return ls_err_set(err, LS_EINVAL, "sub-layer \"%s\": layer number too large", name);
  }
  int k;
  if (strcmp(p, ".attn") == 0) k = LS_SUBLAYER_ATTN;
  else if (strcmp(p, ".ffn") == 0) k = LS_SUBLAYER_FFN;
  else return ls_err_set(err, LS_EINVAL, "sub-layer \"%s\": expected L<layer>.attn or L<layer>.ffn", name);
  if (n_layers > 0 && v >= n_layers)
    return ls_err_set(err, LS_EINVAL, "sub-layer \"%s\": layer %ld does not exist (the model has %d layers, 0..%d)",
                      name, v, n_layers, n_layers - 1);
  *layer = (int)v;
  *kind = k;
  return LS_OK;
}

void ls_sublayer_index_name(int s, char *buf, size_t size) {
  ls_sublayer_name_format(s / 2, s % 2 ? LS_SUBLAYER_FFN : LS_SUBLAYER_ATTN, buf, size);
}

void ls_sublayer_name_format(int layer, int kind, char *buf, size_t size) {
  snprintf(buf, size, "L%d.%s", layer, kind == LS_SUBLAYER_ATTN ? "attn" : "ffn");
}

/* ---- construction --------------------------------------------------------- */

int ls_schedule_new(int n_stages, ls_schedule **out, ls_err *err) {
  *out = NULL;
  if (n_stages < 0 || n_stages > LS_TEMPLATE_MAX_STAGES)
    return ls_err_set(err, LS_EINVAL, "schedule: %d stages (0..%d)", n_stages, LS_TEMPLATE_MAX_STAGES);
  ls_schedule *s = calloc(1, sizeof *s);
  if (!s) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
  s->schema_version = LS_SCHEDULE_SCHEMA_VERSION;
  s->target = s->achieved_score = s->reference_score = NAN;
  s->predicted_latency_ms = s->measured_latency_ms = s->speedup = NAN;
  s->prov_candidate_id = -1;
  s->stages = calloc((size_t)(n_stages ? n_stages : 1), sizeof *s->stages);
  if (!s->stages) {
    free(s);
    return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
  }
  s->n_stages = n_stages;
  *out = s;
  return LS_OK;
}

int ls_schedule_for_template(const ls_template *t, ls_schedule **out, ls_err *err) {
  LS_TRY(ls_schedule_new(t->n_stages, out, err));
  ls_schedule *s = *out;
  int rc = ls_schedule_set_str(&s->template_name, t->name, err);
  if (rc == LS_OK) rc = ls_schedule_set_str(&s->template_path, t->path, err);
  for (int i = 0; i < t->n_stages && rc == LS_OK; i++) rc = ls_schedule_set_str(&s->stages[i].name, t->stages[i].name, err);
  if (rc != LS_OK) {
    ls_schedule_free(s);
    *out = NULL;
  }
  return rc;
}

static void stage_clear_skips(ls_sched_stage *st) {
  for (int k = 0; k < st->n_skip; k++) free(st->skip[k]);
  free(st->skip);
  st->skip = NULL;
  st->n_skip = 0;
}

void ls_schedule_free(ls_schedule *s) {
  if (!s) return;
  for (int i = 0; i < s->n_stages; i++) {
    free(s->stages[i].name);
    stage_clear_skips(&s->stages[i]);
  }
  free(s->stages);
  char **strs[] = {&s->path, &s->model_name, &s->model_fingerprint, &s->template_name, &s->template_path,
                   &s->objective, &s->prov_job, &s->prov_results_file, &s->prov_date, &s->prov_commit};
  for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++) free(*strs[k]);
  free(s);
}

int ls_schedule_set_str(char **field, const char *value, ls_err *err) {
  char *v = NULL;
  if (value && !(v = ls_dupstr(value, err))) return err ? err->code : LS_ENOMEM;
  free(*field);
  *field = v;
  return LS_OK;
}

int ls_sched_stage_add_skip(ls_sched_stage *st, const char *sublayer, ls_err *err) {
  char **v = realloc(st->skip, (size_t)(st->n_skip + 1) * sizeof *v);
  if (!v) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
  st->skip = v;
  if (!(st->skip[st->n_skip] = ls_dupstr(sublayer, err))) return err ? err->code : LS_ENOMEM;
  st->n_skip++;
  return LS_OK;
}

int ls_sched_stage_set_mask(ls_sched_stage *st, const uint8_t *mask, int n_layers, ls_err *err) {
  stage_clear_skips(st);
  for (int l = 0; l < n_layers; l++)
    for (int kind = LS_SUBLAYER_ATTN; kind <= LS_SUBLAYER_FFN; kind++)
      if (mask[l] & kind) {
        char name[24];
        ls_sublayer_name_format(l, kind, name, sizeof name);
        LS_TRY(ls_sched_stage_add_skip(st, name, err));
      }
  return LS_OK;
}

int ls_sched_stage_mask(const ls_sched_stage *st, int n_layers, uint8_t *mask, ls_err *err) {
  memset(mask, 0, (size_t)(n_layers > 0 ? n_layers : 0));
  for (int k = 0; k < st->n_skip; k++) {
    int layer, kind;
    LS_TRY(ls_sublayer_name_parse(st->skip[k], n_layers, &layer, &kind, err));
    if (mask[layer] & kind)
      return ls_err_set(err, LS_EFORMAT, "stage \"%s\": sub-layer \"%s\" is listed twice", st->name ? st->name : "?",
                        st->skip[k]);
    mask[layer] |= (uint8_t)kind;
  }
  return LS_OK;
}

/* ---- reading -------------------------------------------------------------- */

static int get_opt_str(const json_t *o, const char *key, const char *where, char **field, ls_err *err) {
  const char *v;
  LS_TRY(ls_json_opt_string(o, key, where, NULL, &v, err));
  return ls_schedule_set_str(field, v, err);
}

static int is_hex64(const char *s) {
  if (strlen(s) != 64) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return 1;
}

/* Structure of one stage: name, skip list syntax and duplicates (layer bounds need the model), early exit. */
static int parse_stage(ls_sched_stage *st, const json_t *js, const char *where, ls_err *err) {
  if (!json_is_object(js)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object", where);
  static const char *const keys[] = {"name", "skip", "early_exit", NULL};
  LS_TRY(ls_json_check_keys(js, keys, where, err));
  const char *name;
  LS_TRY(ls_json_get_string(js, "name", where, &name, err));
  LS_TRY(ls_schedule_set_str(&st->name, name, err));
  json_t *skip = json_object_get(js, "skip");
  if (skip && !json_is_null(skip)) {
    if (!json_is_array(skip)) return ls_err_set(err, LS_EFORMAT, "%s: key \"skip\": expected an array of sub-layer names", where);
    size_t i;
    json_t *e;
    json_array_foreach(skip, i, e) {
      if (!json_is_string(e)) return ls_err_set(err, LS_EFORMAT, "%s: skip[%zu] is not a string", where, i);
      const char *sl = json_string_value(e);
      int layer, kind;
      if (ls_sublayer_name_parse(sl, 0, &layer, &kind, err) != LS_OK) {
        if (err) err->code = LS_EFORMAT;
        return ls_err_prefix(err, "%s", where);
      }
      for (int k = 0; k < st->n_skip; k++)
        if (strcmp(st->skip[k], sl) == 0)
          return ls_err_set(err, LS_EFORMAT, "%s: sub-layer \"%s\" is listed twice", where, sl);
      LS_TRY(ls_sched_stage_add_skip(st, sl, err));
    }
  }
  json_t *ee = json_object_get(js, "early_exit");
  if (ee && !json_is_null(ee)) {
    char ew[600];
    snprintf(ew, sizeof ew, "%s: early_exit", where);
    if (!json_is_object(ee)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object {\"window\", \"threshold\"}", ew);
    static const char *const ekeys[] = {"window", "threshold", NULL};
    LS_TRY(ls_json_check_keys(ee, ekeys, ew, err));
    long long w;
    double th;
    LS_TRY(ls_json_get_int(ee, "window", ew, &w, err));
    LS_TRY(ls_json_get_number(ee, "threshold", ew, &th, err));
    if (w < -1000000 || w > 1000000) w = -1; /* out of int range: reported by ls_ee_validate */
    if (ls_ee_validate((int)w, th, ew, err) != LS_OK) {
      if (err) err->code = LS_EFORMAT;
      return LS_EFORMAT;
    }
    st->ee_window = (int)w;
    st->ee_threshold = (float)th;
  }
  return LS_OK;
}

static const char *const kv_policy_names[] = {"reuse", "recompute", "shared-prefix"};

int ls_kv_policy_parse(const char *name, int *policy, const char *where, ls_err *err) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(name, kv_policy_names[i])) {
      *policy = i;
      return LS_OK;
    }
  return ls_err_set(err, LS_EINVAL, "%s: KV policy \"%s\" is not one of reuse, recompute, shared-prefix", where, name);
}

const char *ls_kv_policy_name(int policy) {
  return policy >= 0 && policy < 3 ? kv_policy_names[policy] : "unknown";
}

static int parse_root(ls_schedule *s, const json_t *root, const char *where, ls_err *err) {
  if (!json_is_object(root)) return ls_err_set(err, LS_EFORMAT, "%s: expected a JSON object", where);
  static const char *const keys[] = {"schema_version", "model", "template", "objective", "target", "achieved_score",
                                     "reference_score", "predicted_latency_ms", "measured_latency_ms", "speedup",
                                     "provenance", "stages", "comment", "kv_policy", NULL};
  LS_TRY(ls_json_check_keys(root, keys, where, err));
  long long ver;
  LS_TRY(ls_json_get_int(root, "schema_version", where, &ver, err));
  if (ver != LS_SCHEDULE_SCHEMA_VERSION)
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: schema_version %lld is not supported (this build reads %d)", where, ver,
                      LS_SCHEDULE_SCHEMA_VERSION);
  s->schema_version = (int)ver;

  char w2[600];
  json_t *model = json_object_get(root, "model");
  if (model && !json_is_null(model)) {
    snprintf(w2, sizeof w2, "%s: model", where);
    if (!json_is_object(model)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object", w2);
    static const char *const mkeys[] = {"name", "fingerprint", NULL};
    LS_TRY(ls_json_check_keys(model, mkeys, w2, err));
    LS_TRY(get_opt_str(model, "name", w2, &s->model_name, err));
    LS_TRY(get_opt_str(model, "fingerprint", w2, &s->model_fingerprint, err));
    if (s->model_fingerprint && !is_hex64(s->model_fingerprint))
      return ls_err_set(err, LS_EFORMAT, "%s: fingerprint \"%s\" is not a SHA-256 (64 lowercase hex digits)", w2,
                        s->model_fingerprint);
  }
  json_t *tmpl = json_object_get(root, "template");
  if (tmpl && !json_is_null(tmpl)) {
    snprintf(w2, sizeof w2, "%s: template", where);
    if (!json_is_object(tmpl)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object {\"name\", \"path\"}", w2);
    static const char *const tkeys[] = {"name", "path", NULL};
    LS_TRY(ls_json_check_keys(tmpl, tkeys, w2, err));
    LS_TRY(get_opt_str(tmpl, "name", w2, &s->template_name, err));
    LS_TRY(get_opt_str(tmpl, "path", w2, &s->template_path, err));
  }
  LS_TRY(get_opt_str(root, "objective", where, &s->objective, err));
  json_t *pol = json_object_get(root, "kv_policy");
  if (pol && !json_is_null(pol)) {
    if (!json_is_string(pol)) return ls_err_set(err, LS_EFORMAT, "%s: kv_policy: expected a string", where);
    int rc = ls_kv_policy_parse(json_string_value(pol), &s->kv_policy, where, err);
    if (rc) return LS_EFORMAT;
  }
  struct {
    const char *key;
    double *field;
  } nums[] = {{"target", &s->target},
              {"achieved_score", &s->achieved_score},
              {"reference_score", &s->reference_score},
              {"predicted_latency_ms", &s->predicted_latency_ms},
              {"measured_latency_ms", &s->measured_latency_ms},
              {"speedup", &s->speedup}};
  for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++)
    LS_TRY(ls_json_opt_number(root, nums[k].key, where, NAN, nums[k].field, err));

  json_t *prov = json_object_get(root, "provenance");
  if (prov && !json_is_null(prov)) {
    snprintf(w2, sizeof w2, "%s: provenance", where);
    if (!json_is_object(prov)) return ls_err_set(err, LS_EFORMAT, "%s: expected an object", w2);
    static const char *const pkeys[] = {"job", "results_file", "candidate_id", "date", "commit", NULL};
    LS_TRY(ls_json_check_keys(prov, pkeys, w2, err));
    LS_TRY(get_opt_str(prov, "job", w2, &s->prov_job, err));
    LS_TRY(get_opt_str(prov, "results_file", w2, &s->prov_results_file, err));
    LS_TRY(ls_json_opt_int(prov, "candidate_id", w2, -1, &s->prov_candidate_id, err));
    LS_TRY(get_opt_str(prov, "date", w2, &s->prov_date, err));
    LS_TRY(get_opt_str(prov, "commit", w2, &s->prov_commit, err));
  }

  json_t *stages;
  LS_TRY(ls_json_get_array(root, "stages", where, &stages, err));
  size_t n = json_array_size(stages);
  if (n == 0 || n > LS_TEMPLATE_MAX_STAGES)
    return ls_err_set(err, LS_EFORMAT, "%s: %zu stages; a schedule has 1..%d", where, n, LS_TEMPLATE_MAX_STAGES);
  free(s->stages);
  s->stages = calloc(n, sizeof *s->stages);
  s->n_stages = 0;
  if (!s->stages) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", where);
  for (size_t i = 0; i < n; i++) {
    s->n_stages = (int)i + 1;
    snprintf(w2, sizeof w2, "%s: stages[%zu]", where, i);
    LS_TRY(parse_stage(&s->stages[i], json_array_get(stages, i), w2, err));
    for (size_t j = 0; j < i; j++)
      if (strcmp(s->stages[j].name, s->stages[i].name) == 0)
        return ls_err_set(err, LS_EFORMAT, "%s: duplicate stage name \"%s\"", w2, s->stages[i].name);
  }
  return LS_OK;
}

static int parse_json(const json_t *root, const char *where, const char *path, ls_schedule **out, ls_err *err) {
  *out = NULL;
  ls_schedule *s;
  LS_TRY(ls_schedule_new(0, &s, err));
  int rc = parse_root(s, root, where, err);
  if (rc == LS_OK && path) rc = ls_schedule_set_str(&s->path, path, err);
  if (rc != LS_OK) {
    ls_schedule_free(s);
    return rc;
  }
  *out = s;
  return LS_OK;
}

int ls_schedule_read(const char *path, ls_schedule **out, ls_err *err) {
  *out = NULL;
  json_t *root;
  LS_TRY(ls_json_load_file(path, &root, err));
  int rc = parse_json(root, path, path, out, err);
  json_decref(root);
  return rc;
}

int ls_schedule_parse(const char *text, const char *where, ls_schedule **out, ls_err *err) {
  *out = NULL;
  if (!where) where = "schedule";
  json_t *root;
  LS_TRY(ls_json_load_text(text, strlen(text), where, 1, &root, err));
  int rc = parse_json(root, where, NULL, out, err);
  json_decref(root);
  return rc;
}

/* ---- writing -------------------------------------------------------------- */

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *to_json(const ls_schedule *s, const char **bad) {
  json_t *root = json_object();
  json_object_set_new(root, "schema_version", json_integer(LS_SCHEDULE_SCHEMA_VERSION));
  json_t *model = json_object();
  json_object_set_new(model, "name", ls_json_text_or_null(s->model_name, "model.name", bad));
  json_object_set_new(model, "fingerprint", ls_json_text_or_null(s->model_fingerprint, "model.fingerprint", bad));
  json_object_set_new(root, "model", model);
  json_t *tmpl = json_object();
  json_object_set_new(tmpl, "name", ls_json_text_or_null(s->template_name, "template.name", bad));
  json_object_set_new(tmpl, "path", ls_json_text_or_null(s->template_path, "template.path", bad));
  json_object_set_new(root, "template", tmpl);
  json_object_set_new(root, "objective", ls_json_text_or_null(s->objective, "objective", bad));
  json_object_set_new(root, "kv_policy", json_string(ls_kv_policy_name(s->kv_policy)));
  json_object_set_new(root, "target", num_or_null(s->target));
  json_object_set_new(root, "achieved_score", num_or_null(s->achieved_score));
  json_object_set_new(root, "reference_score", num_or_null(s->reference_score));
  json_object_set_new(root, "predicted_latency_ms", num_or_null(s->predicted_latency_ms));
  json_object_set_new(root, "measured_latency_ms", num_or_null(s->measured_latency_ms));
  json_object_set_new(root, "speedup", num_or_null(s->speedup));
  json_t *prov = json_object();
  json_object_set_new(prov, "job", ls_json_text_or_null(s->prov_job, "provenance.job", bad));
  json_object_set_new(prov, "results_file", ls_json_text_or_null(s->prov_results_file, "provenance.results_file", bad));
  json_object_set_new(prov, "candidate_id", s->prov_candidate_id >= 0 ? json_integer(s->prov_candidate_id) : json_null());
  json_object_set_new(prov, "date", ls_json_text_or_null(s->prov_date, "provenance.date", bad));
  json_object_set_new(prov, "commit", ls_json_text_or_null(s->prov_commit, "provenance.commit", bad));
  json_object_set_new(root, "provenance", prov);
  json_t *stages = json_array();
  for (int i = 0; i < s->n_stages; i++) {
    const ls_sched_stage *st = &s->stages[i];
    json_t *js = json_object(), *skip = json_array(), *ee = json_object();
    json_object_set_new(js, "name", ls_json_text_or_null(st->name, "a stage's name", bad));
    for (int k = 0; k < st->n_skip; k++) json_array_append_new(skip, ls_json_text_or_null(st->skip[k], "a skipped sub-layer", bad));
    json_object_set_new(js, "skip", skip);
    json_object_set_new(ee, "window", json_integer(st->ee_window));
    /* the threshold is a float: write the shortest decimal that reads back to the same float */
    char buf[32];
    float th = st->ee_threshold;
    for (int prec = 1; prec <= 9; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, (double)th);
      if ((float)strtod(buf, NULL) == th) break;
    }
    json_object_set_new(ee, "threshold", json_real(strtod(buf, NULL)));
    json_object_set_new(js, "early_exit", ee);
    json_array_append_new(stages, js);
  }
  json_object_set_new(root, "stages", stages);
  return root;
}

int ls_schedule_to_string(const ls_schedule *s, char **out, ls_err *err) {
  *out = NULL;
  const char *bad = NULL;
  json_t *root = to_json(s, &bad);
  if (!root) return ls_err_set(err, LS_ENOMEM, "schedule: out of memory");
  if (bad) {
    json_decref(root);
    return ls_err_set(err, LS_EFORMAT, "schedule: %s is not UTF-8 text", bad);
  }
  int rc = ls_json_dump_string(root, out, err);
  json_decref(root);
  return rc;
}

int ls_schedule_write(const ls_schedule *s, const char *path, ls_err *err) {
  char *text;
  LS_TRY(ls_schedule_to_string(s, &text, err));
  int rc = ls_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

/* ---- checking against model and template ---------------------------------- */

int ls_schedule_check(const ls_schedule *s, const char *model_fingerprint, int n_layers, const ls_template *t,
                      int ignore_fingerprint, ls_err *err) {
  const char *f = s->path ? s->path : "schedule";
  if (!ignore_fingerprint && model_fingerprint && s->model_fingerprint &&
      strcmp(model_fingerprint, s->model_fingerprint) != 0)
    return ls_err_set(err, LS_EMISMATCH, "%s: made for model fingerprint %.12s..., but this model is %.12s... (use "
                      "--ignore-fingerprint to run it anyway)", f, s->model_fingerprint, model_fingerprint);
  if (t) {
    if (s->n_stages != t->n_stages)
      return ls_err_set(err, LS_EMISMATCH, "%s: %d stages, but template %s has %d", f, s->n_stages, t->path,
                        t->n_stages);
    for (int i = 0; i < s->n_stages; i++)
      if (!s->stages[i].name || strcmp(s->stages[i].name, t->stages[i].name) != 0)
        return ls_err_set(err, LS_EMISMATCH, "%s: stage %d is \"%s\", but template %s calls it \"%s\"", f, i,
                          s->stages[i].name ? s->stages[i].name : "", t->path, t->stages[i].name);
  }
  for (int i = 0; i < s->n_stages; i++) {
    const ls_sched_stage *st = &s->stages[i];
    char where[600];
    snprintf(where, sizeof where, "%s: stage \"%s\"", f, st->name ? st->name : "?");
    for (int k = 0; k < st->n_skip; k++) {
      int layer, kind;
      if (ls_sublayer_name_parse(st->skip[k], 0, &layer, &kind, err) != LS_OK) {
        if (err) err->code = LS_EFORMAT;
        return ls_err_prefix(err, "%s", where);
      }
      if (ls_sublayer_name_parse(st->skip[k], n_layers, &layer, &kind, err) != LS_OK) {
        if (err) err->code = LS_EMISMATCH;
        return ls_err_prefix(err, "%s", where);
      }
      for (int j = 0; j < k; j++)
        if (strcmp(st->skip[j], st->skip[k]) == 0)
          return ls_err_set(err, LS_EFORMAT, "%s: sub-layer \"%s\" is listed twice", where, st->skip[k]);
    }
    if (ls_ee_validate(st->ee_window, st->ee_threshold, where, err) != LS_OK) {
      if (err) err->code = LS_EFORMAT;
      return LS_EFORMAT;
    }
  }
  return LS_OK;
}
