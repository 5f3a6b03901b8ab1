/* GGUF reader: a parsed, fully bounds-checked view over the mapped bytes,
 * typed accessors, and the llama model loader (ls_model_load_gguf). */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ls_model.h"
#include "ls_quant.h"
#include "ls_tokenizer.h"

/* ---- type tables -------------------------------------------------------- */

static const size_t value_size[LS_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const value_name[LS_GGUF_NTYPES] = {"uint8", "int8",  "uint16", "int16", "uint32",
                                                       "int32", "float32", "bool", "string", "array",
                                                       "uint64", "int64", "float64"};

const char *ls_gguf_value_type_name(uint32_t type) {
  return type < LS_GGUF_NTYPES ? value_name[type] : "unknown";
}

/* ---- the reading cursor ------------------------------------------------- */

typedef struct {
  const uint8_t *base;
  size_t size, off;
  const char *path;
} rd;

static int need(rd *r, uint64_t n, const char *what, ls_err *err) {
  if (r->off > r->size || n > r->size - r->off)
    return ls_err_set(err, LS_EFORMAT, "%s: truncated: %s needs %" PRIu64 " bytes at offset %zu, file has %zu bytes",
                      r->path, what, n, r->off, r->size);
  return LS_OK;
}

static int rd_u32(rd *r, uint32_t *v, const char *what, ls_err *err) {
  LS_TRY(need(r, 4, what, err));
  memcpy(v, r->base + r->off, 4);
  r->off += 4;
  return LS_OK;
}

static int rd_u64(rd *r, uint64_t *v, const char *what, ls_err *err) {
  LS_TRY(need(r, 8, what, err));
  memcpy(v, r->base + r->off, 8);
  r->off += 8;
  return LS_OK;
}

/* A string: u64 length then bytes. */
static int rd_str(rd *r, const uint8_t **s, uint64_t *len, const char *what, ls_err *err) {
  LS_TRY(rd_u64(r, len, what, err));
  if (*len > r->size - r->off)
    return ls_err_set(err, LS_EFORMAT, "%s: %s: string length %" PRIu64 " at offset %zu runs past the end of the file (%zu bytes)",
                      r->path, what, *len, r->off - 8, r->size);
  *s = r->base + r->off;
  r->off += (size_t)*len;
  return LS_OK;
}

/* Validates one value of `type` at the cursor and describes it in *v. */
static int rd_value(rd *r, uint32_t type, int depth, const char *key, ls_gguf_value *v, ls_err *err) {
  memset(v, 0, sizeof *v);
  v->type = type;
  v->p = r->base + r->off;
  size_t start = r->off;
  if (type >= LS_GGUF_NTYPES)
    return ls_err_set(err, LS_EFORMAT, "%s: key '%s' has unknown value type %u", r->path, key, type);
  if (type == LS_GGUF_STRING) {
    const uint8_t *s;
    uint64_t len;
    LS_TRY(rd_str(r, &s, &len, key, err));
  } else if (type == LS_GGUF_ARRAY) {
    if (depth >= LS_GGUF_MAX_NESTING)
      return ls_err_set(err, LS_EFORMAT, "%s: key '%s': arrays nested deeper than %d", r->path, key,
                        LS_GGUF_MAX_NESTING);
    uint32_t et;
    uint64_t n;
    LS_TRY(rd_u32(r, &et, key, err));
    LS_TRY(rd_u64(r, &n, key, err));
    if (et >= LS_GGUF_NTYPES)
      return ls_err_set(err, LS_EFORMAT, "%s: key '%s' is an array of unknown value type %u", r->path, key, et);
    size_t left = r->size - r->off;
    /* each element takes at least this many bytes: refuse absurd counts before looping */
    size_t min = et == LS_GGUF_STRING ? 8 : et == LS_GGUF_ARRAY ? 12 : value_size[et];
    if (n > left / min)
      return ls_err_set(err, LS_EFORMAT, "%s: key '%s': array of %" PRIu64 " %s elements at offset %zu runs past the end of the file (%zu bytes)",
                        r->path, key, n, value_name[et], r->off - 12, r->size);
    v->arr_type = et;
    v->arr_n = n;
    v->arr_data = r->base + r->off;
    if (et == LS_GGUF_STRING || et == LS_GGUF_ARRAY) {
      for (uint64_t i = 0; i < n; i++) {
        ls_gguf_value e;
        LS_TRY(rd_value(r, et, depth + 1, key, &e, err));
      }
    } else {
      if (et == LS_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
          if (r->base[r->off + i] > 1)
            return ls_err_set(err, LS_EFORMAT, "%s: key '%s': bool element %" PRIu64 " is %u (not 0 or 1)", r->path,
                              key, i, r->base[r->off + i]);
      r->off += (size_t)n * min;
    }
  } else {
    LS_TRY(need(r, value_size[type], key, err));
    if (type == LS_GGUF_BOOL && r->base[r->off] > 1)
      return ls_err_set(err, LS_EFORMAT, "%s: key '%s': bool value is %u (not 0 or 1)", r->path, key, r->base[r->off]);
    r->off += value_size[type];
  }
  v->nbytes = r->off - start;
  return LS_OK;
}

/* ---- parsing ------------------------------------------------------------ */

/* Strings copied out of the mapping so that they are NUL-terminated. Offsets
 * are kept while the arena grows and turned into pointers at the end. */
typedef struct {
  char *data;
  size_t len, cap;
} arena;

static int arena_add(arena *a, const uint8_t *s, size_t n, size_t *off, const char *path, ls_err *err) {
  if (a->len + n + 1 > a->cap) {
    size_t cap = a->cap ? a->cap : 4096;
    while (cap < a->len + n + 1) cap *= 2;
    char *d = realloc(a->data, cap);
    if (!d) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for metadata strings", path);
    a->data = d;
    a->cap = cap;
  }
  memcpy(a->data + a->len, s, n);
  a->data[a->len + n] = '\0';
  *off = a->len;
  a->len += n + 1;
  return LS_OK;
}

static int cmp_strp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses duplicate names (O(n log n), so that a hostile count stays cheap). */
static int check_unique(const char **names, uint64_t n, const char *what, const char *path, ls_err *err) {
  if (n < 2) return LS_OK;
  const char **s = malloc((size_t)n * sizeof *s);
  if (!s) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  memcpy(s, names, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_strp);
  int rc = LS_OK;
  for (uint64_t i = 1; i < n && !rc; i++)
    if (!strcmp(s[i - 1], s[i])) rc = ls_err_set(err, LS_EFORMAT, "%s: duplicate %s '%s'", path, what, s[i]);
  free(s);
  return rc;
}

static int parse_header(ls_gguf *g, rd *r, ls_err *err) {
  if (r->size < 4 || memcmp(r->base, "GGUF", 4) != 0)
    return ls_err_set(err, LS_EFORMAT, "%s: not a GGUF file (bad magic)", r->path);
  r->off = 4;
  LS_TRY(rd_u32(r, &g->version, "GGUF version", err));
  if (g->version == 1)
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: GGUF version 1 is not supported (only v2 and v3; re-convert the model)",
                      r->path);
  if (g->version != 2 && g->version != 3) {
    if ((g->version & 0xffff) == 0 && (g->version >> 24) >= 1 && (g->version >> 24) <= 3)
      return ls_err_set(err, LS_EUNSUPPORTED, "%s: big-endian GGUF is not supported", r->path);
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: GGUF version %u is not supported (only v2 and v3)", r->path,
                      g->version);
  }
  LS_TRY(rd_u64(r, &g->n_tensors, "tensor count", err));
  LS_TRY(rd_u64(r, &g->n_kv, "metadata count", err));
  /* a key-value pair takes at least 13 bytes, a tensor info at least 33 */
  if (g->n_kv > (r->size - r->off) / 13)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd metadata count %" PRIu64 ": cannot fit in a file of %zu bytes (truncated or corrupt)",
                      r->path, g->n_kv, r->size);
  if (g->n_tensors > (r->size - r->off) / 33)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd tensor count %" PRIu64 ": cannot fit in a file of %zu bytes (truncated or corrupt)",
                      r->path, g->n_tensors, r->size);
  return LS_OK;
}

