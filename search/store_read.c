/* Serial readers of a store (ls_store.h): no MPI. A store is input like any other file: every
 * read is sized from the dataset's or attribute's own dataspace, checked against the root
 * attributes and the limits in ls_store.h before anything is allocated, and every index read
 * from it is range-checked; an error names the file and the dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_store.h"

/* "[3][4]" */
static void fmt_dims(char *buf, size_t n, int rank, const hsize_t *dims) {
  size_t o = 0;
  buf[0] = 0;
  for (int k = 0; k < rank && o < n; k++) {
    if (dims[k] == LS_STORE_ANY_DIM) o += (size_t)snprintf(buf + o, n - o, "[*]");
    else o += (size_t)snprintf(buf + o, n - o, "[%llu]", (unsigned long long)dims[k]);
  }
}

int ls_store_open_dataset(hid_t file, const char *path, const char *name, int rank, const hsize_t *want,
                          hsize_t *dims, hid_t *out, ls_err *err) {
  *out = -1;
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d < 0) return ls_err_set(err, LS_EFORMAT, "%s: /%s missing or unreadable", path, name);
  hid_t sp = H5Dget_space(d);
  hsize_t got[LS_STORE_MAX_RANK];
  int r = sp < 0 || H5Sget_simple_extent_type(sp) != H5S_SIMPLE ? -1 : H5Sget_simple_extent_ndims(sp);
  if (r >= 1 && r <= LS_STORE_MAX_RANK && H5Sget_simple_extent_dims(sp, got, NULL) < 0) r = -1;
  if (sp >= 0) H5Sclose(sp);
  int rc = LS_OK;
  char a[96], b[96];
  if (r != rank) {
    rc = ls_err_set(err, LS_EFORMAT, "%s: /%s: %d dimensions, expected %d", path, name, r, rank);
  } else {
    for (int k = 0; k < rank; k++)
      if (want[k] != LS_STORE_ANY_DIM && want[k] != got[k]) {
        fmt_dims(a, sizeof a, rank, got);
        fmt_dims(b, sizeof b, rank, want);
        rc = ls_err_set(err, LS_EFORMAT, "%s: /%s: shape %s, but the store's attributes say %s", path, name, a, b);
        break;
      }
  }
  if (rc != LS_OK) {
    H5Dclose(d);
    return rc;
  }
  if (dims) memcpy(dims, got, (size_t)rank * sizeof *dims);
  *out = d;
  return LS_OK;
}

/* 1 if the link loc/a/b/... exists, 0 if not, -1 if the file cannot tell (damaged). */
static int link_exists(hid_t loc, const char *name) {
  char part[256];
  for (const char *p = name;; p++) {
    if (*p != '/' && *p) continue;
    size_t n = (size_t)(p - name);
    if (n >= sizeof part) return -1;
    memcpy(part, name, n);
    part[n] = 0;
    htri_t e = H5Lexists(loc, part, H5P_DEFAULT);
    if (e <= 0) return e < 0 ? -1 : 0;
    if (!*p) return 1;
  }
}

/* An attribute holding exactly one value of class `cls` (its type's size returned). */
static int open_attr(hid_t loc, const char *name, H5T_class_t cls, hid_t *a, size_t *size, ls_err *err) {
  *a = H5Aexists(loc, name) > 0 ? H5Aopen(loc, name, H5P_DEFAULT) : -1;
  if (*a < 0) return ls_err_set(err, LS_EFORMAT, "store: attribute \"%s\" missing", name);
  hid_t sp = H5Aget_space(*a), t = H5Aget_type(*a);
  hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
  H5T_class_t c = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
  *size = t < 0 ? 0 : H5Tget_size(t);
  int vlen = t >= 0 && c == H5T_STRING && H5Tis_variable_str(t) > 0;
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  if (n == 1 && c == cls && !vlen && *size > 0 && *size <= LS_STORE_MAX_STRING) return LS_OK;
  H5Aclose(*a);
  *a = -1;
  return ls_err_set(err, LS_EFORMAT, "store: attribute \"%s\" is not one %s", name,
                    cls == H5T_STRING ? "fixed-length string" : "number");
}

