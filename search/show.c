/* litestage-search show / export: read a store serially (no MPI needed). The whole store is
 * read and checked first (ls_store_load): a damaged store prints nothing and fails in one line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_schedule.h"
#include "ls_search.h"
#include "ls_store.h"
#include "ls_util.h"

static void print_attr(hid_t f, const char *name) {
  char *s = NULL;
  ls_err e;
  if (ls_store_read_attr_str(f, name, &s, &e) == LS_OK) {
    printf("  %-18s %s\n", name, s);
    free(s);
    return;
  }
  long long v;
  if (ls_store_read_attr_int(f, name, &v, &e) == LS_OK) printf("  %-18s %lld\n", name, v);
}

static void print_provenance(hid_t f, const char *path) {
  printf("store %s\n", path);
  const char *attrs[] = {"status", "job_path", "job_hash", "model_name", "model_fingerprint", "objective", "strategy",
                         "n_stages", "n_layers", "n_examples", "n_shards", "ranks", "threads", "hosts", "runs",
                         "start_time", "end_time", "commit", "library_versions", NULL};
  for (int i = 0; attrs[i]; i++) print_attr(f, attrs[i]);
  char *job = NULL;
  ls_err e;
  if (ls_store_read_attr_str(f, "job_json", &job, &e) == LS_OK) {
    printf("\njob:\n%s%s", job, job[0] && job[strlen(job) - 1] == '\n' ? "" : "\n");
    free(job);
  }
}

static void print_reference(const ls_store_data *d) {
  printf("\nreference: score %.4f, chance %.4f, target %.4f\n", d->ref_mean_score, d->chance, d->target);
  if (!d->n_ref) return;
  printf("  %-6s %-8s %s\n", "ex", "score", "generated tokens per stage");
  for (int i = 0; i < d->n_ref; i++) {
    printf("  %-6d %-8.4f", i, d->ref_score[i]);
    for (int s = 0; s < d->n_stages; s++) printf(" %d", d->ref_gen_tokens[(size_t)i * d->n_stages + s]);
    printf("\n");
  }
}

static void print_importance(const ls_store_data *d) {
  if (!d->n_sub) return;
  printf("\nimportance (most redundant first):\n  %-5s %-10s %s\n", "rank", "sub-layer", "mean cosine");
  for (int i = 0; i < d->n_sub; i++) {
    int sub = d->ranking[i]; /* checked: in [0, n_sub) */
    char name[32];
    ls_sublayer_index_name(sub, name, sizeof name);
    printf("  %-5d %-10s %.6f\n", i, name, d->accumulated[sub]);
  }
}

static void print_candidates(const ls_store_data *d) {
  int S = d->n_stages;
  printf("\ncandidates (%lld):\n  %-5s %-5s %-14s %-10s %-9s %-12s %-12s %-4s %s\n", (long long)d->n_cands, "id", "kind",
         "budgets", "early-exit", "score", "predicted_ms", "measured_ms", "ok", "gen tokens/stage");
  for (int64_t i = 0; i < d->n_cands; i++) {
    const ls_cand *c = &d->cands[i];
    char b[256] = "", ee[48] = "-";
    size_t o = 0;
    for (int s = 0; s < S && o < sizeof b; s++) o += (size_t)snprintf(b + o, sizeof b - o, "%s%d", s ? "," : "", c->budget[s]);
    if (c->kind == LS_CAND_EARLY_EXIT) snprintf(ee, sizeof ee, "%d/%.3g", c->ee_window[0], c->ee_threshold[0]);
    printf("  %-5lld %-5s %-14s %-10s %-9.4f %-12.3f %-12.3f %-4s", (long long)c->id,
           c->kind == LS_CAND_EARLY_EXIT ? "ee" : "budg", b, ee, c->score, c->predicted_ms, c->measured_ms,
           c->meets_target ? "yes" : "no");
    for (int s = 0; s < S; s++) printf(" %.1f", c->n_generated[s]);
    printf("\n");
  }
}

int ls_search_show(const char *path, ls_err *err) {
  hid_t f = ls_store_open_read(path, err);
  if (f < 0) return LS_EIO;
  ls_store_data d;
  int rc = ls_store_load_file(f, path, &d, err);
  if (rc != LS_OK) {
    H5Fclose(f);
    return rc;
  }
  print_provenance(f, path);
  H5Fclose(f);
  print_reference(&d);
  print_importance(&d);
  print_candidates(&d);
  if (d.pareto) {
    printf("\nPareto front (score vs latency), %lld candidates:", (long long)d.n_pareto);
    for (int64_t i = 0; i < d.n_pareto; i++) printf(" #%lld", (long long)d.pareto[i]);
    printf("\n");
  }
  if (d.schedule) printf("\nchosen schedule:\n%s", d.schedule);
  else printf("\nno schedule chosen yet (status above)\n");
  ls_store_data_free(&d);
  return LS_OK;
}