static int parse_kvs(ls_gguf *g, rd *r, arena *a, size_t *key_off, ls_err *err) {
  for (uint64_t i = 0; i < g->n_kv; i++) {
    char what[64];
    snprintf(what, sizeof what, "metadata key %" PRIu64, i);
    const uint8_t *k;
    uint64_t klen;
    LS_TRY(rd_str(r, &k, &klen, what, err));
    if (klen == 0) return ls_err_set(err, LS_EFORMAT, "%s: %s is empty", r->path, what);
    LS_TRY(arena_add(a, k, (size_t)klen, &key_off[i], r->path, err));
    const char *key = a->data + key_off[i];
    uint32_t type;
    LS_TRY(rd_u32(r, &type, key, err));
    LS_TRY(rd_value(r, type, 0, key, &g->kv[i].val, err));
  }
  return LS_OK;
}

static int tensor_info(ls_gguf *g, rd *r, arena *a, uint64_t i, size_t *name_off, ls_err *err) {
  ls_gguf_tensor *t = &g->tensors[i];
  char what[64];
  snprintf(what, sizeof what, "tensor info %" PRIu64, i);
  const uint8_t *s;
  uint64_t len;
  LS_TRY(rd_str(r, &s, &len, what, err));
  if (len == 0 || len >= LS_GGUF_MAX_NAME)
    return ls_err_set(err, LS_EFORMAT, "%s: %s has a name of %" PRIu64 " bytes (1..%d allowed)", r->path, what, len,
                      LS_GGUF_MAX_NAME - 1);
  LS_TRY(arena_add(a, s, (size_t)len, name_off, r->path, err));
  const char *name = a->data + *name_off;
  LS_TRY(rd_u32(r, &t->n_dims, name, err));
  if (t->n_dims < 1 || t->n_dims > LS_GGUF_MAX_DIMS)
    return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' has %u dimensions (1..%d allowed)", r->path, name, t->n_dims,
                      LS_GGUF_MAX_DIMS);
  for (int d = 0; d < LS_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
  for (uint32_t d = 0; d < t->n_dims; d++) {
    uint64_t ne;
    LS_TRY(rd_u64(r, &ne, name, err));
    if (ne == 0 || ne > (uint64_t)INT64_MAX)
      return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' has absurd dimension %u = %" PRIu64, r->path, name, d, ne);
    t->ne[d] = (int64_t)ne;
  }
  LS_TRY(rd_u32(r, &t->type, name, err));
  LS_TRY(rd_u64(r, &t->offset, name, err));
  const ls_dtype_info *dt = ls_dtype_get(t->type);
  if (!dt)
    return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' has unknown type %u", r->path, name, t->type);
  int blck = dt->block_elems;
  size_t bbytes = dt->block_bytes;
  if (t->ne[0] % blck)
    return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' has %" PRId64 " columns, not a multiple of the %s block (%d)",
                      r->path, name, t->ne[0], dt->name, blck);
  /* bytes = ne0/blck * bbytes * ne1 * ne2 * ne3, refusing overflow */
  uint64_t bytes = (uint64_t)(t->ne[0] / blck);
  int ovf = __builtin_mul_overflow(bytes, (uint64_t)bbytes, &bytes);
  for (int d = 1; d < LS_GGUF_MAX_DIMS; d++) ovf |= __builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes);
  int64_t elems = t->ne[0];
  for (int d = 1; d < LS_GGUF_MAX_DIMS; d++) ovf |= __builtin_mul_overflow(elems, t->ne[d], &elems);
  if (ovf || bytes > r->size)
    return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' has absurd shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "] for a file of %zu bytes",
                      r->path, name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], r->size);
  t->nbytes = (size_t)bytes;
  if (t->offset % g->alignment)
    return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' has offset %" PRIu64 ", not a multiple of the alignment %zu",
                      r->path, name, t->offset, g->alignment);
  return LS_OK;
}

static int parse_alignment(ls_gguf *g, ls_err *err) {
  g->alignment = LS_GGUF_DEFAULT_ALIGNMENT;
  const ls_gguf_kv *kv = ls_gguf_find(g, "general.alignment");
  if (!kv) return LS_OK;
  uint64_t a;
  if (!ls_gguf_value_uint(&kv->val, &a))
    return ls_err_set(err, LS_EFORMAT, "%s: general.alignment has type %s, expected uint32", g->path,
                      ls_gguf_value_type_name(kv->val.type));
  if (a == 0 || (a & (a - 1)) || a > (1u << 30))
    return ls_err_set(err, LS_EFORMAT, "%s: bad general.alignment %" PRIu64 " (must be a power of two)", g->path, a);
  g->alignment = (size_t)a;
  return LS_OK;
}

static int place_tensors(ls_gguf *g, rd *r, ls_err *err) {
  size_t a = g->alignment;
  if (r->off > SIZE_MAX - a) return ls_err_set(err, LS_EFORMAT, "%s: bad data offset", g->path);
  g->data_offset = (r->off + a - 1) / a * a;
  g->data_bytes = 0;
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    ls_gguf_tensor *t = &g->tensors[i];
    if (g->data_offset > g->size || t->offset > g->size - g->data_offset ||
        t->nbytes > g->size - g->data_offset - t->offset)
      return ls_err_set(err, LS_EFORMAT, "%s: tensor '%s' (%zu bytes at offset %zu) runs past the end of the file (%zu bytes)",
                        g->path, t->name, t->nbytes, g->data_offset + (size_t)t->offset, g->size);
    t->data = g->base + g->data_offset + t->offset;
    g->data_bytes += t->nbytes;
  }
  return LS_OK;
}