static hid_t str_mem_type(size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, n);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  return t;
}

int ls_store_read_attr_str(hid_t loc, const char *name, char **out, ls_err *err) {
  *out = NULL;
  hid_t a;
  size_t n;
  LS_TRY(open_attr(loc, name, H5T_STRING, &a, &n, err));
  hid_t mt = str_mem_type(n + 1);
  char *buf = calloc(n + 2, 1);
  int rc = buf && H5Aread(a, mt, buf) >= 0 ? LS_OK : ls_err_set(err, LS_EFORMAT, "store: attribute \"%s\" unreadable", name);
  H5Tclose(mt);
  H5Aclose(a);
  if (rc != LS_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  return LS_OK;
}

int ls_store_read_attr_int(hid_t loc, const char *name, long long *out, ls_err *err) {
  hid_t a;
  size_t n;
  LS_TRY(open_attr(loc, name, H5T_INTEGER, &a, &n, err));
  int64_t v = 0;
  herr_t h = H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  if (h < 0) return ls_err_set(err, LS_EFORMAT, "store: attribute \"%s\" unreadable", name);
  *out = v;
  return LS_OK;
}

int ls_store_read_attr_f64(hid_t loc, const char *name, double *out, ls_err *err) {
  hid_t a;
  size_t n;
  LS_TRY(open_attr(loc, name, H5T_FLOAT, &a, &n, err));
  herr_t h = H5Aread(a, H5T_NATIVE_DOUBLE, out);
  H5Aclose(a);
  if (h < 0) return ls_err_set(err, LS_EFORMAT, "store: attribute \"%s\" unreadable", name);
  return LS_OK;
}

/* ---- the whole store ---------------------------------------------------- */

/* Reads dataset `name` of the given shape whole into a new buffer of mem_type elements.
 * Absent (before the pass that writes it): LS_OK with *buf NULL unless required. */
static int read_shaped(hid_t f, const char *path, const char *name, int required, hid_t mem_type, int rank,
                       const hsize_t *want, hsize_t *dims, void **buf, ls_err *err) {
  *buf = NULL;
  int e = link_exists(f, name);
  if (e < 0) return ls_err_set(err, LS_EFORMAT, "%s: /%s: the file is damaged (its links cannot be read)", path, name);
  if (e == 0) return required ? ls_err_set(err, LS_EFORMAT, "%s: /%s missing", path, name) : LS_OK;
  hid_t d;
  LS_TRY(ls_store_open_dataset(f, path, name, rank, want, dims, &d, err));
  size_t n = 1;
  for (int k = 0; k < rank; k++) {
    if (want[k] == LS_STORE_ANY_DIM && dims[k] > LS_STORE_MAX_ROWS) {
      H5Dclose(d);
      return ls_err_set(err, LS_EFORMAT, "%s: /%s: %llu entries, above the limit of %d", path, name,
                        (unsigned long long)dims[k], LS_STORE_MAX_ROWS);
    }
    n *= (size_t)dims[k];
  }
  *buf = calloc(n ? n : 1, H5Tget_size(mem_type));
  int rc = LS_OK;
  if (!*buf) rc = ls_err_set(err, LS_ENOMEM, "%s: /%s: out of memory", path, name);
  else if (n && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0)
    rc = ls_err_set(err, LS_EFORMAT, "%s: /%s unreadable", path, name);
  H5Dclose(d);
  if (rc != LS_OK) {
    free(*buf);
    *buf = NULL;
  }
  return rc;
}

/* A fixed-length string dataset of `count` elements, each at most LS_STORE_MAX_STRING bytes:
 * a malloc'd array of malloc'd strings (NULL if absent and not required). */
static int read_strings(hid_t f, const char *path, const char *name, int required, hsize_t count, char ***out,
                        ls_err *err) {
  *out = NULL;
  int e = link_exists(f, name);
  if (e < 0) return ls_err_set(err, LS_EFORMAT, "%s: /%s: the file is damaged (its links cannot be read)", path, name);
  if (e == 0) return required ? ls_err_set(err, LS_EFORMAT, "%s: /%s missing", path, name) : LS_OK;
  hid_t d;
  hsize_t want[1] = {count}, dims[1];
  LS_TRY(ls_store_open_dataset(f, path, name, 1, want, dims, &d, err));
  hid_t t = H5Dget_type(d);
  size_t w = t < 0 ? 0 : H5Tget_size(t);
  int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 && w > 0 &&
           w <= LS_STORE_MAX_STRING && (hsize_t)w * count <= LS_STORE_MAX_STRING;
  if (t >= 0) H5Tclose(t);
  if (!ok) {
    H5Dclose(d);
    return ls_err_set(err, LS_EFORMAT, "%s: /%s: not fixed-length strings of at most %d bytes in all", path, name,
                      LS_STORE_MAX_STRING);
  }
  hid_t mt = str_mem_type(w + 1);
  char *raw = calloc((size_t)count + 1, w + 1);
  char **v = calloc((size_t)count + 1, sizeof *v);
  int rc = raw && v ? LS_OK : ls_err_set(err, LS_ENOMEM, "%s: /%s: out of memory", path, name);
  if (rc == LS_OK && count && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
    rc = ls_err_set(err, LS_EFORMAT, "%s: /%s unreadable", path, name);
  for (hsize_t i = 0; i < count && rc == LS_OK; i++) {
    const char *s = raw + (size_t)i * (w + 1);
    size_t len = strnlen(s, w);
    v[i] = malloc(len + 1);
    if (!v[i]) {
      rc = ls_err_set(err, LS_ENOMEM, "%s: /%s: out of memory", path, name);
      break;
    }
    memcpy(v[i], s, len);
    v[i][len] = 0;
  }
  H5Tclose(mt);
  H5Dclose(d);
  free(raw);
  if (rc != LS_OK) {
    for (hsize_t i = 0; v && i < count; i++) free(v[i]);
    free(v);
    return rc;
  }
  *out = v;
  return LS_OK;
}

static void free_strings(char **v, hsize_t n) {
  for (hsize_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

static int read_shape_attrs(hid_t f, const char *path, ls_store_data *d, ls_err *err) {
  long long S = 0, L = 0, E = 0;
  int rc = ls_store_read_attr_int(f, "n_stages", &S, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(f, "n_layers", &L, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(f, "n_examples", &E, err);
  if (rc != LS_OK) return ls_err_prefix(err, "%s", path);
  if (S < 1 || S > LS_SEARCH_MAX_STAGES || L < 1 || L > LS_STORE_MAX_LAYERS || E < 1 || E > LS_STORE_MAX_EXAMPLES)
    return ls_err_set(err, LS_EFORMAT,
                      "%s: attributes n_stages %lld, n_layers %lld, n_examples %lld: outside 1..%d, 1..%d, 1..%d", path,
                      S, L, E, LS_SEARCH_MAX_STAGES, LS_STORE_MAX_LAYERS, LS_STORE_MAX_EXAMPLES);
  d->n_stages = (int)S;
  d->n_layers = (int)L;
  d->n_examples = (int)E;
  return LS_OK;
}

static int read_reference(hid_t f, const char *path, ls_store_data *d, ls_err *err) {
  hsize_t want1[1] = {(hsize_t)d->n_examples}, want2[2] = {(hsize_t)d->n_examples, (hsize_t)d->n_stages}, dims[2];
  LS_TRY(read_shaped(f, path, "reference/score", 0, H5T_NATIVE_DOUBLE, 1, want1, dims, (void **)&d->ref_score, err));
  if (!d->ref_score) return LS_OK; /* before the reference pass */
  d->n_ref = d->n_examples;
  LS_TRY(read_shaped(f, path, "reference/gen_tokens", 1, H5T_NATIVE_INT32, 2, want2, dims, (void **)&d->ref_gen_tokens,
                     err));
  hid_t g = H5Gopen2(f, "reference", H5P_DEFAULT);
  if (g < 0) return ls_err_set(err, LS_EFORMAT, "%s: /reference unreadable", path);
  const char *names[3] = {"score", "chance_score", "target"};
  double *vals[3] = {&d->ref_mean_score, &d->chance, &d->target};
  int rc = LS_OK;
  for (int i = 0; i < 3 && rc == LS_OK; i++) {
    rc = ls_store_read_attr_f64(g, names[i], vals[i], err);
    if (rc != LS_OK) ls_err_prefix(err, "%s: /reference", path);
  }
  H5Gclose(g);
  return rc;
}

static int read_importance(hid_t f, const char *path, ls_store_data *d, ls_err *err) {
  int n = 2 * d->n_layers;
  hsize_t want[1] = {(hsize_t)n}, dims[1];
  LS_TRY(read_shaped(f, path, "importance/ranking", 0, H5T_NATIVE_INT32, 1, want, dims, (void **)&d->ranking, err));
  if (!d->ranking) return LS_OK; /* before the importance pass */
  d->n_sub = n;
  for (int i = 0; i < n; i++)
    if (d->ranking[i] < 0 || d->ranking[i] >= n)
      return ls_err_set(err, LS_EFORMAT, "%s: /importance/ranking[%d] = %d: not a sub-layer index (0..%d)", path, i,
                        (int)d->ranking[i], n - 1);
  return read_shaped(f, path, "importance/accumulated_cos", 1, H5T_NATIVE_DOUBLE, 1, want, dims,
                     (void **)&d->accumulated, err);
}

static int read_results(hid_t f, const char *path, ls_store_data *d, ls_err *err) {
  hsize_t want[1] = {LS_STORE_ANY_DIM}, dims[1];
  LS_TRY(read_shaped(f, path, "pareto/candidate_id", 0, H5T_NATIVE_INT64, 1, want, dims, (void **)&d->pareto, err));
  if (d->pareto) {
    if (dims[0] > (hsize_t)d->n_cands)
      return ls_err_set(err, LS_EFORMAT, "%s: /pareto/candidate_id: %llu entries for %lld candidates", path,
                        (unsigned long long)dims[0], (long long)d->n_cands);
    d->n_pareto = (int64_t)dims[0];
  }
  char **sched = NULL;
  LS_TRY(read_strings(f, path, "schedule", 0, 1, &sched, err));
  if (sched) d->schedule = sched[0];
  free(sched);
  return read_strings(f, path, "stage_names", 0, (hsize_t)d->n_stages, &d->stage_names, err);
}

int ls_store_load_file(hid_t f, const char *path, ls_store_data *d, ls_err *err) {
  memset(d, 0, sizeof *d);
  d->ref_mean_score = d->chance = d->target = NAN;
  int rc = read_shape_attrs(f, path, d, err);
  if (rc == LS_OK) rc = read_reference(f, path, d, err);
  if (rc == LS_OK) rc = read_importance(f, path, d, err);
  if (rc == LS_OK) rc = ls_store_read_cands(f, path, d->n_stages, d->n_layers, &d->cands, &d->masks, &d->n_cands, err);
  if (rc == LS_OK) rc = read_results(f, path, d, err);
  if (rc != LS_OK) ls_store_data_free(d);
  return rc;
}

hid_t ls_store_open_read(const char *path, ls_err *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are ours to report, in one line */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) ls_err_set(err, LS_EIO, "%s: cannot open as an HDF5 store (missing, unreadable or not HDF5)", path);
  return f;
}

int ls_store_load(const char *path, ls_store_data *d, ls_err *err) {
  memset(d, 0, sizeof *d);
  hid_t f = ls_store_open_read(path, err);
  if (f < 0) return LS_EIO;
  int rc = ls_store_load_file(f, path, d, err);
  if (H5Fclose(f) < 0 && rc == LS_OK) {
    ls_store_data_free(d);
    rc = ls_err_set(err, LS_EFORMAT, "%s: HDF5 close failed (the file is damaged)", path);
  }
  return rc;
}

void ls_store_data_free(ls_store_data *d) {
  free(d->ref_score);
  free(d->ref_gen_tokens);
  free(d->ranking);
  free(d->accumulated);
  free(d->cands);
  free(d->masks);
  free(d->pareto);
  free(d->schedule);
  free_strings(d->stage_names, (hsize_t)d->n_stages);
  memset(d, 0, sizeof *d);
}
