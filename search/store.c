/* The HDF5 results store (ls_store.h, docs/hdf5-schema.md). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ls_schedule.h"
#include "ls_store.h"
#include "ls_util.h"

#define CHUNK_ROWS 64
#define DEFLATE_LEVEL 4

/* ---- small helpers ---------------------------------------------------- */

static int h5fail(ls_err *err, const char *path, const char *what) {
  return ls_err_set(err, LS_EIO, "%s: HDF5 %s failed", path, what);
}

static hid_t str_type(size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, n ? n : 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  return t;
}

static int set_attr(hid_t loc, const char *name, hid_t type, const void *val) {
  if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0) return -1;
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 ? -1 : (H5Awrite(a, type, val) < 0 ? -1 : 0);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return rc;
}

static int set_attr_str(hid_t loc, const char *name, const char *val) {
  if (!val) val = "";
  hid_t t = str_type(strlen(val) + 1);
  int rc = set_attr(loc, name, t, val);
  H5Tclose(t);
  return rc;
}

static int set_attr_i64(hid_t loc, const char *name, long long v) {
  int64_t x = v;
  return set_attr(loc, name, H5T_NATIVE_INT64, &x);
}

static int set_attr_f64(hid_t loc, const char *name, double v) { return set_attr(loc, name, H5T_NATIVE_DOUBLE, &v); }

static hid_t dxpl_collective(void) {
  hid_t p = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(p, H5FD_MPIO_COLLECTIVE);
  return p;
}

/* A small contiguous dataset written whole by rank 0 (others select nothing), replacing any
 * dataset of that name. Collective. */
static int write_small(ls_store *s, hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                       const void *buf) {
  if (H5Lexists(loc, name, H5P_DEFAULT) > 0 && H5Ldelete(loc, name, H5P_DEFAULT) < 0) return -1;
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0) {
    H5Sclose(sp);
    return -1;
  }
  hid_t ms = H5Scopy(sp);
  if (s->rank != 0) {
    H5Sselect_none(ms);
    H5Sselect_none(sp);
  }
  hid_t x = dxpl_collective();
  herr_t h = H5Dwrite(d, type, ms, sp, x, buf);
  H5Pclose(x);
  H5Sclose(ms);
  H5Sclose(sp);
  H5Dclose(d);
  return h < 0 ? -1 : 0;
}

static int write_strings(ls_store *s, hid_t loc, const char *name, const char *const *v, int n) {
  size_t w = 1;
  for (int i = 0; i < n; i++)
    if (v[i] && strlen(v[i]) + 1 > w) w = strlen(v[i]) + 1;
  char *buf = calloc(n > 0 ? (size_t)n : 1, w);
  if (!buf) return -1;
  for (int i = 0; i < n; i++)
    if (v[i]) memcpy(buf + (size_t)i * w, v[i], strlen(v[i]));
  hid_t t = str_type(w);
  hsize_t dims[1] = {(hsize_t)n};
  int rc = write_small(s, loc, name, t, 1, dims, buf);
  H5Tclose(t);
  free(buf);
  return rc;
}

/* ---- the candidate table ----------------------------------------------- */

typedef enum { COL_ID, COL_KIND, COL_BUDGET, COL_MASK, COL_EEW, COL_EET, COL_SCORE, COL_MEAS, COL_PRED, COL_PTOK,
               COL_GTOK, COL_MEETS, COL_RUN, COL_ROUND, N_COLS } col_id;

static const char *const col_names[N_COLS] = {"id", "kind", "budget", "skip_mask", "ee_window", "ee_threshold",
                                              "score", "measured_ms", "predicted_ms", "prompt_tokens",
                                              "gen_tokens", "meets_target", "run", "round"};

static hid_t col_type(int c) {
  switch (c) {
    case COL_ID: return H5T_NATIVE_INT64;
    case COL_KIND: case COL_BUDGET: case COL_EEW: case COL_RUN: case COL_ROUND: return H5T_NATIVE_INT32;
    case COL_MASK: case COL_MEETS: return H5T_NATIVE_UINT8;
    default: return H5T_NATIVE_DOUBLE;
  }
}

/* Dimensions after the row: [] / [S] / [S][L]. */
static int col_inner(const ls_store *s, int c, hsize_t *inner) {
  switch (c) {
    case COL_BUDGET: case COL_EEW: case COL_EET: case COL_PTOK: case COL_GTOK:
      inner[0] = (hsize_t)s->n_stages;
      return 1;
    case COL_MASK:
      inner[0] = (hsize_t)s->n_stages;
      inner[1] = (hsize_t)s->n_layers;
      return 2;
    default: return 0;
  }
}

static int create_extendible(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *inner,
                             hsize_t chunk_rows) {
  hsize_t dims[3] = {0, 0, 0}, maxd[3] = {H5S_UNLIMITED, 0, 0}, chunk[3] = {chunk_rows, 1, 1};
  for (int k = 1; k < rank; k++) dims[k] = maxd[k] = chunk[k] = inner[k - 1];
  hid_t sp = H5Screate_simple(rank, dims, maxd);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, chunk);
  H5Pset_deflate(dcpl, DEFLATE_LEVEL);
  hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(sp);
  if (d < 0) return -1;
  H5Dclose(d);
  return 0;
}