static int parse(ls_gguf *g, arena *a, size_t **offs, ls_err *err) {
  rd r = {.base = g->base, .size = g->size, .off = 0, .path = g->path};
  LS_TRY(parse_header(g, &r, err));
  g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
  g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
  *offs = malloc((size_t)(g->n_kv + g->n_tensors + 1) * sizeof **offs);
  if (!g->kv || !g->tensors || !*offs) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for GGUF tables", g->path);
  size_t *key_off = *offs, *name_off = *offs + g->n_kv;
  LS_TRY(parse_kvs(g, &r, a, key_off, err));
  /* keys are needed as pointers now, to find general.alignment */
  for (uint64_t i = 0; i < g->n_kv; i++) g->kv[i].key = a->data + key_off[i];
  LS_TRY(parse_alignment(g, err));
  /* tensor names grow the arena, which may move it: key pointers are redone below */
  for (uint64_t i = 0; i < g->n_tensors; i++) LS_TRY(tensor_info(g, &r, a, i, &name_off[i], err));
  for (uint64_t i = 0; i < g->n_kv; i++) g->kv[i].key = a->data + key_off[i];
  for (uint64_t i = 0; i < g->n_tensors; i++) g->tensors[i].name = a->data + name_off[i];
  LS_TRY(place_tensors(g, &r, err));
  return LS_OK;
}

static int check_dups(ls_gguf *g, ls_err *err) {
  uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
  const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
  if (!names) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", g->path);
  for (uint64_t i = 0; i < g->n_kv; i++) names[i] = g->kv[i].key;
  int rc = check_unique(names, g->n_kv, "metadata key", g->path, err);
  if (!rc) {
    for (uint64_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
    rc = check_unique(names, g->n_tensors, "tensor name", g->path, err);
  }
  free(names);
  return rc;
}

int ls_gguf_parse(ls_gguf *g, const void *base, size_t size, const char *path, ls_err *err) {
  memset(g, 0, sizeof *g);
  snprintf(g->path, sizeof g->path, "%s", path);
  g->base = base;
  g->size = size;
  arena a = {0};
  size_t *offs = NULL;
  int rc = parse(g, &a, &offs, err);
  free(offs);
  g->strings = a.data;
  if (!rc) rc = check_dups(g, err);
  if (rc) {
    ls_gguf_close(g);
    return rc;
  }
  return LS_OK;
}

int ls_gguf_open(ls_gguf *g, const char *path, ls_err *err) {
  memset(g, 0, sizeof *g);
  void *p;
  size_t size;
  LS_TRY(ls_map_file(path, &p, &size, err));
  int rc = ls_gguf_parse(g, p, size, path, err);
  if (rc) {
    munmap(p, size);
    return rc;
  }
  g->own_map = 1;
  return LS_OK;
}

void ls_gguf_close(ls_gguf *g) {
  if (!g) return;
  if (g->own_map && g->base) munmap((void *)g->base, g->size);
  free(g->kv);
  free(g->tensors);
  free(g->strings);
  memset(g, 0, sizeof *g);
}

/* ---- lookups and typed access ------------------------------------------- */

const ls_gguf_kv *ls_gguf_find(const ls_gguf *g, const char *key) {
  for (uint64_t i = 0; i < g->n_kv; i++)
    if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
  return NULL;
}

const ls_gguf_tensor *ls_gguf_find_tensor(const ls_gguf *g, const char *name) {
  for (uint64_t i = 0; i < g->n_tensors; i++)
    if (g->tensors[i].name && !strcmp(g->tensors[i].name, name)) return &g->tensors[i];
  return NULL;
}

/* Reads a fixed-size scalar as signed (via *s) or unsigned (via *u) 64-bit;
 * returns 0 if the type is not an integer. */
static int read_integer(const ls_gguf_value *v, int *is_signed, int64_t *s, uint64_t *u) {
  const uint8_t *p = v->p;
  switch (v->type) {
  case LS_GGUF_UINT8: *u = p[0]; *is_signed = 0; return 1;
  case LS_GGUF_INT8: { int8_t x; memcpy(&x, p, 1); *s = x; *is_signed = 1; return 1; }
  case LS_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); *u = x; *is_signed = 0; return 1; }
  case LS_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); *s = x; *is_signed = 1; return 1; }
  case LS_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); *u = x; *is_signed = 0; return 1; }
  case LS_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); *s = x; *is_signed = 1; return 1; }
  case LS_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); *u = x; *is_signed = 0; return 1; }
  case LS_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); *s = x; *is_signed = 1; return 1; }
  default: return 0;
  }
}

int ls_gguf_value_int(const ls_gguf_value *v, int64_t *out) {
  int sg;
  int64_t s;
  uint64_t u;
  if (!read_integer(v, &sg, &s, &u)) return 0;
  if (!sg) {
    if (u > (uint64_t)INT64_MAX) return 0;
    s = (int64_t)u;
  }
  *out = s;
  return 1;
}

int ls_gguf_value_uint(const ls_gguf_value *v, uint64_t *out) {
  int sg;
  int64_t s;
  uint64_t u;
  if (!read_integer(v, &sg, &s, &u)) return 0;
  if (sg) {
    if (s < 0) return 0;
    u = (uint64_t)s;
  }
  *out = u;
  return 1;
}

int ls_gguf_value_float(const ls_gguf_value *v, double *out) {
  if (v->type == LS_GGUF_FLOAT32) {
    float f;
    memcpy(&f, v->p, 4);
    *out = f;
    return 1;
  }
  if (v->type == LS_GGUF_FLOAT64) {
    memcpy(out, v->p, 8);
    return 1;
  }
  return 0;
}

int ls_gguf_value_bool(const ls_gguf_value *v, int *out) {
  if (v->type != LS_GGUF_BOOL) return 0;
  *out = v->p[0] != 0;
  return 1;
}

int ls_gguf_value_str(const ls_gguf_value *v, const char **s, size_t *len) {
  if (v->type != LS_GGUF_STRING) return 0;
  uint64_t n;
  memcpy(&n, v->p, 8);
  *s = (const char *)v->p + 8;
  *len = (size_t)n;
  return 1;
}

/* Describes the (validated) value of `type` at p. */
static void describe(uint32_t type, const uint8_t *p, ls_gguf_value *e) {
  memset(e, 0, sizeof *e);
  e->type = type;
  e->p = p;
  if (type == LS_GGUF_STRING) {
    uint64_t n;
    memcpy(&n, p, 8);
    e->nbytes = 8 + (size_t)n;
  } else if (type == LS_GGUF_ARRAY) {
    memcpy(&e->arr_type, p, 4);
    memcpy(&e->arr_n, p + 4, 8);
    e->arr_data = p + 12;
    const uint8_t *q = e->arr_data;
    if (e->arr_type == LS_GGUF_STRING || e->arr_type == LS_GGUF_ARRAY) {
      for (uint64_t i = 0; i < e->arr_n; i++) {
        ls_gguf_value sub;
        describe(e->arr_type, q, &sub);
        q += sub.nbytes;
      }
    } else {
      q += (size_t)e->arr_n * value_size[e->arr_type];
    }
    e->nbytes = (size_t)(q - p);
  } else {
    e->nbytes = value_size[type];
  }
}

