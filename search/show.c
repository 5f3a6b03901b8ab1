/* litestage-search show / export: read a store serially (no MPI needed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_schedule.h"
#include "ls_search.h"
#include "ls_store.h"

static hid_t open_ro(const char *path, ls_err *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) ls_err_set(err, LS_EIO, "%s: cannot open as an HDF5 store", path);
  return f;
}

static int read_all(hid_t f, const char *name, hid_t type, void **buf, hsize_t *dims, int *rank) {
  *buf = NULL;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return -1;
  hid_t sp = H5Dget_space(d);
  *rank = H5Sget_simple_extent_ndims(sp);
  H5Sget_simple_extent_dims(sp, dims, NULL);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  size_t sz = H5Tget_size(type);
  *buf = calloc((size_t)(n > 0 ? n : 1), sz);
  int rc = (*buf && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) >= 0) ? 0 : -1;
  H5Dclose(d);
  return rc;
}

/* A scalar-or-1 element fixed-length string dataset. */
static char *read_str_dataset(hid_t f, const char *name) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  hid_t t = H5Dget_type(d);
  size_t n = H5Tget_size(t);
  char *buf = calloc(n + 1, 1);
  if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    buf = NULL;
  }
  H5Tclose(t);
  H5Dclose(d);
  return buf;
}

static double attr_f64(hid_t loc, const char *obj, const char *name) {
  double v = NAN;
  hid_t o = H5Oopen(loc, obj, H5P_DEFAULT);
  if (o < 0) return v;
  hid_t a = H5Aopen(o, name, H5P_DEFAULT);
  if (a >= 0) {
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
  }
  H5Oclose(o);
  return v;
}

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

