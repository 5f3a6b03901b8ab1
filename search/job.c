/* Job spec parsing and validation (docs/search.md, "Job spec"). */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ls_dataset.h"
#include "ls_earlyexit.h"
#include "ls_job.h"
#include "ls_json.h"
#include "ls_model.h"
#include "ls_profile.h"
#include "ls_schedule.h"
#include "ls_template.h"
#include "ls_util.h"

static const char *const job_keys[] = {"name", "model", "tokenizer", "template", "dataset", "limit", "shards",
                                       "objective", "tolerance", "strategy", "budget", "greedy_batch",
                                       "early_exit", "threads", "latency", "seed", "max_new_tokens",
                                       "kv_policy", "comment", NULL};

const char *ls_objective_name(int o) {
  switch (o) {
    case LS_OBJ_ACCURACY: return "accuracy";
    case LS_OBJ_AGREEMENT: return "agreement";
    case LS_OBJ_FIDELITY: return "fidelity";
    default: return "?";
  }
}

const char *ls_strategy_name(int s) {
  switch (s) {
    case LS_STRAT_GREEDY: return "greedy";
    case LS_STRAT_EXHAUSTIVE: return "exhaustive";
    default: return "?";
  }
}

/* A path from the job resolved against the job file's directory, normalised ("jobs/../data/x"
 * is stored, shown and exported as "data/x"). */
static int resolve_path(const char *job_path, const char *p, char **out, ls_err *err) {
  if (p[0] == '/' || strcmp(p, "measured") == 0) {
    *out = strdup(p);
  } else {
    char *tmp = strdup(job_path);
    if (!tmp) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", job_path);
    const char *dir = dirname(tmp);
    size_t n = strlen(dir) + strlen(p) + 2;
    *out = malloc(n);
    if (*out) snprintf(*out, n, "%s/%s", dir, p);
    free(tmp);
  }
  if (!*out) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", job_path);
  if (strcmp(*out, "measured") != 0) ls_path_normalize(*out);
  return LS_OK;
}

static int get_path(const json_t *root, const char *key, const char *where, int required, char **out,
                    ls_err *err) {
  const char *s = NULL;
  if (required) {
    LS_TRY(ls_json_get_string(root, key, where, &s, err));
  } else {
    LS_TRY(ls_json_opt_string(root, key, where, NULL, &s, err));
    if (!s) return LS_OK;
  }
  if (!s[0]) return ls_err_set(err, LS_EINVAL, "%s: key \"%s\": empty path", where, key);
  return resolve_path(where, s, out, err);
}

static int int_in(const json_t *o, const char *key, const char *where, long long dflt, int required,
                  long long lo, long long hi, int *out, ls_err *err) {
  long long v = dflt;
  if (required) {
    LS_TRY(ls_json_get_int(o, key, where, &v, err));
  } else {
    LS_TRY(ls_json_opt_int(o, key, where, dflt, &v, err));
  }
  if (v < lo || v > hi)
    return ls_err_set(err, LS_EINVAL, "%s: key \"%s\": %lld is out of range [%lld, %lld]", where, key, v, lo, hi);
  *out = (int)v;
  return LS_OK;
}

static int parse_dataset(ls_job *j, const json_t *root, ls_err *err) {
  const char *w = j->path;
  json_t *ds = json_object_get(root, "dataset");
  if (!ds) return ls_err_set(err, LS_EINVAL, "%s: missing key \"dataset\"", w);
  const char *fmt = "auto", *split = "", *p = NULL;
  if (json_is_string(ds)) {
    p = json_string_value(ds);
  } else if (json_is_object(ds)) {
    static const char *const keys[] = {"path", "format", "split", NULL};
    char where[1200];
    snprintf(where, sizeof where, "%s: dataset", w);
    LS_TRY(ls_json_check_keys(ds, keys, where, err));
    LS_TRY(ls_json_get_string(ds, "path", where, &p, err));
    LS_TRY(ls_json_opt_string(ds, "format", where, "auto", &fmt, err));
    LS_TRY(ls_json_opt_string(ds, "split", where, "", &split, err));
  } else {
    return ls_err_set(err, LS_EINVAL, "%s: key \"dataset\": expected a path or an object {path, format, split}", w);
  }
  if (!p[0]) return ls_err_set(err, LS_EINVAL, "%s: key \"dataset\": empty path", w);
  LS_TRY(resolve_path(w, p, &j->dataset, err));
  if (ls_dataset_format_parse(fmt, &j->dataset_format, err) != LS_OK)
    return ls_err_prefix(err, "%s: key \"dataset.format\"", w);
  j->split = strdup(split);
  return j->split ? LS_OK : ls_err_set(err, LS_ENOMEM, "%s: out of memory", w);
}

