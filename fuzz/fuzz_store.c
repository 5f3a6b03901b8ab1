/* The HDF5 results store as show and export read it. The input is not an HDF5
 * file (that would fuzz the HDF5 library): it describes the values and shapes a
 * store can hold, and the target builds that store with HDF5's own API, then
 * runs `show` and `export` (from the chosen schedule and from a candidate id)
 * on it. Layout of the description (fuzz/store_seed.py writes one from a real
 * store):
 *
 *   u8 mode per int attribute n_stages, n_layers, n_examples:
 *        0 absent, 1 int64 from an i8, 2 int64 from 8 bytes, 3 string, 4 double
 *   u8 mask of the string attributes status, job_json, model_name,
 *        model_fingerprint, objective, strategy; each present one: u16 length + bytes
 *   per dataset of DATASETS, u8 d: d&1 present; rank (d>>1)&3 (0 scalar);
 *        type ((d>>3)&15)%5: int32, int64, uint8, float64, fixed string; d&0x80 chunked,
 *        deflated and extendible; strings: u16 size; then u8 per dimension (0..255),
 *        then the raw elements (bytes missing at the end of the input are zero)
 *   i8 candidate id for export (< 0: the chosen schedule)
 */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "ls_schedule.h"
#include "ls_search.h"

static const char *const DATASETS[] = {
    "candidates/id", "candidates/kind", "candidates/budget", "candidates/skip_mask", "candidates/ee_window",
    "candidates/ee_threshold", "candidates/score", "candidates/measured_ms", "candidates/predicted_ms",
    "candidates/prompt_tokens", "candidates/gen_tokens", "candidates/meets_target", "candidates/run",
    "candidates/round", "reference/score", "reference/gen_tokens", "importance/ranking",
    "importance/accumulated_cos", "pareto/candidate_id", "schedule", "stage_names", "scores", NULL};
static const char *const STR_ATTRS[] = {"status", "job_json", "model_name", "model_fingerprint", "objective",
                                        "strategy"};
static const char *const INT_ATTRS[] = {"n_stages", "n_layers", "n_examples"};

#define MAX_ELEMS (1 << 14)
#define MAX_BYTES (1 << 16)

static hid_t string_type(size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, n ? n : 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  return t;
}

static void put_attr(hid_t f, const char *name, hid_t type, const void *val) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, type, val);
    H5Aclose(a);
  }
  H5Sclose(sp);
}

static void put_int_attr(hid_t f, const char *name, fz_in *in) {
  int mode = fz_u8(in) % 5;
  int64_t v = mode == 1 ? (int8_t)fz_u8(in) : mode == 2 ? (int64_t)fz_u64(in) : 0;
  if (mode == 1 || mode == 2) put_attr(f, name, H5T_NATIVE_INT64, &v);
  if (mode == 3) {
    char s[8];
    snprintf(s, sizeof s, "%d", (int8_t)fz_u8(in));
    hid_t t = string_type(strlen(s) + 1);
    put_attr(f, name, t, s);
    H5Tclose(t);
  }
  if (mode == 4) {
    double d = (int8_t)fz_u8(in) + 0.5;
    put_attr(f, name, H5T_NATIVE_DOUBLE, &d);
  }
}

static void put_dataset(hid_t f, const char *name, fz_in *in) {
  uint8_t d = fz_u8(in);
  if (!(d & 1)) return;
  int rank = (d >> 1) & 3, kind = ((d >> 3) & 15) % 5, chunked = (d & 0x80) && rank > 0;
  hid_t type = kind == 0 ? H5Tcopy(H5T_NATIVE_INT32) : kind == 1 ? H5Tcopy(H5T_NATIVE_INT64)
             : kind == 2 ? H5Tcopy(H5T_NATIVE_UINT8) : kind == 3 ? H5Tcopy(H5T_NATIVE_DOUBLE)
                         : string_type(1 + fz_u16(in) % 4096);
  hsize_t dims[3], maxd[3], chunk[3];
  size_t n = 1;
  for (int k = 0; k < rank; k++) {
    dims[k] = fz_u8(in);
    maxd[k] = k == 0 && chunked ? H5S_UNLIMITED : dims[k];
    chunk[k] = dims[k] ? dims[k] : 1;
    n *= dims[k];
  }
  size_t bytes = n * H5Tget_size(type);
  if (n > MAX_ELEMS || bytes > MAX_BYTES) {
    H5Tclose(type);
    return;
  }
  hid_t sp = rank ? H5Screate_simple(rank, dims, maxd) : H5Screate(H5S_SCALAR);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  if (chunked) {
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, 4);
  }
  hid_t ds = H5Dcreate2(f, name, type, sp, lcpl, dcpl, H5P_DEFAULT);
  if (ds >= 0) {
    uint8_t *buf = calloc(bytes ? bytes : 1, 1);
    if (!buf) abort();
    size_t have = bytes < in->n ? bytes : in->n;
    memcpy(buf, in->p, have);
    in->p += have;
    in->n -= have;
    if (bytes) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    free(buf);
    H5Dclose(ds);
  }
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(sp);
  H5Tclose(type);
}

static void build(const char *path, fz_in *in) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "fuzz_store: cannot create %s\n", path);
    abort();
  }
  for (int i = 0; i < 3; i++) put_int_attr(f, INT_ATTRS[i], in);
  uint8_t mask = fz_u8(in);
  for (int i = 0; i < 6; i++) {
    if (!(mask >> i & 1)) continue;
    size_t n;
    const uint8_t *p = fz_chunk(in, 4096, &n);
    char *s = fz_cstr(p, n);
    hid_t t = string_type(strlen(s) + 1);
    put_attr(f, STR_ATTRS[i], t, s);
    H5Tclose(t);
    free(s);
  }
  for (int i = 0; DATASETS[i]; i++) put_dataset(f, DATASETS[i], in);
  H5Fclose(f);
}

static int verbose(void) { return getenv("LS_FUZZ_VERBOSE") != NULL; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* show prints the store; nobody reads it here */
    if (!freopen("/dev/null", "w", stdout)) abort();
    ready = 1;
  }
  fz_in in = {data, size};
  const char *path = fz_write("store.h5", "", 0);
  build(path, &in);
  long long id = (int8_t)fz_u8(&in);
  ls_err err;
  int rc = ls_search_show(path, &err);
  if (rc != LS_OK) fz_check_err(rc, &err, NULL);
  char out[4200];
  snprintf(out, sizeof out, "%s/schedule.json", fz_tmpdir());
  rc = ls_search_export(path, id < 0 ? -1 : id, out, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, NULL);
  } else {
    /* what export wrote is a schedule that reads back */
    ls_schedule *s;
    rc = ls_schedule_read(out, &s, &err);
    FZ_ASSERT(rc == LS_OK, "export wrote a schedule that does not read back: %s", err.msg);
    if (verbose()) fprintf(stderr, "fuzz: exported a schedule of %d stages\n", s->n_stages);
    ls_schedule_free(s);
  }
  unlink(out);
  return 0;
}