int ls_gguf_array_next(const ls_gguf_value *arr, const uint8_t **cursor, ls_gguf_value *elem) {
  if (arr->type != LS_GGUF_ARRAY) return 0;
  const uint8_t *end = arr->p + arr->nbytes;
  const uint8_t *q = *cursor ? *cursor : arr->arr_data;
  if (q >= end || arr->arr_n == 0) return 0;
  describe(arr->arr_type, q, elem);
  *cursor = q + elem->nbytes;
  return 1;
}

int ls_gguf_array_at(const ls_gguf_value *arr, uint64_t i, ls_gguf_value *elem) {
  if (arr->type != LS_GGUF_ARRAY || i >= arr->arr_n) return 0;
  if (arr->arr_type != LS_GGUF_STRING && arr->arr_type != LS_GGUF_ARRAY) {
    describe(arr->arr_type, arr->arr_data + (size_t)i * value_size[arr->arr_type], elem);
    return 1;
  }
  const uint8_t *cur = NULL;
  for (uint64_t k = 0; k <= i; k++)
    if (!ls_gguf_array_next(arr, &cur, elem)) return 0;
  return 1;
}

/* ---- keyed getters ------------------------------------------------------ */

static const ls_gguf_kv *lookup(const ls_gguf *g, const char *key, int required, int *found, ls_err *err, int *rc) {
  const ls_gguf_kv *kv = ls_gguf_find(g, key);
  if (found) *found = kv != NULL;
  *rc = (!kv && required) ? ls_err_set(err, LS_EFORMAT, "%s: missing metadata key %s", g->path, key) : LS_OK;
  return kv;
}

static int wrong_type(const ls_gguf *g, const char *key, uint32_t type, const char *want, ls_err *err) {
  return ls_err_set(err, LS_EFORMAT, "%s: metadata key %s has type %s, expected %s", g->path, key,
                    ls_gguf_value_type_name(type), want);
}

int ls_gguf_get_int(const ls_gguf *g, const char *key, int required, int64_t lo, int64_t hi, int64_t *out,
                    int *found, ls_err *err) {
  int rc;
  const ls_gguf_kv *kv = lookup(g, key, required, found, err, &rc);
  if (!kv) return rc;
  int64_t v;
  if (!ls_gguf_value_int(&kv->val, &v)) {
    uint64_t u;
    if (ls_gguf_value_uint(&kv->val, &u))
      return ls_err_set(err, LS_EFORMAT, "%s: metadata key %s = %" PRIu64 " is out of range [%" PRId64 ", %" PRId64 "]",
                        g->path, key, u, lo, hi);
    return wrong_type(g, key, kv->val.type, "an integer", err);
  }
  if (v < lo || v > hi)
    return ls_err_set(err, LS_EFORMAT, "%s: metadata key %s = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                      g->path, key, v, lo, hi);
  *out = v;
  return LS_OK;
}

int ls_gguf_get_float(const ls_gguf *g, const char *key, int required, double *out, int *found, ls_err *err) {
  int rc;
  const ls_gguf_kv *kv = lookup(g, key, required, found, err, &rc);
  if (!kv) return rc;
  if (!ls_gguf_value_float(&kv->val, out)) return wrong_type(g, key, kv->val.type, "float32", err);
  if (!isfinite(*out)) return ls_err_set(err, LS_EFORMAT, "%s: metadata key %s is not finite", g->path, key);
  return LS_OK;
}

int ls_gguf_get_bool(const ls_gguf *g, const char *key, int required, int *out, int *found, ls_err *err) {
  int rc;
  const ls_gguf_kv *kv = lookup(g, key, required, found, err, &rc);
  if (!kv) return rc;
  if (!ls_gguf_value_bool(&kv->val, out)) return wrong_type(g, key, kv->val.type, "bool", err);
  return LS_OK;
}

int ls_gguf_get_str(const ls_gguf *g, const char *key, int required, const char **s, size_t *len, int *found,
                    ls_err *err) {
  int rc;
  const ls_gguf_kv *kv = lookup(g, key, required, found, err, &rc);
  if (!kv) return rc;
  if (!ls_gguf_value_str(&kv->val, s, len)) return wrong_type(g, key, kv->val.type, "string", err);
  return LS_OK;
}

static int is_int_type(uint32_t t) {
  return t <= LS_GGUF_INT32 || t == LS_GGUF_UINT64 || t == LS_GGUF_INT64;
}

int ls_gguf_get_array(const ls_gguf *g, const char *key, uint32_t elem_type, int required, ls_gguf_value *out,
                      int *found, ls_err *err) {
  int rc;
  const ls_gguf_kv *kv = lookup(g, key, required, found, err, &rc);
  if (!kv) return rc;
  if (kv->val.type != LS_GGUF_ARRAY) return wrong_type(g, key, kv->val.type, "array", err);
  uint32_t et = kv->val.arr_type;
  int ok = elem_type == LS_GGUF_INT64   ? is_int_type(et)
           : elem_type == LS_GGUF_FLOAT64 ? (et == LS_GGUF_FLOAT32 || et == LS_GGUF_FLOAT64)
                                          : et == elem_type;
  if (!ok)
    return ls_err_set(err, LS_EFORMAT, "%s: metadata key %s is an array of %s, expected %s", g->path, key,
                      ls_gguf_value_type_name(et), ls_gguf_value_type_name(elem_type));
  *out = kv->val;
  return LS_OK;
}

/* ---- printing ----------------------------------------------------------- */

static void print_str(FILE *f, const char *s, size_t len, size_t max) {
  fputc('"', f);
  for (size_t i = 0; i < len && i < max; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
    else fputc(c, f);
  }
  if (len > max) fputs("...", f);
  fputc('"', f);
}

void ls_gguf_print_value(FILE *f, const ls_gguf_value *v, int max_elems) {
  int64_t i;
  uint64_t u;
  double d;
  int b;
  const char *s;
  size_t len;
  if (v->type == LS_GGUF_ARRAY) {
    fprintf(f, "[%s x %" PRIu64 "]", ls_gguf_value_type_name(v->arr_type), v->arr_n);
    if (max_elems <= 0 || v->arr_n == 0) return;
    fputs(" [", f);
    const uint8_t *cur = NULL;
    ls_gguf_value e;
    int k = 0;
    while (k < max_elems && ls_gguf_array_next(v, &cur, &e)) {
      if (k++) fputs(", ", f);
      ls_gguf_print_value(f, &e, max_elems);
    }
    if ((uint64_t)k < v->arr_n) fputs(", ...", f);
    fputc(']', f);
  } else if (ls_gguf_value_str(v, &s, &len)) {
    print_str(f, s, len, 200);
  } else if (ls_gguf_value_bool(v, &b)) {
    fputs(b ? "true" : "false", f);
  } else if (ls_gguf_value_float(v, &d)) {
    fprintf(f, "%g", d);
  } else if (ls_gguf_value_int(v, &i)) {
    fprintf(f, "%" PRId64, i);
  } else if (ls_gguf_value_uint(v, &u)) {
    fprintf(f, "%" PRIu64, u);
  }
}

/* ---- the llama model loader --------------------------------------------- */

/* Reads "<arch>.<key>" (arch is "llama" or "qwen2"). */
static const char *arch_key(const ls_config *c, const char *key, char *buf, size_t cap) {
  snprintf(buf, cap, "%s.%s", c->arch == LS_ARCH_QWEN2 ? "qwen2" : "llama", key);
  return buf;
}

static int get_dim(const ls_gguf *g, const ls_config *c, const char *key, int required, int *out, ls_err *err) {
  char k[96];
  int64_t v = *out;
  LS_TRY(ls_gguf_get_int(g, arch_key(c, key, k, sizeof k), required, 1, INT32_MAX, &v, NULL, err));
  *out = (int)v;
  return LS_OK;
}

static int get_float(const ls_gguf *g, const ls_config *c, const char *key, int required, double *out, int *found,
                     ls_err *err) {
  char k[96];
  return ls_gguf_get_float(g, arch_key(c, key, k, sizeof k), required, out, found, err);
}

static int read_arch(ls_config *c, const ls_gguf *g, ls_err *err) {
  const char *s = NULL;
  size_t len = 0;
  LS_TRY(ls_gguf_get_str(g, "general.architecture", 1, &s, &len, NULL, err));
  if (len == 5 && !memcmp(s, "llama", 5)) c->arch = LS_ARCH_LLAMA;
  else if (len == 5 && !memcmp(s, "qwen2", 5)) c->arch = LS_ARCH_QWEN2;
  else
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: architecture '%.*s' is not supported (llama, qwen2)", g->path,
                      (int)(len > 64 ? 64 : len), s);
  /* qwen2 rotates the two halves of each head (ggml's NEOX rope) */
  c->rope_neox = c->arch == LS_ARCH_QWEN2;
  return LS_OK;
}