/* Packs column c of cands into buf (row-major, inner dims packed). */
static void pack_col(const ls_store *s, int c, const ls_cand *cands, const uint8_t *masks, int n, void *buf) {
  int S = s->n_stages;
  for (int i = 0; i < n; i++) {
    const ls_cand *x = &cands[i];
    switch (c) {
      case COL_ID: ((int64_t *)buf)[i] = x->id; break;
      case COL_KIND: ((int32_t *)buf)[i] = x->kind; break;
      case COL_BUDGET: memcpy((int32_t *)buf + (size_t)i * S, x->budget, (size_t)S * 4); break;
      case COL_EEW: memcpy((int32_t *)buf + (size_t)i * S, x->ee_window, (size_t)S * 4); break;
      case COL_EET: memcpy((double *)buf + (size_t)i * S, x->ee_threshold, (size_t)S * 8); break;
      case COL_PTOK: memcpy((double *)buf + (size_t)i * S, x->prompt_tokens, (size_t)S * 8); break;
      case COL_GTOK: memcpy((double *)buf + (size_t)i * S, x->n_generated, (size_t)S * 8); break;
      case COL_MASK: {
        size_t n_mask = (size_t)S * s->n_layers;
        memcpy((uint8_t *)buf + (size_t)i * n_mask, masks + (size_t)i * n_mask, n_mask);
        break;
      }
      case COL_SCORE: ((double *)buf)[i] = x->score; break;
      case COL_MEAS: ((double *)buf)[i] = x->measured_ms; break;
      case COL_PRED: ((double *)buf)[i] = x->predicted_ms; break;
      case COL_MEETS: ((uint8_t *)buf)[i] = (uint8_t)x->meets_target; break;
      case COL_RUN: ((int32_t *)buf)[i] = x->run; break;
      case COL_ROUND: ((int32_t *)buf)[i] = x->round; break;
      default: break;
    }
  }
}

static void unpack_col(const ls_store *s, int c, ls_cand *cands, uint8_t *masks, int64_t n, const void *buf) {
  int S = s->n_stages;
  for (int64_t i = 0; i < n; i++) {
    ls_cand *x = &cands[i];
    switch (c) {
      case COL_ID: x->id = ((const int64_t *)buf)[i]; break;
      case COL_KIND: x->kind = ((const int32_t *)buf)[i]; break;
      case COL_BUDGET: memcpy(x->budget, (const int32_t *)buf + (size_t)i * S, (size_t)S * 4); break;
      case COL_EEW: memcpy(x->ee_window, (const int32_t *)buf + (size_t)i * S, (size_t)S * 4); break;
      case COL_EET: memcpy(x->ee_threshold, (const double *)buf + (size_t)i * S, (size_t)S * 8); break;
      case COL_PTOK: memcpy(x->prompt_tokens, (const double *)buf + (size_t)i * S, (size_t)S * 8); break;
      case COL_GTOK: memcpy(x->n_generated, (const double *)buf + (size_t)i * S, (size_t)S * 8); break;
      case COL_MASK:
        if (masks) {
          size_t n_mask = (size_t)S * s->n_layers;
          memcpy(masks + (size_t)i * n_mask, (const uint8_t *)buf + (size_t)i * n_mask, n_mask);
        }
        break;
      case COL_SCORE: x->score = ((const double *)buf)[i]; break;
      case COL_MEAS: x->measured_ms = ((const double *)buf)[i]; break;
      case COL_PRED: x->predicted_ms = ((const double *)buf)[i]; break;
      case COL_MEETS: x->meets_target = ((const uint8_t *)buf)[i]; break;
      case COL_RUN: x->run = ((const int32_t *)buf)[i]; break;
      case COL_ROUND: x->round = ((const int32_t *)buf)[i]; break;
      default: break;
    }
  }
}

static size_t col_row_bytes(const ls_store *s, int c) {
  hsize_t inner[2];
  int k = col_inner(s, c, inner);
  size_t n = H5Tget_size(col_type(c));
  for (int i = 0; i < k; i++) n *= inner[i];
  return n;
}

/* ---- file lifecycle ----------------------------------------------------- */

static int set_paths(ls_store *s, const char *path, MPI_Comm comm, ls_err *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* HDF5 failures become our one-line errors, not stack dumps */
  memset(s, 0, sizeof *s);
  s->file = -1;
  s->comm = comm;
  MPI_Comm_rank(comm, &s->rank);
  MPI_Comm_size(comm, &s->size);
  size_t n = strlen(path) + 16;
  s->path = strdup(path);
  s->work_path = malloc(n);
  if (!s->path || !s->work_path) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  snprintf(s->work_path, n, "%s.work", path);
  return LS_OK;
}