static int parse_enum(const json_t *root, const char *key, const char *where, const char *const *names,
                      const char *dflt, int *out, ls_err *err) {
  const char *s = NULL;
  if (dflt) {
    LS_TRY(ls_json_opt_string(root, key, where, dflt, &s, err));
  } else {
    LS_TRY(ls_json_get_string(root, key, where, &s, err));
  }
  char list[256] = "";
  for (int i = 0; names[i]; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = i + 1;
      return LS_OK;
    }
    strncat(list, i ? "|" : "", sizeof list - strlen(list) - 1);
    strncat(list, names[i], sizeof list - strlen(list) - 1);
  }
  return ls_err_set(err, LS_EINVAL, "%s: key \"%s\": unknown value \"%s\" (expected %s)", where, key, s, list);
}

static int parse_grid(ls_job *j, const json_t *root, ls_err *err) {
  const char *w = j->path;
  json_t *ee = json_object_get(root, "early_exit");
  if (!ee || json_is_null(ee)) return LS_OK; /* no sweep */
  if (!json_is_object(ee)) return ls_err_set(err, LS_EINVAL, "%s: key \"early_exit\": expected an object", w);
  static const char *const keys[] = {"windows", "thresholds", NULL};
  char where[1200];
  snprintf(where, sizeof where, "%s: early_exit", w);
  LS_TRY(ls_json_check_keys(ee, keys, where, err));
  json_t *ws, *ts;
  LS_TRY(ls_json_get_array(ee, "windows", where, &ws, err));
  LS_TRY(ls_json_get_array(ee, "thresholds", where, &ts, err));
  if (json_array_size(ws) > LS_JOB_MAX_GRID || json_array_size(ts) > LS_JOB_MAX_GRID)
    return ls_err_set(err, LS_EINVAL, "%s: more than %d windows or thresholds", where, LS_JOB_MAX_GRID);
  if ((json_array_size(ws) == 0) != (json_array_size(ts) == 0))
    return ls_err_set(err, LS_EINVAL, "%s: windows and thresholds must both be empty or both non-empty", where);
  for (size_t i = 0; i < json_array_size(ws); i++) {
    json_t *v = json_array_get(ws, i);
    if (!json_is_integer(v) || json_integer_value(v) < 1)
      return ls_err_set(err, LS_EINVAL, "%s: key \"early_exit.windows\"[%zu]: expected an integer >= 1", w, i);
    j->windows[j->n_windows++] = (int)json_integer_value(v);
    if (j->windows[i] > LS_EE_MAX_WINDOW)
      return ls_err_set(err, LS_EINVAL, "%s: key \"early_exit.windows\"[%zu]: %d is above the maximum %d", w, i,
                        j->windows[i], LS_EE_MAX_WINDOW);
  }
  for (size_t i = 0; i < json_array_size(ts); i++) {
    json_t *v = json_array_get(ts, i);
    if (!json_is_number(v))
      return ls_err_set(err, LS_EINVAL, "%s: key \"early_exit.thresholds\"[%zu]: expected a number", w, i);
    double t = json_number_value(v);
    if (!(t > 0.0 && t <= 1.0))
      return ls_err_set(err, LS_EINVAL, "%s: key \"early_exit.thresholds\"[%zu]: %g is not in (0, 1]", w, i, t);
    j->thresholds[j->n_thresholds++] = t;
  }
  return LS_OK;
}