/* <arch>.rope.scaling.type: none, linear (positions times 1/factor) or llama3
 * (per-frequency divisors, made by rope_factors_llama3 unless the file has a
 * rope_freqs tensor). */
static int read_rope_scaling(ls_config *c, const ls_gguf *g, int *llama3, ls_err *err) {
  char k[96];
  const char *s = NULL;
  size_t len = 0;
  int found;
  *llama3 = 0;
  c->rope_freq_scale = 0.0f; /* none */
  LS_TRY(ls_gguf_get_str(g, arch_key(c, "rope.scaling.type", k, sizeof k), 0, &s, &len, &found, err));
  if (!found || (len == 4 && !memcmp(s, "none", 4))) return LS_OK;
  double factor = 1.0;
  LS_TRY(get_float(g, c, "rope.scaling.factor", 0, &factor, NULL, err));
  if (!(factor >= 1.0 && factor <= 1e6))
    return ls_err_set(err, LS_EFORMAT, "%s: rope.scaling.factor %g is out of range", g->path, factor);
  if (len == 6 && !memcmp(s, "linear", 6)) {
    c->rope_freq_scale = (float)(1.0 / factor);
    return LS_OK;
  }
  if (len == 6 && !memcmp(s, "llama3", 6)) {
    *llama3 = 1;
    return LS_OK;
  }
  return ls_err_set(err, LS_EUNSUPPORTED, "%s: %s '%.*s' is not supported (none, linear, llama3)", g->path, k,
                    (int)(len > 64 ? 64 : len), s);
}

static int read_config(ls_model *m, const ls_gguf *g, ls_err *err) {
  const char *s = NULL;
  size_t len = 0;
  ls_config *c = &m->cfg;
  LS_TRY(read_arch(c, g, err));
  int found;
  LS_TRY(ls_gguf_get_str(g, "general.name", 0, &s, &len, &found, err));
  if (found && len > 0) snprintf(m->name, sizeof m->name, "%.*s", (int)len, s);
  LS_TRY(get_dim(g, c, "context_length", 1, &c->seq_len, err));
  LS_TRY(get_dim(g, c, "embedding_length", 1, &c->dim, err));
  LS_TRY(get_dim(g, c, "block_count", 1, &c->n_layers, err));
  LS_TRY(get_dim(g, c, "feed_forward_length", 1, &c->hidden_dim, err));
  LS_TRY(get_dim(g, c, "attention.head_count", 1, &c->n_heads, err));
  c->n_kv_heads = c->n_heads;
  LS_TRY(get_dim(g, c, "attention.head_count_kv", 0, &c->n_kv_heads, err));
  c->head_dim = c->dim / c->n_heads;
  c->rope_dim = c->head_dim;
  LS_TRY(get_dim(g, c, "rope.dimension_count", 0, &c->rope_dim, err));
  double theta = 10000.0, eps = 1e-5;
  LS_TRY(get_float(g, c, "rope.freq_base", 0, &theta, NULL, err));
  LS_TRY(get_float(g, c, "attention.layer_norm_rms_epsilon", 0, &eps, NULL, err));
  c->rope_theta = (float)theta;
  c->norm_eps = (float)eps;
  /* the vocabulary size is the embedding's row count (checked against the tokenizer) */
  const ls_gguf_tensor *emb = ls_gguf_find_tensor(g, "token_embd.weight");
  if (!emb) return ls_err_set(err, LS_EFORMAT, "%s: missing tensor token_embd.weight", g->path);
  c->vocab_size = emb->ne[1] > INT32_MAX ? INT32_MAX : (int)emb->ne[1];
  int64_t nv = c->vocab_size;
  char k[96];
  LS_TRY(ls_gguf_get_int(g, arch_key(c, "vocab_size", k, sizeof k), 0, 1, INT32_MAX, &nv, NULL, err));
  if (nv != c->vocab_size)
    return ls_err_set(err, LS_EMISMATCH, "%s: %s is %" PRId64 " but token_embd.weight has %d rows", g->path, k, nv,
                      c->vocab_size);
  return ls_config_validate(c, g->path, err);
}

/* Finds a tensor and checks its shape: [cols] for a vector, [cols, rows] for a matrix. */
static int find_shaped(const ls_gguf *g, const char *name, int64_t rows, int64_t cols, const ls_gguf_tensor **out,
                       ls_err *err) {
  const ls_gguf_tensor *t = ls_gguf_find_tensor(g, name);
  if (!t) return ls_err_set(err, LS_EFORMAT, "%s: missing tensor %s", g->path, name);
  int want_dims = rows ? 2 : 1;
  int64_t want1 = rows ? rows : 1;
  if (t->ne[0] != cols || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1 || (int)t->n_dims > want_dims) {
    if (rows)
      return ls_err_set(err, LS_EMISMATCH, "%s: tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "], expected [%" PRId64 ", %" PRId64 "] from the config",
                        g->path, name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], cols, rows);
    return ls_err_set(err, LS_EMISMATCH, "%s: tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "], expected [%" PRId64 "] from the config",
                      g->path, name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], cols);
  }
  *out = t;
  return LS_OK;
}