static hid_t open_mpio(ls_store *s, int create) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, s->comm, MPI_INFO_NULL);
  hid_t f = create ? H5Fcreate(s->work_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                   : H5Fopen(s->work_path, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  return f;
}

/* Everyone agrees on rank 0's status (and message). */
static int agree(ls_store *s, int rc, ls_err *err) {
  int32_t code = rc;
  char msg[LS_ERR_MSG_MAX];
  snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
  if (MPI_Bcast(&code, 1, MPI_INT32_T, 0, s->comm) != MPI_SUCCESS ||
      MPI_Bcast(msg, LS_ERR_MSG_MAX, MPI_CHAR, 0, s->comm) != MPI_SUCCESS)
    return ls_err_set(err, LS_EMPI, "%s: MPI broadcast failed (a rank died?)", s->path);
  if (code != LS_OK) return ls_err_set(err, code, "%s", msg);
  return LS_OK;
}

/* Flush, then rank 0 publishes a copy of the work file as PATH (temp + fsync + rename). */
static int commit(ls_store *s, ls_err *err) {
  if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0) return h5fail(err, s->work_path, "flush");
  if (MPI_Barrier(s->comm) != MPI_SUCCESS) return ls_err_set(err, LS_EMPI, "%s: MPI barrier failed (a rank died?)", s->path);
  int rc = LS_OK;
  if (s->rank == 0) {
    char *data = NULL;
    size_t len = 0;
    rc = ls_read_file(s->work_path, &data, &len, err);
    if (rc == LS_OK) rc = ls_write_file_atomic(s->path, data, len, err);
    free(data);
  }
  return agree(s, rc, err);
}

/* The folder holding path (malloc'd): "." for a bare name. */
static char *parent_dir(const char *path) {
  char *dir = strdup(path);
  if (!dir) return NULL;
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, strlen(dir) + 1, ".");
  else if (slash == dir) slash[1] = 0;
  else *slash = 0;
  return dir;
}

int ls_store_check_path(const char *path, int resume, int overwrite, ls_err *err) {
  char *dir = parent_dir(path);
  if (!dir) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  struct stat st;
  int rc = LS_OK;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    rc = ls_err_set(err, LS_EIO, "%s: the folder %s does not exist", path, dir);
  } else {
    /* a probe file: the permission bits do not tell for root or a read-only mount */
    size_t n = strlen(path) + 32;
    char *probe = malloc(n);
    int fd = -1;
    if (probe) {
      snprintf(probe, n, "%s.probe.%ld", path, (long)getpid());
      fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    }
    if (!probe) rc = ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
    else if (fd < 0) rc = ls_err_set(err, LS_EIO, "%s: cannot create files in %s: %s", path, dir, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(probe);
    }
    free(probe);
  }
  int exists = stat(path, &st) == 0;
  if (rc == LS_OK && resume && (!exists || !S_ISREG(st.st_mode) || access(path, R_OK) != 0))
    rc = ls_err_set(err, LS_EIO, "%s: --resume: %s", path, exists ? "not a readable file" : "no such store");
  if (rc == LS_OK && !resume && !overwrite && exists)
    rc = ls_err_set(err, LS_EINVAL, "%s: store exists; use --resume to continue it or --force to replace it", path);
  free(dir);
  if (rc == LS_OK) rc = ls_store_check_space(path, (resume ? (long long)st.st_size : 0) + LS_STORE_SPACE_MARGIN, err);
  return rc;
}

/* Bytes of the file at path (0 if absent). */
static long long file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* Parallel HDF5 cannot recover from a write that fails on one rank (the ranks part ways inside
 * the library and wait for each other forever), so the disk is checked before every collective
 * write: rank 0 needs room for the work file's growth plus a copy of it (the commit). Collective. */
static int space_check(ls_store *s, ls_err *err) {
  int rc = LS_OK;
  if (s->rank == 0) {
    long long need = file_bytes(s->work_path) + LS_STORE_SPACE_MARGIN;
    rc = ls_store_check_space(s->path, need, err);
  }
  return agree(s, rc, err);
}

int ls_store_check_space(const char *path, long long need, ls_err *err) {
  char *dir = parent_dir(path);
  if (!dir) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  struct statvfs v;
  int rc = LS_OK;
  if (statvfs(dir, &v) != 0) {
    rc = ls_err_set(err, LS_EIO, "%s: cannot check the free space of %s: %s", path, dir, strerror(errno));
  } else {
    long long avail = (long long)v.f_bavail * (long long)v.f_frsize;
    if (avail < need)
      rc = ls_err_set(err, LS_EIO, "%s: %s (%lld bytes free in %s, the next commit needs %lld); the store keeps "
                      "the last commit: free space and continue with --resume", path, strerror(ENOSPC), avail, dir, need);
  }
  free(dir);
  return rc;
}