static int parse(ls_job *j, const json_t *root, ls_err *err) {
  const char *w = j->path;
  if (!json_is_object(root)) return ls_err_set(err, LS_EFORMAT, "%s: expected a JSON object", w);
  LS_TRY(ls_json_check_keys(root, job_keys, w, err));
  const char *name = NULL;
  LS_TRY(ls_json_opt_string(root, "name", w, "", &name, err));
  j->name = strdup(name);
  LS_TRY(get_path(root, "model", w, 1, &j->model, err));
  LS_TRY(get_path(root, "tokenizer", w, 0, &j->tokenizer, err));
  LS_TRY(get_path(root, "template", w, 1, &j->template_path, err));
  LS_TRY(parse_dataset(j, root, err));
  LS_TRY(int_in(root, "limit", w, 0, 1, 1, 1000000, &j->limit, err));
  LS_TRY(int_in(root, "shards", w, 1, 0, 1, 1000000, &j->shards, err));
  if (j->shards > j->limit)
    return ls_err_set(err, LS_EINVAL, "%s: key \"shards\": %d shards for a limit of %d examples", w, j->shards,
                      j->limit);
  static const char *const objectives[] = {"accuracy", "agreement", "fidelity", NULL};
  LS_TRY(parse_enum(root, "objective", w, objectives, NULL, &j->objective, err));
  LS_TRY(ls_json_opt_number(root, "tolerance", w, 0.0, &j->tolerance, err));
  if (!(j->tolerance >= 0.0 && j->tolerance <= 1.0))
    return ls_err_set(err, LS_EINVAL, "%s: key \"tolerance\": %g is not in [0, 1]", w, j->tolerance);
  static const char *const strategies[] = {"greedy", "exhaustive", NULL};
  LS_TRY(parse_enum(root, "strategy", w, strategies, "greedy", &j->strategy, err));
  /* Candidates run and are teacher-forced with the job's policy: reuse and
   * recompute score each call under its own mask (the same bits), shared-prefix
   * on the earlier stages' cache, as the runtime runs it (docs/search.md). */
  static const char *const policies[] = {"reuse", "recompute", "shared-prefix", NULL};
  static const int policy_of[] = {0, LS_KV_REUSE, LS_KV_RECOMPUTE, LS_KV_SHARED_PREFIX};
  LS_TRY(parse_enum(root, "kv_policy", w, policies, "reuse", &j->kv_policy, err));
  j->kv_policy = policy_of[j->kv_policy];
  json_t *b;
  LS_TRY(ls_json_get_object(root, "budget", w, &b, err));
  {
    static const char *const keys[] = {"min", "max", NULL};
    char where[1200];
    snprintf(where, sizeof where, "%s: budget", w);
    LS_TRY(ls_json_check_keys(b, keys, where, err));
    LS_TRY(int_in(b, "min", where, 0, 0, 0, 1000000, &j->budget_min, err));
    LS_TRY(int_in(b, "max", where, 0, 1, 0, 1000000, &j->budget_max, err));
    if (j->budget_max < j->budget_min)
      return ls_err_set(err, LS_EINVAL, "%s: key \"budget.max\": %d is below budget.min %d", w, j->budget_max,
                        j->budget_min);
  }
  LS_TRY(int_in(root, "greedy_batch", w, 0, 0, 0, 1000000, &j->greedy_batch, err));
  LS_TRY(parse_grid(j, root, err));
  LS_TRY(int_in(root, "threads", w, 1, 0, 1, 1024, &j->threads, err));
  LS_TRY(int_in(root, "max_new_tokens", w, 0, 0, 0, 1000000, &j->max_new_tokens, err));
  LS_TRY(get_path(root, "latency", w, 1, &j->latency, err));
  j->latency_measured = strcmp(j->latency, "measured") == 0;
  long long seed = 0;
  LS_TRY(ls_json_opt_int(root, "seed", w, 0, &seed, err));
  if (seed < 0) return ls_err_set(err, LS_EINVAL, "%s: key \"seed\": must be >= 0", w);
  j->seed = (uint64_t)seed;
  return LS_OK;
}

int ls_job_load(const char *path, ls_job **out, ls_err *err) {
  *out = NULL;
  ls_job *j = calloc(1, sizeof *j);
  if (!j) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  j->path = strdup(path);
  size_t len = 0;
  json_t *root = NULL;
  int rc = ls_read_file(path, &j->text, &len, err);
  if (rc == LS_OK) rc = ls_json_load_file(path, &root, err);
  if (rc == LS_OK) rc = parse(j, root, err);
  if (rc == LS_OK) {
    /* threads and comments do not change results (bit-identical for any thread count) */
    json_t *copy = json_deep_copy(root);
    if (copy) {
      json_object_del(copy, "threads");
      json_object_del(copy, "comment");
    }
    char *canon = copy ? json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(copy);
    if (!canon) {
      rc = ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
    } else {
      ls_sha256_buf(canon, strlen(canon), j->hash);
      free(canon);
    }
  }
  json_decref(root);
  if (rc != LS_OK) {
    ls_job_free(j);
    return rc;
  }
  *out = j;
  return LS_OK;
}