static int elem_align(uint32_t type) { return type == LS_F32 ? 4 : 2; }

static int load_mat(ls_model *m, const ls_gguf *g, const char *name, int64_t rows, int64_t cols, ls_mat *w,
                    ls_err *err) {
  const ls_gguf_tensor *t;
  LS_TRY(find_shaped(g, name, rows, cols, &t, err));
  if (!ls_dtype_supported(t->type)) {
    char types[256];
    ls_dtype_list_computable(types, sizeof types, ", ");
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: tensor %s has type %s (%u), which the engine does not support (%s)",
                      g->path, name, ls_dtype_name(t->type), t->type, types);
  }
  if ((uintptr_t)t->data % (uintptr_t)elem_align(t->type))
    return ls_err_set(err, LS_EFORMAT, "%s: tensor %s data is not aligned to %d bytes", g->path, name,
                      elem_align(t->type));
  w->type = t->type;
  w->rows = rows;
  w->cols = cols;
  w->row_bytes = ls_dtype_row_bytes(t->type, cols);
  w->data = t->data;
  (void)m;
  return LS_OK;
}

/* Vectors (norms, biases, rope factors) are used as float*: F32 stays in the
 * mapping (when aligned); F16/BF16 are widened into a buffer the model owns. */
static int load_vec(ls_model *m, const ls_gguf *g, const char *name, int64_t n, const float **out, ls_err *err) {
  const ls_gguf_tensor *t;
  LS_TRY(find_shaped(g, name, 0, n, &t, err));
  if (t->type == LS_F32 && (uintptr_t)t->data % 4 == 0) {
    *out = t->data;
    return LS_OK;
  }
  if (t->type != LS_F32 && t->type != LS_F16 && t->type != LS_BF16)
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: vector tensor %s has type %s (%u); only F32, F16 and BF16 are supported",
                      g->path, name, ls_dtype_name(t->type), t->type);
  float *buf = malloc((size_t)n * sizeof *buf);
  if (!buf) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", g->path);
  if (t->type == LS_F32) {
    memcpy(buf, t->data, (size_t)n * 4);
  } else {
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      buf[i] = t->type == LS_F16 ? ls_fp16_to_fp32(h) : ls_bf16_to_fp32(h);
    }
  }
  LS_TRY(ls_model_own(m, buf, err));
  *out = buf;
  return LS_OK;
}

static int load_norm(ls_model *m, const ls_gguf *g, const char *name, const float **out, ls_err *err) {
  return load_vec(m, g, name, m->cfg.dim, out, err);
}

/* Llama 3's rope scaling as its reference code derives it from the config:
 * wavelengths longer than original_context_length / low_freq_factor are
 * slowed by factor, shorter than ... / high_freq_factor are kept, and the band
 * between is interpolated. Stored as divisors of each frequency (what a
 * rope_freqs tensor holds). */
static int rope_factors_llama3(ls_model *m, const ls_gguf *g, ls_err *err) {
  const ls_config *c = &m->cfg;
  double factor = 1, lo = 1, hi = 4, orig = 8192;
  LS_TRY(get_float(g, c, "rope.scaling.factor", 1, &factor, NULL, err));
  LS_TRY(get_float(g, c, "rope.scaling.low_freq_factor", 1, &lo, NULL, err));
  LS_TRY(get_float(g, c, "rope.scaling.high_freq_factor", 1, &hi, NULL, err));
  int64_t orig_ctx = 0;
  char k[96];
  LS_TRY(ls_gguf_get_int(g, arch_key(c, "rope.scaling.original_context_length", k, sizeof k), 1, 1, INT32_MAX,
                         &orig_ctx, NULL, err));
  orig = (double)orig_ctx;
  if (!(lo > 0 && hi > lo))
    return ls_err_set(err, LS_EFORMAT, "%s: rope.scaling low_freq_factor %g / high_freq_factor %g are not 0 < low < high",
                      g->path, lo, hi);
  int n = c->rope_dim / 2;
  float *f = malloc((size_t)n * sizeof *f);
  if (!f) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", g->path);
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < n; i++) {
    double freq = pow((double)c->rope_theta, -2.0 * i / c->rope_dim);
    double wavelen = 2 * pi / freq;
    if (wavelen < orig / hi) f[i] = 1.0f;
    else if (wavelen > orig / lo) f[i] = (float)factor;
    else {
      double smooth = (orig / wavelen - lo) / (hi - lo);
      f[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
    }
  }
  LS_TRY(ls_model_own(m, f, err));
  m->rope_freqs = f;
  return LS_OK;
}

static int load_rope_freqs(ls_model *m, const ls_gguf *g, int llama3, ls_err *err) {
  if (ls_gguf_find_tensor(g, "rope_freqs.weight")) {
    LS_TRY(load_vec(m, g, "rope_freqs.weight", m->cfg.rope_dim / 2, &m->rope_freqs, err));
    for (int i = 0; i < m->cfg.rope_dim / 2; i++)
      if (!(m->rope_freqs[i] > 0 && m->rope_freqs[i] < 1e30f))
        return ls_err_set(err, LS_EFORMAT, "%s: rope_freqs.weight[%d] is not a positive number", g->path, i);
    return LS_OK;
  }
  return llama3 ? rope_factors_llama3(m, g, err) : LS_OK;
}

/* Q/K/V biases: all three or none (qwen2 has them, llama has none). */
static int load_biases(ls_model *m, const ls_gguf *g, int l, ls_layer *L, ls_err *err) {
  const ls_config *c = &m->cfg;
  char q[96], k[96], v[96];
  snprintf(q, sizeof q, "blk.%d.attn_q.bias", l);
  snprintf(k, sizeof k, "blk.%d.attn_k.bias", l);
  snprintf(v, sizeof v, "blk.%d.attn_v.bias", l);
  int have = !!ls_gguf_find_tensor(g, q) + !!ls_gguf_find_tensor(g, k) + !!ls_gguf_find_tensor(g, v);
  if (have == 0 && c->arch == LS_ARCH_LLAMA) return LS_OK;
  if (have != 3) return ls_err_set(err, LS_EFORMAT, "%s: layer %d needs attn_q/attn_k/attn_v biases (found %d of 3)", g->path, l, have);
  LS_TRY(load_vec(m, g, q, (int64_t)c->n_heads * c->head_dim, &L->bq, err));
  LS_TRY(load_vec(m, g, k, (int64_t)c->n_kv_heads * c->head_dim, &L->bk, err));
  return load_vec(m, g, v, (int64_t)c->n_kv_heads * c->head_dim, &L->bv, err);
}