int ls_search_show(const char *path, ls_err *err) {
  hid_t f = open_ro(path, err);
  if (f < 0) return LS_EIO;
  long long S = 0, L = 0, E = 0;
  int rc = ls_store_read_attr_int(f, "n_stages", &S, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(f, "n_layers", &L, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(f, "n_examples", &E, err);
  if (rc != LS_OK) {
    H5Fclose(f);
    return ls_err_prefix(err, "%s", path);
  }
  printf("store %s\n", path);
  const char *attrs[] = {"status", "job_path", "job_hash", "model_name", "model_fingerprint", "objective", "strategy",
                         "n_stages", "n_layers", "n_examples", "n_shards", "ranks", "threads", "hosts", "runs",
                         "start_time", "end_time", "commit", "library_versions", NULL};
  for (int i = 0; attrs[i]; i++) print_attr(f, attrs[i]);
  char *job = NULL;
  if (ls_store_read_attr_str(f, "job_json", &job, err) == LS_OK) {
    printf("\njob:\n%s%s", job, job[0] && job[strlen(job) - 1] == '\n' ? "" : "\n");
    free(job);
  }
  hsize_t dims[3];
  int rank;
  void *buf = NULL;
  printf("\nreference: score %.4f, chance %.4f, target %.4f\n", attr_f64(f, "reference", "score"),
         attr_f64(f, "reference", "chance_score"), attr_f64(f, "reference", "target"));
  double *sc = NULL;
  if (read_all(f, "reference/score", H5T_NATIVE_DOUBLE, (void **)&sc, dims, &rank) == 0) {
    int32_t *gt = NULL;
    hsize_t d2[3];
    int r2;
    read_all(f, "reference/gen_tokens", H5T_NATIVE_INT32, (void **)&gt, d2, &r2);
    printf("  %-6s %-8s %s\n", "ex", "score", "generated tokens per stage");
    for (hsize_t i = 0; i < dims[0]; i++) {
      printf("  %-6llu %-8.4f", (unsigned long long)i, sc[i]);
      for (long long s = 0; gt && s < S; s++) printf(" %d", gt[i * S + s]);
      printf("\n");
    }
    free(gt);
  }
  free(sc);
  int32_t *rk = NULL;
  double *acc = NULL;
  if (read_all(f, "importance/ranking", H5T_NATIVE_INT32, (void **)&rk, dims, &rank) == 0 &&
      read_all(f, "importance/accumulated_cos", H5T_NATIVE_DOUBLE, (void **)&acc, dims, &rank) == 0) {
    printf("\nimportance (most redundant first):\n  %-5s %-10s %s\n", "rank", "sub-layer", "mean cosine");
    for (hsize_t i = 0; i < dims[0]; i++) {
      char name[32];
      snprintf(name, sizeof name, "L%d.%s", rk[i] / 2, rk[i] % 2 ? "ffn" : "attn");
      printf("  %-5llu %-10s %.6f\n", (unsigned long long)i, name, acc[rk[i]]);
    }
  }
  free(rk);
  free(acc);
  ls_cand *c = NULL;
  int64_t n = 0;
  if (ls_store_read_cands(f, (int)S, (int)L, &c, NULL, &n, err) == LS_OK) {
    printf("\ncandidates (%lld):\n  %-5s %-5s %-14s %-10s %-9s %-12s %-12s %-4s %s\n", (long long)n, "id", "kind",
           "budgets", "early-exit", "score", "predicted_ms", "measured_ms", "ok", "gen tokens/stage");
    for (int64_t i = 0; i < n; i++) {
      char b[128] = "", ee[32] = "-";
      size_t o = 0;
      for (long long s = 0; s < S && o < sizeof b; s++) o += (size_t)snprintf(b + o, sizeof b - o, "%s%d", s ? "," : "", c[i].budget[s]);
      if (c[i].kind == LS_CAND_EARLY_EXIT) snprintf(ee, sizeof ee, "%d/%.3g", c[i].ee_window[0], c[i].ee_threshold[0]);
      printf("  %-5lld %-5s %-14s %-10s %-9.4f %-12.3f %-12.3f %-4s", (long long)c[i].id,
             c[i].kind == LS_CAND_EARLY_EXIT ? "ee" : "budg", b, ee, c[i].score, c[i].predicted_ms, c[i].measured_ms,
             c[i].meets_target ? "yes" : "no");
      for (long long s = 0; s < S; s++) printf(" %.1f", c[i].gen_tokens[s]);
      printf("\n");
    }
  }
  int64_t *pf = NULL;
  if (read_all(f, "pareto/candidate_id", H5T_NATIVE_INT64, (void **)&pf, dims, &rank) == 0) {
    printf("\nPareto front (score vs latency), %llu candidates:", (unsigned long long)dims[0]);
    for (hsize_t i = 0; i < dims[0]; i++) printf(" #%lld", (long long)pf[i]);
    printf("\n");
  }
  free(pf);
  free(c);
  char *sched = read_str_dataset(f, "schedule");
  if (sched) printf("\nchosen schedule:\n%s", sched);
  else printf("\nno schedule chosen yet (status above)\n");
  free(sched);
  free(buf);
  H5Fclose(f);
  return LS_OK;
}

int ls_search_export(const char *path, long long id, const char *out, ls_err *err) {
  hid_t f = open_ro(path, err);
  if (f < 0) return LS_EIO;
  long long S = 0, L = 0;
  int rc = ls_store_read_attr_int(f, "n_stages", &S, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(f, "n_layers", &L, err);
  char *json = rc == LS_OK ? read_str_dataset(f, "schedule") : NULL;
  ls_schedule *sc = NULL;
  if (rc == LS_OK && json) rc = ls_schedule_parse(json, path, &sc, err);
  if (rc == LS_OK && !json && id < 0)
    rc = ls_err_set(err, LS_ESTATE, "%s: the search has not chosen a schedule yet; name one with --candidate ID", path);
  if (rc == LS_OK && id >= 0) {
    ls_cand *c = NULL;
    uint8_t *m = NULL;
    int64_t n = 0;
    rc = ls_store_read_cands(f, (int)S, (int)L, &c, &m, &n, err);
    int64_t row = -1;
    for (int64_t i = 0; rc == LS_OK && i < n; i++)
      if (c[i].id == id) row = i;
    if (rc == LS_OK && row < 0) rc = ls_err_set(err, LS_EINVAL, "--candidate %lld: no such candidate in %s", id, path);
    if (rc == LS_OK && !sc) {
      rc = ls_schedule_new((int)S, &sc, err);
      char **names = NULL;
      hsize_t dims[3];
      int rank;
      hid_t d = rc == LS_OK ? H5Dopen2(f, "stage_names", H5P_DEFAULT) : -1;
      if (d >= 0) {
        hid_t t = H5Dget_type(d);
        size_t w = H5Tget_size(t);
        char *raw = calloc((size_t)S, w + 1);
        if (raw && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0)
          for (long long s = 0; s < S && rc == LS_OK; s++) {
            char nm[256];
            snprintf(nm, sizeof nm, "%.*s", (int)w, raw + (size_t)s * w);
            rc = ls_schedule_set_str(&sc->stages[s].name, nm, err);
          }
        free(raw);
        H5Tclose(t);
        H5Dclose(d);
      }
      (void)names;
      (void)dims;
      (void)rank;
      char *v = NULL;
      ls_err e2;
      if (rc == LS_OK && ls_store_read_attr_str(f, "model_name", &v, &e2) == LS_OK) rc = ls_schedule_set_str(&sc->model_name, v, err);
      free(v);
      v = NULL;
      if (rc == LS_OK && ls_store_read_attr_str(f, "model_fingerprint", &v, &e2) == LS_OK) rc = ls_schedule_set_str(&sc->model_fingerprint, v, err);
      free(v);
      v = NULL;
      if (rc == LS_OK && ls_store_read_attr_str(f, "objective", &v, &e2) == LS_OK) rc = ls_schedule_set_str(&sc->objective, v, err);
      free(v);
      sc->target = attr_f64(f, "reference", "target");
      sc->reference_score = attr_f64(f, "reference", "score");
    }
    if (rc == LS_OK) {
      const ls_cand *x = &c[row];
      for (long long s = 0; s < S && rc == LS_OK; s++) {
        rc = ls_sched_stage_set_mask(&sc->stages[s], m + ((size_t)row * S + s) * L, (int)L, err);
        sc->stages[s].ee_window = x->ee_window[s];
        sc->stages[s].ee_threshold = (float)x->ee_threshold[s];
      }
      sc->achieved_score = x->score;
      sc->predicted_latency_ms = x->predicted_ms;
      sc->measured_latency_ms = x->measured_ms;
      sc->prov_candidate_id = x->id;
      sc->speedup = NAN;
      if (rc == LS_OK) rc = ls_schedule_set_str(&sc->prov_results_file, path, err);
    }
    free(c);
    free(m);
  }
  if (rc == LS_OK) rc = ls_schedule_write(sc, out, err);
  ls_schedule_free(sc);
  free(json);
  H5Fclose(f);
  return rc;
}