/* A schedule for candidate row `row` when the store has none to start from: stage names and
 * provenance from the store. */
static int schedule_skeleton(hid_t f, const char *path, const ls_store_data *d, ls_schedule **out, ls_err *err) {
  /* a schedule's stages are matched to the template by name at run time: without the names
   * the store cannot give one that runs */
  if (!d->stage_names)
    return ls_err_set(err, LS_EFORMAT, "%s: /stage_names missing: the exported stages would have no names", path);
  ls_schedule *sc = NULL;
  LS_TRY(ls_schedule_new(d->n_stages, &sc, err));
  int rc = LS_OK;
  for (int s = 0; s < d->n_stages && rc == LS_OK; s++)
    rc = ls_schedule_set_str(&sc->stages[s].name, d->stage_names[s], err);
  const char *attrs[3] = {"model_name", "model_fingerprint", "objective"};
  char **fields[3] = {&sc->model_name, &sc->model_fingerprint, &sc->objective};
  for (int i = 0; i < 3 && rc == LS_OK; i++) {
    char *v = NULL;
    ls_err e2;
    if (ls_store_read_attr_str(f, attrs[i], &v, &e2) == LS_OK) rc = ls_schedule_set_str(fields[i], v, err);
    free(v);
  }
  sc->target = d->target;
  sc->reference_score = d->ref_mean_score;
  if (rc != LS_OK) {
    ls_schedule_free(sc);
    return ls_err_prefix(err, "%s", path);
  }
  *out = sc;
  return LS_OK;
}

/* Candidate row `row`'s masks, early exit and results into sc. */
static int set_candidate(ls_schedule *sc, const char *path, const ls_store_data *d, int64_t row, ls_err *err) {
  if (sc->n_stages != d->n_stages)
    return ls_err_set(err, LS_EFORMAT, "%s: /schedule has %d stages, the store's attributes say %d", path,
                      sc->n_stages, d->n_stages);
  const ls_cand *x = &d->cands[row];
  size_t L = (size_t)d->n_layers;
  for (int s = 0; s < d->n_stages; s++) {
    int rc = ls_sched_stage_set_mask(&sc->stages[s], d->masks + ((size_t)row * d->n_stages + s) * L, d->n_layers, err);
    if (rc != LS_OK) return ls_err_prefix(err, "%s: candidate %lld", path, (long long)x->id);
    sc->stages[s].ee_window = x->ee_window[s];
    sc->stages[s].ee_threshold = (float)x->ee_threshold[s];
  }
  sc->achieved_score = x->score;
  sc->predicted_latency_ms = x->predicted_ms;
  sc->measured_latency_ms = x->measured_ms;
  sc->prov_candidate_id = x->id;
  sc->speedup = NAN;
  return ls_schedule_set_str(&sc->prov_results_file, path, err);
}

/* Stores written before job paths were normalised hold "jobs/../data/..." */
static void normalize_paths(ls_schedule *sc) {
  char *paths[3] = {sc->template_path, sc->prov_job, sc->prov_results_file};
  for (int i = 0; i < 3; i++)
    if (paths[i] && paths[i][0]) ls_path_normalize(paths[i]);
}

int ls_search_export(const char *path, long long id, const char *out, ls_err *err) {
  hid_t f = ls_store_open_read(path, err);
  if (f < 0) return LS_EIO;
  ls_store_data d;
  int rc = ls_store_load_file(f, path, &d, err);
  ls_schedule *sc = NULL;
  if (rc == LS_OK && d.schedule) {
    char where[1200];
    snprintf(where, sizeof where, "%s: /schedule", path);
    rc = ls_schedule_parse(d.schedule, where, &sc, err);
  }
  if (rc == LS_OK && !d.schedule && id < 0)
    rc = ls_err_set(err, LS_ESTATE, "%s: the search has not chosen a schedule yet; name one with --candidate ID", path);
  if (rc == LS_OK && id >= 0) {
    int64_t row = -1;
    for (int64_t i = 0; i < d.n_cands && row < 0; i++)
      if (d.cands[i].id == id) row = i;
    if (row < 0) rc = ls_err_set(err, LS_EINVAL, "--candidate %lld: no such candidate in %s", id, path);
    if (rc == LS_OK && !sc) rc = schedule_skeleton(f, path, &d, &sc, err);
    if (rc == LS_OK) rc = set_candidate(sc, path, &d, row, err);
  }
  H5Fclose(f);
  if (rc == LS_OK) normalize_paths(sc);
  if (rc == LS_OK) rc = ls_schedule_write(sc, out, err);
  ls_schedule_free(sc);
  ls_store_data_free(&d);
  return rc;
}