static int load_weights(ls_model *m, const ls_gguf *g, ls_err *err) {
  const ls_config *c = &m->cfg;
  int64_t dim = c->dim, q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
  int64_t hidden = c->hidden_dim, vocab = c->vocab_size;
  m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
  if (!m->layers) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for %d layers", g->path, c->n_layers);
  LS_TRY(load_mat(m, g, "token_embd.weight", vocab, dim, &m->tok_embd, err));
  char name[96];
  for (int l = 0; l < c->n_layers; l++) {
    ls_layer *L = &m->layers[l];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
    LS_TRY(load_norm(m, g, NAME("attn_norm.weight"), &L->attn_norm, err));
    LS_TRY(load_biases(m, g, l, L, err));
    LS_TRY(load_mat(m, g, NAME("attn_q.weight"), q_dim, dim, &L->wq, err));
    LS_TRY(load_mat(m, g, NAME("attn_k.weight"), kv_dim, dim, &L->wk, err));
    LS_TRY(load_mat(m, g, NAME("attn_v.weight"), kv_dim, dim, &L->wv, err));
    LS_TRY(load_mat(m, g, NAME("attn_output.weight"), dim, q_dim, &L->wo, err));
    LS_TRY(load_norm(m, g, NAME("ffn_norm.weight"), &L->ffn_norm, err));
    LS_TRY(load_mat(m, g, NAME("ffn_gate.weight"), hidden, dim, &L->w_gate, err));
    LS_TRY(load_mat(m, g, NAME("ffn_up.weight"), hidden, dim, &L->w_up, err));
    LS_TRY(load_mat(m, g, NAME("ffn_down.weight"), dim, hidden, &L->w_down, err));
#undef NAME
  }
  LS_TRY(load_norm(m, g, "output_norm.weight", &m->out_norm, err));
  if (ls_gguf_find_tensor(g, "output.weight")) {
    LS_TRY(load_mat(m, g, "output.weight", vocab, dim, &m->output, err));
    m->tied_output = 0;
  } else {
    m->output = m->tok_embd;
    m->tied_output = 1;
  }
  m->weight_bytes = g->data_bytes;
  return LS_OK;
}

/* Token text with SentencePiece's U+2581 (E2 96 81) turned into ' ' (sp), or
 * as the file has it (BPE). */
static char *token_text(const char *s, size_t len, int sp) {
  char *t = malloc(len + 1);
  if (!t) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (sp && i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
        (unsigned char)s[i + 2] == 0x81) {
      t[o++] = ' ';
      i += 2;
    } else {
      t[o++] = s[i];
    }
  }
  t[o] = '\0';
  return t;
}

static int get_token_id(const ls_gguf *g, const char *key, int n, int *out, ls_err *err) {
  int64_t v = *out;
  int found;
  LS_TRY(ls_gguf_get_int(g, key, 0, INT64_MIN, INT64_MAX, &v, &found, err));
  if (found && (v < 0 || v >= n))
    return ls_err_set(err, LS_EFORMAT, "%s: %s = %" PRId64 " is not a token id (vocabulary has %d)", g->path, key, v, n);
  if (!found && *out >= n) v = -1;
  *out = (int)v;
  return LS_OK;
}

#define LS_MAX_VOCAB (1 << 22)

static int read_vocab_arrays(ls_vocab *v, const ls_gguf *g, ls_err *err) {
  ls_gguf_value toks, scores, types;
  int have_scores, have_types, sp = v->kind == LS_VOCAB_SPM;
  LS_TRY(ls_gguf_get_array(g, "tokenizer.ggml.tokens", LS_GGUF_STRING, 1, &toks, NULL, err));
  LS_TRY(ls_gguf_get_array(g, "tokenizer.ggml.scores", LS_GGUF_FLOAT32, 0, &scores, &have_scores, err));
  LS_TRY(ls_gguf_get_array(g, "tokenizer.ggml.token_type", LS_GGUF_INT64, 0, &types, &have_types, err));
  uint64_t n = toks.arr_n;
  if (n == 0 || n > LS_MAX_VOCAB)
    return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.tokens has absurd length %" PRIu64, g->path, n);
  if (have_scores && scores.arr_n != n)
    return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.scores has %" PRIu64 " entries for %" PRIu64 " tokens",
                      g->path, scores.arr_n, n);
  if (have_types && types.arr_n != n)
    return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.token_type has %" PRIu64 " entries for %" PRIu64 " tokens",
                      g->path, types.arr_n, n);
  v->n_tokens = (int)n;
  v->tokens = calloc((size_t)n, sizeof *v->tokens);
  v->scores = calloc((size_t)n, sizeof *v->scores);
  v->types = calloc((size_t)n, sizeof *v->types);
  if (!v->tokens || !v->scores || !v->types) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for the vocabulary", g->path);
  const uint8_t *cur = NULL;
  ls_gguf_value e;
  for (int i = 0; ls_gguf_array_next(&toks, &cur, &e); i++) {
    const char *s = "";
    size_t len = 0;
    ls_gguf_value_str(&e, &s, &len);
    if (memchr(s, '\0', len))
      return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.tokens[%d] contains a NUL byte", g->path, i);
    if (!(v->tokens[i] = token_text(s, len, sp))) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", g->path);
    int tl = (int)strlen(v->tokens[i]);
    if (tl > v->max_token_len) v->max_token_len = tl;
    v->types[i] = LS_TOK_NORMAL;
    if (have_scores) {
      ls_gguf_array_at(&scores, (uint64_t)i, &e);
      double d;
      ls_gguf_value_float(&e, &d);
      v->scores[i] = (float)d;
    }
    if (have_types) {
      ls_gguf_array_at(&types, (uint64_t)i, &e);
      int64_t t;
      if (!ls_gguf_value_int(&e, &t) || t < 0 || t > 6)
        return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.token_type of token %d is not a token type", g->path, i);
      v->types[i] = (int32_t)t;
    }
  }
  return LS_OK;
}

/* BPE merges: "left right" strings, copied into one buffer (rank = index). */
static int read_merges(ls_vocab *v, const ls_gguf *g, ls_err *err) {
  ls_gguf_value arr, e;
  LS_TRY(ls_gguf_get_array(g, "tokenizer.ggml.merges", LS_GGUF_STRING, 1, &arr, NULL, err));
  if (arr.arr_n > LS_MAX_VOCAB)
    return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.merges has absurd length %" PRIu64, g->path, arr.arr_n);
  size_t total = 0;
  const uint8_t *cur = NULL;
  while (ls_gguf_array_next(&arr, &cur, &e)) {
    const char *s = "";
    size_t len = 0;
    ls_gguf_value_str(&e, &s, &len);
    total += len + 1; /* bounded by the file size: the strings are in the file */
  }
  v->n_merges = (int)arr.arr_n;
  v->merge_text = malloc(total + 1);
  v->merge_off = malloc(((size_t)v->n_merges + 1) * sizeof *v->merge_off);
  if (!v->merge_text || !v->merge_off) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for the merges", g->path);
  if (total > UINT32_MAX) return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.merges is too large", g->path);
  size_t at = 0;
  cur = NULL;
  for (int i = 0; ls_gguf_array_next(&arr, &cur, &e); i++) {
    const char *s = "";
    size_t len = 0;
    ls_gguf_value_str(&e, &s, &len);
    if (memchr(s, '\0', len))
      return ls_err_set(err, LS_EFORMAT, "%s: tokenizer.ggml.merges[%d] contains a NUL byte", g->path, i);
    v->merge_off[i] = (uint32_t)at;
    memcpy(v->merge_text + at, s, len);
    v->merge_text[at + len] = '\0';
    at += len + 1;
  }
  return LS_OK;
}