static int write_info(ls_store *s, const ls_store_info *in, int first) {
  hid_t f = s->file;
  int bad = 0;
  char now[32];
  ls_utc_now(now);
  if (MPI_Bcast(now, sizeof now, MPI_CHAR, 0, s->comm) != MPI_SUCCESS) return -1;
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  char mpi_ver[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  int len = 0;
  MPI_Get_library_version(mpi_ver, &len);
  char *nl = strchr(mpi_ver, ','); /* "Open MPI v4.1.4, package: ..." -> first part */
  if (nl) *nl = 0;
  MPI_Bcast(mpi_ver, sizeof mpi_ver, MPI_CHAR, 0, s->comm);
  char libs[512];
  snprintf(libs, sizeof libs, "litestage %s (%s); HDF5 %u.%u.%u; %s", ls_version(), ls_git_commit(), maj, min, rel,
           mpi_ver);
  if (first) {
    bad |= set_attr_i64(f, "schema_version", LS_STORE_SCHEMA_VERSION);
    bad |= set_attr_str(f, "job_json", in->job_json);
    bad |= set_attr_str(f, "job_hash", in->job_hash);
    bad |= set_attr_str(f, "model_fingerprint", in->model_fingerprint);
    bad |= set_attr_str(f, "model_name", in->model_name);
    bad |= set_attr_str(f, "objective", in->objective);
    bad |= set_attr_str(f, "strategy", in->strategy);
    bad |= set_attr_i64(f, "n_stages", in->n_stages);
    bad |= set_attr_i64(f, "n_layers", in->n_layers);
    bad |= set_attr_i64(f, "n_examples", in->n_examples);
    bad |= set_attr_i64(f, "n_shards", in->n_shards);
    bad |= set_attr_str(f, "start_time", now);
    bad |= set_attr_i64(f, "runs", 1);
  } else {
    bad |= set_attr_i64(f, "runs", s->run + 1);
    bad |= set_attr_str(f, "resumed_time", now);
  }
  bad |= set_attr_str(f, "job_path", in->job_path);
  bad |= set_attr_str(f, "commit", ls_git_commit());
  bad |= set_attr_str(f, "library_versions", libs);
  bad |= set_attr_str(f, "hosts", in->hosts);
  bad |= set_attr_i64(f, "ranks", in->ranks);
  bad |= set_attr_i64(f, "threads", in->threads);
  bad |= set_attr_str(f, "end_time", "");
  bad |= set_attr_str(f, "status", "running");
  if (first && in->stage_names) bad |= write_strings(s, f, "stage_names", in->stage_names, in->n_stages);
  return bad ? -1 : 0;
}

int ls_store_create(ls_store *s, const char *path, MPI_Comm comm, const ls_store_info *in, int overwrite,
                    ls_err *err) {
  LS_TRY(set_paths(s, path, comm, err));
  s->n_stages = in->n_stages;
  s->n_layers = in->n_layers;
  s->n_examples = in->n_examples;
  int rc = LS_OK;
  if (s->rank == 0 && !overwrite && access(path, F_OK) == 0)
    rc = ls_err_set(err, LS_EINVAL, "%s: store exists; use --resume to continue it or --force to replace it", path);
  LS_TRY(agree(s, rc, err));
  LS_TRY(space_check(s, err));
  s->file = open_mpio(s, 1);
  if (s->file < 0) return h5fail(err, s->work_path, "create");
  if (write_info(s, in, 1) < 0) return h5fail(err, s->work_path, "attribute write");
  hid_t g[4];
  const char *groups[4] = {"importance", "reference", "candidates", "pareto"};
  for (int i = 0; i < 4; i++) {
    g[i] = H5Gcreate2(s->file, groups[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g[i] < 0) return h5fail(err, s->work_path, "group create");
  }
  for (int c = 0; c < N_COLS; c++) {
    hsize_t inner[2];
    int k = col_inner(s, c, inner);
    if (create_extendible(g[2], col_names[c], col_type(c), 1 + k, inner, CHUNK_ROWS) < 0)
      return h5fail(err, s->work_path, "candidate dataset create");
  }
  for (int i = 0; i < 4; i++) H5Gclose(g[i]);
  hsize_t inner[1] = {(hsize_t)s->n_examples};
  if (create_extendible(s->file, "scores", H5T_NATIVE_DOUBLE, 2, inner, 16) < 0)
    return h5fail(err, s->work_path, "scores create");
  return commit(s, err);
}

int ls_store_read_cands(hid_t file, const char *path, int n_stages, int n_layers, ls_cand **cands, uint8_t **masks,
                        int64_t *n, ls_err *err) {
  ls_store tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.n_stages = n_stages;
  tmp.n_layers = n_layers;
  *cands = NULL;
  *n = 0;
  if (masks) *masks = NULL;
  if (n_stages < 1 || n_stages > LS_SEARCH_MAX_STAGES || n_layers < 1 || n_layers > LS_STORE_MAX_LAYERS)
    return ls_err_set(err, LS_EFORMAT, "%s: %d stages, %d layers: outside 1..%d, 1..%d", path, n_stages, n_layers,
                      LS_SEARCH_MAX_STAGES, LS_STORE_MAX_LAYERS);
  /* every column's shape, from its own dataspace, before anything is allocated */
  hid_t d[N_COLS];
  hsize_t rows = LS_STORE_ANY_DIM;
  int rc = LS_OK, opened = 0;
  for (int k = 0; k < N_COLS && rc == LS_OK; k++) {
    char name[64];
    snprintf(name, sizeof name, "candidates/%s", col_names[k]);
    hsize_t want[3] = {rows, 0, 0}, dims[3];
    int nin = col_inner(&tmp, k, want + 1);
    rc = ls_store_open_dataset(file, path, name, 1 + nin, want, dims, &d[k], err);
    if (rc != LS_OK) break;
    opened++;
    rows = dims[0];
    if (rows > LS_STORE_MAX_ROWS || rows * (hsize_t)n_stages * (hsize_t)n_layers > LS_STORE_MAX_MASK_BYTES)
      rc = ls_err_set(err, LS_EFORMAT, "%s: /%s: %llu candidate rows, above the limit of %d rows (%d mask bytes)",
                      path, name, (unsigned long long)rows, LS_STORE_MAX_ROWS, LS_STORE_MAX_MASK_BYTES);
    /* rows the file can hold: deflate packs at most ~1032:1, plus one partly written chunk */
    hsize_t stored = H5Dget_storage_size(d[k]);
    if (rc == LS_OK && k == COL_ID && rows * sizeof(int64_t) > stored * 1100 + CHUNK_ROWS * sizeof(int64_t))
      rc = ls_err_set(err, LS_EFORMAT, "%s: /%s: %llu rows, but only %llu bytes of them are stored", path, name,
                      (unsigned long long)rows, (unsigned long long)stored);
  }
  ls_cand *c = NULL;
  uint8_t *m = NULL;
  if (rc == LS_OK) {
    c = calloc((size_t)(rows ? rows : 1), sizeof *c);
    m = masks ? calloc((size_t)(rows ? rows : 1) * n_stages * n_layers, 1) : NULL;
    if (!c || (masks && !m)) rc = ls_err_set(err, LS_ENOMEM, "%s: out of memory for %llu candidates", path,
                                             (unsigned long long)rows);
  }
  for (int k = 0; k < N_COLS && rc == LS_OK && rows > 0; k++) {
    void *buf = malloc((size_t)rows * col_row_bytes(&tmp, k));
    if (!buf || H5Dread(d[k], col_type(k), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
      rc = ls_err_set(err, LS_EFORMAT, "%s: /candidates/%s unreadable", path, col_names[k]);
    else
      unpack_col(&tmp, k, c, m, (int64_t)rows, buf);
    free(buf);
  }
  for (int k = 0; k < opened; k++) H5Dclose(d[k]);
  if (rc != LS_OK) {
    free(c);
    free(m);
    return rc;
  }
  *cands = c;
  if (masks) *masks = m;
  *n = (int64_t)rows;
  return LS_OK;
}

/* A refused --resume leaves PATH as it was and no PATH.work behind. Collective. */
static int resume_failed(ls_store *s, int rc) {
  if (s->file >= 0) H5Fclose(s->file);
  s->file = -1;
  if (rc != LS_EMPI) MPI_Barrier(s->comm);
  if (s->rank == 0) unlink(s->work_path);
  free(s->path);
  free(s->work_path);
  s->path = s->work_path = NULL;
  return rc;
}

int ls_store_resume(ls_store *s, const char *path, MPI_Comm comm, const ls_store_info *in, ls_cand **cands,
                    int64_t *n_cands, ls_err *err) {
  LS_TRY(set_paths(s, path, comm, err));
  s->n_stages = in->n_stages;
  s->n_layers = in->n_layers;
  s->n_examples = in->n_examples;
  int rc = LS_OK;
  if (s->rank == 0) {
    char *data = NULL;
    size_t len = 0;
    rc = ls_read_file(path, &data, &len, err);
    if (rc != LS_OK) ls_err_prefix(err, "--resume");
    if (rc == LS_OK) rc = ls_write_file_atomic(s->work_path, data, len, err);
    free(data);
  }
  rc = agree(s, rc, err);
  if (rc != LS_OK) return resume_failed(s, rc);
  s->file = open_mpio(s, 0);
  if (s->file < 0) return resume_failed(s, ls_err_set(err, LS_EFORMAT, "%s: not an HDF5 store (cannot open it)", path));
  char *hash = NULL;
  long long ver = 0, S = 0, L = 0, E = 0, runs = 0;
  rc = ls_store_read_attr_int(s->file, "schema_version", &ver, err);
  if (rc == LS_OK) rc = ls_store_read_attr_str(s->file, "job_hash", &hash, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(s->file, "n_stages", &S, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(s->file, "n_layers", &L, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(s->file, "n_examples", &E, err);
  if (rc == LS_OK) rc = ls_store_read_attr_int(s->file, "runs", &runs, err);
  if (rc != LS_OK) {
    ls_err_prefix(err, "%s", path);
  } else if (ver != LS_STORE_SCHEMA_VERSION) {
    rc = ls_err_set(err, LS_EMISMATCH, "%s: schema version %lld, this program writes %d", path, ver,
                    LS_STORE_SCHEMA_VERSION);
  } else if (strcmp(hash, in->job_hash) != 0) {
    rc = ls_err_set(err, LS_EMISMATCH,
                    "%s: the store was written by a different job (job hash %.12s, %s has %.12s); refusing to resume",
                    path, hash, in->job_path, in->job_hash);
  } else if (S != in->n_stages || L != in->n_layers || E != in->n_examples) {
    rc = ls_err_set(err, LS_EMISMATCH, "%s: store shape (stages %lld, layers %lld, examples %lld) differs from the job's",
                    path, S, L, E);
  }
  free(hash);
  if (rc == LS_OK) rc = ls_store_read_cands(s->file, path, s->n_stages, s->n_layers, cands, NULL, n_cands, err);
  if (rc != LS_OK) return resume_failed(s, rc);
  s->n_rows = *n_cands;
  s->run = (int)runs;
  LS_TRY(space_check(s, err));
  if (write_info(s, in, 0) < 0) return h5fail(err, s->work_path, "attribute write");
  return commit(s, err);
}

int ls_store_write_importance(ls_store *s, const double *per_stage, const double *acc, const int32_t *ranking,
                              const int32_t *per_stage_ranking, ls_err *err) {
  LS_TRY(space_check(s, err));
  hid_t g = H5Gopen2(s->file, "importance", H5P_DEFAULT);
  if (g < 0) return h5fail(err, s->work_path, "open /importance");
  int n = 2 * s->n_layers;
  hsize_t d2[2] = {(hsize_t)s->n_stages, (hsize_t)n}, d1[1] = {(hsize_t)n};
  char **names = calloc((size_t)n, sizeof *names);
  int bad = !names;
  for (int i = 0; !bad && i < n; i++) {
    names[i] = malloc(24);
    if (!names[i]) { bad = 1; break; }
    ls_sublayer_index_name(i, names[i], 24);
  }
  if (!bad) {
    bad |= write_small(s, g, "per_stage_cos", H5T_NATIVE_DOUBLE, 2, d2, per_stage);
    bad |= write_small(s, g, "accumulated_cos", H5T_NATIVE_DOUBLE, 1, d1, acc);
    bad |= write_small(s, g, "ranking", H5T_NATIVE_INT32, 1, d1, ranking);
    bad |= write_small(s, g, "per_stage_ranking", H5T_NATIVE_INT32, 2, d2, per_stage_ranking);
    bad |= write_strings(s, g, "sublayer_names", (const char *const *)names, n);
    bad |= set_attr_str(g, "ranking_order", "most redundant (highest cosine) first; sub-layer s = 2*layer + (0 attn, 1 ffn)");
  }
  for (int i = 0; names && i < n; i++) free(names[i]);
  free(names);
  H5Gclose(g);
  if (bad) return h5fail(err, s->work_path, "write /importance");
  return commit(s, err);
}

int ls_store_write_reference(ls_store *s, const ls_example_score *ref, const char *const *ids, const int32_t *gold,
                             double score, double chance, double target, const int32_t *stage_order, ls_err *err) {
  LS_TRY(space_check(s, err));
  hid_t g = H5Gopen2(s->file, "reference", H5P_DEFAULT);
  if (g < 0) return h5fail(err, s->work_path, "open /reference");
  int E = s->n_examples, S = s->n_stages;
  double *sc = malloc(sizeof(double) * (size_t)E * 3);
  int32_t *tok = malloc(sizeof(int32_t) * (size_t)E * (2 * S + 1));
  int bad = !sc || !tok;
  if (!bad) {
    for (int i = 0; i < E; i++) {
      sc[i] = ref[i].score;
      sc[E + i] = ref[i].measured_ms;
      sc[2 * E + i] = ref[i].predicted_ms;
      for (int k = 0; k < S; k++) {
        tok[(size_t)i * S + k] = ref[i].prompt_tokens[k];
        tok[(size_t)E * S + (size_t)i * S + k] = ref[i].n_generated[k];
      }
      tok[(size_t)2 * E * S + i] = ref[i].answer;
    }
    hsize_t d1[1] = {(hsize_t)E}, d2[2] = {(hsize_t)E, (hsize_t)S}, ds[1] = {(hsize_t)S};
    bad |= write_small(s, g, "score", H5T_NATIVE_DOUBLE, 1, d1, sc);
    bad |= write_small(s, g, "measured_ms", H5T_NATIVE_DOUBLE, 1, d1, sc + E);
    bad |= write_small(s, g, "predicted_ms", H5T_NATIVE_DOUBLE, 1, d1, sc + 2 * E);
    bad |= write_small(s, g, "prompt_tokens", H5T_NATIVE_INT32, 2, d2, tok);
    bad |= write_small(s, g, "gen_tokens", H5T_NATIVE_INT32, 2, d2, tok + (size_t)E * S);
    bad |= write_small(s, g, "answer", H5T_NATIVE_INT32, 1, d1, tok + (size_t)2 * E * S);
    bad |= write_small(s, g, "gold", H5T_NATIVE_INT32, 1, d1, gold);
    bad |= write_small(s, g, "stage_order", H5T_NATIVE_INT32, 1, ds, stage_order);
    bad |= write_strings(s, g, "example_id", ids, E);
    bad |= set_attr_f64(g, "score", score);
    bad |= set_attr_f64(g, "chance_score", chance);
    bad |= set_attr_f64(g, "target", target);
  }
  free(sc);
  free(tok);
  H5Gclose(g);
  if (bad) return h5fail(err, s->work_path, "write /reference");
  return commit(s, err);
}

/* Extends a row dataset to `rows` and writes rows [r0, r0+n) from rank 0. */
static int append_rows(ls_store *s, hid_t d, hid_t type, int64_t r0, int n, int rank, const hsize_t *inner,
                       const void *buf, hid_t xfer) {
  hsize_t dims[3] = {(hsize_t)(r0 + n), 0, 0}, start[3] = {(hsize_t)r0, 0, 0}, count[3] = {(hsize_t)n, 0, 0};
  for (int k = 1; k < rank; k++) dims[k] = count[k] = inner[k - 1];
  if (H5Dset_extent(d, dims) < 0) return -1;
  hid_t fs = H5Dget_space(d);
  hid_t ms = H5Screate_simple(rank, count, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
  if (s->rank != 0 || n == 0) {
    H5Sselect_none(fs);
    H5Sselect_none(ms);
  }
  herr_t h = H5Dwrite(d, type, ms, fs, xfer, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  return h < 0 ? -1 : 0;
}

/* /scores rows [r0, r0+n): each rank selects the (row, shard) blocks it computed. */
static int append_scores(ls_store *s, hid_t d, int64_t r0, const int *ridx, int n, const ls_round *r, hid_t xfer) {
  int E = s->n_examples;
  hsize_t dims[2] = {(hsize_t)(r0 + n), (hsize_t)E};
  if (H5Dset_extent(d, dims) < 0) return -1;
  double *buf = calloc((size_t)(n ? n : 1) * E, sizeof(double));
  if (!buf) return -1;
  hid_t fs = H5Dget_space(d);
  hsize_t mdims[2] = {(hsize_t)(n ? n : 1), (hsize_t)E};
  hid_t ms = H5Screate_simple(2, mdims, NULL);
  H5Sselect_none(fs);
  H5Sselect_none(ms);
  for (int i = 0; i < n; i++) {
    int c = ridx[i];
    for (int e = 0; e < E; e++) buf[(size_t)i * E + e] = r->res[(size_t)c * r->n_examples + e].score;
    for (int k = 0; k < r->n_shards; k++) {
      if (r->owner[(size_t)c * r->n_shards + k] != s->rank) continue;
      hsize_t fstart[2] = {(hsize_t)(r0 + i), (hsize_t)r->shard_begin[k]};
      hsize_t mstart[2] = {(hsize_t)i, (hsize_t)r->shard_begin[k]};
      hsize_t count[2] = {1, (hsize_t)(r->shard_begin[k + 1] - r->shard_begin[k])};
      H5Sselect_hyperslab(fs, H5S_SELECT_OR, fstart, NULL, count, NULL);
      H5Sselect_hyperslab(ms, H5S_SELECT_OR, mstart, NULL, count, NULL);
    }
  }
  herr_t h = H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, xfer, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  free(buf);
  return h < 0 ? -1 : 0;
}

int ls_store_append(ls_store *s, const ls_cand *cands, const uint8_t *masks, const int *ridx, int n,
                    const ls_round *r, ls_err *err) {
  LS_TRY(space_check(s, err));
  hid_t xfer = dxpl_collective();
  int bad = 0;
  size_t maxrow = 0;
  for (int c = 0; c < N_COLS; c++)
    if (col_row_bytes(s, c) > maxrow) maxrow = col_row_bytes(s, c);
  void *buf = malloc(maxrow * (size_t)(n ? n : 1));
  if (!buf) bad = 1;
  for (int c = 0; c < N_COLS && !bad; c++) {
    char name[64];
    snprintf(name, sizeof name, "candidates/%s", col_names[c]);
    hid_t d = H5Dopen2(s->file, name, H5P_DEFAULT);
    if (d < 0) { bad = 1; break; }
    hsize_t inner[2];
    int k = col_inner(s, c, inner);
    pack_col(s, c, cands, masks, n, buf);
    bad |= append_rows(s, d, col_type(c), s->n_rows, n, 1 + k, inner, buf, xfer);
    H5Dclose(d);
  }
  free(buf);
  if (!bad) {
    hid_t d = H5Dopen2(s->file, "scores", H5P_DEFAULT);
    bad = d < 0 || append_scores(s, d, s->n_rows, ridx, n, r, xfer) < 0;
    if (d >= 0) H5Dclose(d);
  }
  H5Pclose(xfer);
  if (bad) return h5fail(err, s->work_path, "append candidates");
  s->n_rows += n;
  return commit(s, err);
}

/* Appends one row to every candidate column and /scores of an open (serial) file. */
static int append_one(const ls_store *s, hid_t f, const ls_cand *c, const uint8_t *mask, const double *scores) {
  size_t maxrow = (size_t)s->n_examples * sizeof(double);
  for (int k = 0; k < N_COLS; k++)
    if (col_row_bytes(s, k) > maxrow) maxrow = col_row_bytes(s, k);
  void *buf = malloc(maxrow);
  if (!buf) return -1;
  int bad = 0;
  for (int k = 0; k <= N_COLS && !bad; k++) {
    char name[64];
    hsize_t inner[2] = {(hsize_t)s->n_examples, 0};
    int nin = 1;
    hid_t type = H5T_NATIVE_DOUBLE;
    if (k < N_COLS) {
      snprintf(name, sizeof name, "candidates/%s", col_names[k]);
      nin = col_inner(s, k, inner);
      type = col_type(k);
      pack_col(s, k, c, mask, 1, buf);
    } else {
      snprintf(name, sizeof name, "scores");
      memcpy(buf, scores, (size_t)s->n_examples * sizeof(double));
    }
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) { bad = 1; break; }
    hid_t fs = H5Dget_space(d);
    hsize_t dims[3] = {0, 0, 0}, start[3] = {0, 0, 0}, count[3] = {1, 0, 0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    H5Sclose(fs);
    start[0] = dims[0];
    dims[0]++;
    for (int i = 0; i < nin; i++) count[i + 1] = inner[i];
    if (H5Dset_extent(d, dims) < 0) bad = 1;
    fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(1 + nin, count, NULL);
    if (!bad && (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                 H5Dwrite(d, type, ms, fs, H5P_DEFAULT, buf) < 0))
      bad = 1;
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
  }
  free(buf);
  return bad ? -1 : 0;
}

/* PATH plus one candidate, built in memory (HDF5's core driver on a copy of PATH's bytes) so
 * that HDF5 never writes to disk here: a full disk fails in ls_write_file_atomic, cleanly,
 * and never leaves HDF5 holding a file it could not close. */
static int image_with_candidate(const ls_store *s, const char *data, size_t len, const ls_cand *c,
                                const uint8_t *mask, const double *scores, void **image, size_t *image_len,
                                ls_err *err) {
  *image = NULL;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, 64 * 1024, 0 /* no backing file */);
  H5Pset_file_image(fapl, (void *)data, len);
  /* the core driver refuses a name that exists on disk: this one never can */
  hid_t f = H5Fopen("/dev/null/litestage-store-image", H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  if (f < 0) return h5fail(err, s->path, "open (in memory)");
  int bad = append_one(s, f, c, mask, scores) < 0 || H5Fflush(f, H5F_SCOPE_GLOBAL) < 0;
  ssize_t n = bad ? -1 : H5Fget_file_image(f, NULL, 0);
  void *buf = n > 0 ? malloc((size_t)n) : NULL;
  if (!buf || H5Fget_file_image(f, buf, (size_t)n) != n) bad = 1;
  if (H5Fclose(f) < 0) bad = 1; /* in memory: nothing to write */
  if (bad) {
    free(buf);
    return h5fail(err, s->path, "append candidate (in memory)");
  }
  *image = buf;
  *image_len = (size_t)n;
  return LS_OK;
}

int ls_store_commit_one(ls_store *s, const ls_cand *c, const uint8_t *mask, const double *scores, ls_err *err) {
  if (s->rank != 0) return LS_OK;
  char *data = NULL;
  size_t len = 0;
  void *image = NULL;
  size_t image_len = 0;
  int rc = ls_read_file(s->path, &data, &len, err); /* the last published state */
  if (rc == LS_OK) rc = image_with_candidate(s, data, len, c, mask, scores, &image, &image_len, err);
  free(data);
  if (rc == LS_OK) rc = ls_store_check_space(s->path, (long long)image_len + LS_STORE_SPACE_MARGIN, err);
  if (rc == LS_OK) rc = ls_write_file_atomic(s->path, image, image_len, err); /* published atomically */
  free(image);
  return rc;
}

int ls_store_set_status(ls_store *s, const char *status, ls_err *err) {
  LS_TRY(space_check(s, err));
  char now[32];
  ls_utc_now(now);
  MPI_Bcast(now, sizeof now, MPI_CHAR, 0, s->comm);
  if (set_attr_str(s->file, "status", status) < 0 || set_attr_str(s->file, "end_time", now) < 0)
    return h5fail(err, s->work_path, "attribute write");
  return commit(s, err);
}

int ls_store_finish(ls_store *s, const int64_t *pareto, int n_pareto, const char *schedule_json, int64_t chosen_id,
                    const char *status, ls_err *err) {
  LS_TRY(space_check(s, err));
  hid_t g = H5Gopen2(s->file, "pareto", H5P_DEFAULT);
  if (g < 0) return h5fail(err, s->work_path, "open /pareto");
  hsize_t d1[1] = {(hsize_t)n_pareto};
  int bad = write_small(s, g, "candidate_id", H5T_NATIVE_INT64, 1, d1, pareto);
  bad |= set_attr_str(g, "axes", "score (higher is better) vs predicted_ms (or measured_ms when the job says so)");
  H5Gclose(g);
  if (schedule_json) {
    hid_t t = str_type(strlen(schedule_json) + 1);
    hsize_t one[1] = {1};
    bad |= write_small(s, s->file, "schedule", t, 1, one, schedule_json);
    H5Tclose(t);
    hid_t d = H5Dopen2(s->file, "schedule", H5P_DEFAULT);
    if (d >= 0) {
      bad |= set_attr_i64(d, "candidate_id", chosen_id);
      H5Dclose(d);
    }
  }
  if (bad) return h5fail(err, s->work_path, "write /pareto or /schedule");
  return ls_store_set_status(s, status, err);
}

int ls_store_close(ls_store *s, ls_err *err) {
  int rc = LS_OK;
  if (s->file >= 0 && H5Fclose(s->file) < 0) rc = h5fail(err, s->work_path, "close");
  s->file = -1;
  MPI_Barrier(s->comm);
  if (s->rank == 0 && s->work_path) unlink(s->work_path);
  free(s->path);
  free(s->work_path);
  s->path = s->work_path = NULL;
  return rc;
}

void ls_store_abandon(ls_store *s) {
  /* H5Fclose on an MPI-IO file is collective; with a dead rank we leave it to process exit. */
  free(s->path);
  free(s->work_path);
  s->path = s->work_path = NULL;
  s->file = -1;
}