static int check_file(const char *job, const char *key, const char *path, ls_err *err) {
  struct stat st;
  if (stat(path, &st) != 0)
    return ls_err_set(err, LS_EIO, "%s: key \"%s\": %s: %s", job, key, path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return ls_err_set(err, LS_EIO, "%s: key \"%s\": %s: not a regular file", job, key, path);
  return LS_OK;
}

int ls_job_validate(ls_job *j, ls_err *err) {
  const char *w = j->path;
  LS_TRY(check_file(w, "model", j->model, err));
  if (j->tokenizer) LS_TRY(check_file(w, "tokenizer", j->tokenizer, err));
  LS_TRY(check_file(w, "template", j->template_path, err));
  LS_TRY(check_file(w, "dataset", j->dataset, err));
  if (!j->latency_measured) LS_TRY(check_file(w, "latency", j->latency, err));

  ls_model m;
  memset(&m, 0, sizeof m);
  if (ls_model_load_placed(&m, j->model, j->tokenizer, LS_WEIGHTS_MAP, err) != LS_OK) return ls_err_prefix(err, "%s: key \"model\"", w);
  j->n_layers = m.cfg.n_layers;
  int rc = LS_OK;
  if (m.vocab.n_tokens == 0)
    rc = ls_err_set(err, LS_EINVAL, "%s: key \"tokenizer\": %s has no vocabulary; name a tokenizer file", w, j->model);
  if (rc == LS_OK && j->budget_max > 2 * j->n_layers)
    rc = ls_err_set(err, LS_EINVAL,
                    "%s: key \"budget.max\": %d is beyond the model's %d sub-layers (%d layers x attn+ffn)", w,
                    j->budget_max, 2 * j->n_layers, j->n_layers);
  if (rc == LS_OK && !j->latency_measured) {
    ls_profile prof;
    memset(&prof, 0, sizeof prof);
    rc = ls_profile_load(&prof, j->latency, err);
    if (rc == LS_OK) rc = ls_profile_check_model(&prof, &m, NULL, j->latency, err);
    if (rc != LS_OK) ls_err_prefix(err, "%s: key \"latency\"", w);
    ls_profile_free(&prof);
  }
  ls_model_free(&m);
  LS_TRY(rc);

  ls_template *t = NULL;
  if (ls_template_load(j->template_path, &t, err) != LS_OK) return ls_err_prefix(err, "%s: key \"template\"", w);
  j->n_stages = t->n_stages;
  int has_answer = t->has_answer_re;
  ls_template_free(t);
  if (j->objective != LS_OBJ_FIDELITY && !has_answer)
    return ls_err_set(err, LS_EINVAL, "%s: key \"objective\": %s needs answers, but template %s has no answer_regex",
                      w, ls_objective_name(j->objective), j->template_path);

  ls_dataset *ds = NULL;
  if (ls_dataset_load(j->dataset, j->dataset_format, &ds, err) != LS_OK)
    return ls_err_prefix(err, "%s: key \"dataset\"", w);
  int n = ds->n_total;
  int labelled = 1;
  for (int i = 0; i < n && i < j->limit; i++)
    if (ds->ex[i].answer < 0) labelled = 0;
  ls_dataset_free(ds);
  if (n == 0) return ls_err_set(err, LS_EINVAL, "%s: key \"dataset\": %s holds no examples", w, j->dataset);
  j->n_examples = n < j->limit ? n : j->limit;
  if (j->shards > j->n_examples)
    return ls_err_set(err, LS_EINVAL, "%s: key \"shards\": %d shards for %d examples in %s", w, j->shards,
                      j->n_examples, j->dataset);
  if (j->objective == LS_OBJ_ACCURACY && !labelled)
    return ls_err_set(err, LS_EINVAL, "%s: key \"objective\": accuracy needs gold answers, %s has unlabelled examples",
                      w, j->dataset);
  return LS_OK;
}

void ls_job_free(ls_job *j) {
  if (!j) return;
  free(j->path);
  free(j->text);
  free(j->name);
  free(j->model);
  free(j->tokenizer);
  free(j->template_path);
  free(j->dataset);
  free(j->split);
  free(j->latency);
  free(j);
}