/* The end-of-turn token: tokenizer.ggml.eot_token_id, else a token with one of
 * the usual end-of-turn texts (chat models stop there). */
static int find_eot(ls_vocab *v, const ls_gguf *g, ls_err *err) {
  static const char *texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<|end_of_text|>"};
  v->eot_id = -1;
  LS_TRY(get_token_id(g, "tokenizer.ggml.eot_token_id", v->n_tokens, &v->eot_id, err));
  for (size_t k = 0; v->eot_id < 0 && k < sizeof texts / sizeof texts[0]; k++)
    for (int i = 0; i < v->n_tokens; i++)
      if (!strcmp(v->tokens[i], texts[k]) && i != v->eos_id) {
        v->eot_id = i;
        break;
      }
  return LS_OK;
}

/* Which tokenizer: "llama" (SentencePiece) or "gpt2" (byte-level BPE with a
 * supported pre-tokenizer). found = 0 if the file has no tokenizer. */
static int read_tokenizer_kind(ls_vocab *v, const ls_gguf *g, int *found, ls_err *err) {
  const char *s = NULL;
  size_t len = 0;
  LS_TRY(ls_gguf_get_str(g, "tokenizer.ggml.model", 0, &s, &len, found, err));
  if (!*found) return LS_OK;
  if (len == 5 && !memcmp(s, "llama", 5)) {
    v->kind = LS_VOCAB_SPM;
    return LS_OK;
  }
  if (len != 4 || memcmp(s, "gpt2", 4))
    return ls_err_set(err, LS_EUNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (llama, gpt2)", g->path,
                      (int)(len > 64 ? 64 : len), s);
  v->kind = LS_VOCAB_BPE;
  int have_pre;
  LS_TRY(ls_gguf_get_str(g, "tokenizer.ggml.pre", 0, &s, &len, &have_pre, err));
  if (!have_pre) {
    s = "default";
    len = 7;
  }
  int pre = ls_pre_kind_from_name(s, len);
  if (pre < 0)
    return ls_err_set(err, LS_EUNSUPPORTED,
                      "%s: tokenizer.ggml.pre '%.*s' is not supported (llama-bpe, qwen2, smollm, gpt-2, default)",
                      g->path, (int)(len > 64 ? 64 : len), s);
  v->pre = pre;
  snprintf(v->pre_name, sizeof v->pre_name, "%.*s", (int)(len > 31 ? 31 : len), s);
  return LS_OK;
}

/* Special ids and flags, with llama.cpp's defaults per tokenizer kind. */
static int read_special(ls_vocab *v, const ls_gguf *g, ls_err *err) {
  int bpe = v->kind == LS_VOCAB_BPE;
  v->unk_id = bpe ? -1 : 0;
  v->bos_id = bpe ? 11 : 1;
  v->eos_id = bpe ? 11 : 2;
  if (v->bos_id >= v->n_tokens) v->bos_id = -1;
  if (v->eos_id >= v->n_tokens) v->eos_id = -1;
  LS_TRY(get_token_id(g, "tokenizer.ggml.bos_token_id", v->n_tokens, &v->bos_id, err));
  LS_TRY(get_token_id(g, "tokenizer.ggml.eos_token_id", v->n_tokens, &v->eos_id, err));
  LS_TRY(get_token_id(g, "tokenizer.ggml.unknown_token_id", v->n_tokens, &v->unk_id, err));
  v->add_bos = bpe ? v->pre == LS_PRE_LLAMA3 : 1;
  v->add_eos = 0;
  v->add_space_prefix = !bpe;
  LS_TRY(ls_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", 0, &v->add_bos, NULL, err));
  LS_TRY(ls_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", 0, &v->add_eos, NULL, err));
  if (!bpe) LS_TRY(ls_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", 0, &v->add_space_prefix, NULL, err));
  if ((v->add_bos && v->bos_id < 0) || (v->add_eos && v->eos_id < 0))
    return ls_err_set(err, LS_EFORMAT, "%s: the tokenizer adds BOS/EOS but has no such token", g->path);
  return find_eot(v, g, err);
}

static int read_vocab_gguf(ls_vocab *v, const ls_gguf *g, ls_err *err) {
  int found;
  memset(v, 0, sizeof *v);
  int rc = read_tokenizer_kind(v, g, &found, err);
  if (!rc && found) rc = read_vocab_arrays(v, g, err);
  if (!rc && found && v->kind == LS_VOCAB_BPE) rc = read_merges(v, g, err);
  if (!rc && found) rc = read_special(v, g, err);
  if (rc || !found) ls_vocab_free(v);
  return rc;
}

static int read_vocab(ls_model *m, const ls_gguf *g, ls_err *err) {
  ls_vocab *v = &m->vocab;
  LS_TRY(read_vocab_gguf(v, g, err));
  if (v->n_tokens > 0 && v->n_tokens != m->cfg.vocab_size)
    return ls_err_set(err, LS_EMISMATCH, "%s: tokenizer has %d tokens but token_embd.weight has %d rows", g->path,
                      v->n_tokens, m->cfg.vocab_size);
  return LS_OK;
}

int ls_vocab_load_gguf(ls_vocab *v, const char *path, ls_err *err) {
  ls_gguf g;
  memset(v, 0, sizeof *v);
  LS_TRY(ls_gguf_open(&g, path, err));
  int rc = read_vocab_gguf(v, &g, err);
  if (!rc && v->n_tokens == 0) rc = ls_err_set(err, LS_EFORMAT, "%s: the file has no tokenizer", path);
  ls_gguf_close(&g);
  return rc;
}

const char *ls_vocab_kind_name(const ls_vocab *v) { return v->kind == LS_VOCAB_BPE ? "BPE" : "SentencePiece"; }

int ls_model_load_gguf(ls_model *m, const char *path, ls_err *err) {
  LS_TRY(ls_model_map_file(m, path, err));
  ls_gguf g;
  LS_TRY(ls_gguf_parse(&g, m->map, m->map_size, path, err));
  int llama3_rope = 0;
  int rc = read_config(m, &g, err);
  if (!rc) rc = read_rope_scaling(&m->cfg, &g, &llama3_rope, err);
  if (!rc) rc = load_weights(m, &g, err);
  if (!rc) rc = load_rope_freqs(m, &g, llama3_rope, err);
  if (!rc) rc = read_vocab(m, &g, err);
  if (!rc) {
    m->format = LS_FMT_GGUF;
    m->gguf_version = g.version;
  }
  ls_gguf_close(&g);
  return rc;
}
