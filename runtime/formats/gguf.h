/* GGUF files: a bounds-checked parsed view over the mapped bytes (reader) and
 * a streaming writer. The GGUF layout (v2/v3, little-endian):
 *
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x  { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to general.alignment (default 32), then the data section; each
 *   tensor's offset is relative to the data section and a multiple of the alignment.
 *
 * A string is u64 length + bytes (no NUL). An array value is u32 element type,
 * u64 count, then the elements (arrays of arrays nest). The reader validates the
 * whole structure once (ls_gguf_parse), so the accessors below cannot run past
 * the mapping and need no error handling. See docs/formats-gguf.md. */
#ifndef LS_GGUF_H
#define LS_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ls_error.h"
#include "ls_strbuf.h"

/* Metadata value types, numbered as GGUF numbers them. */
enum {
  LS_GGUF_UINT8 = 0,
  LS_GGUF_INT8 = 1,
  LS_GGUF_UINT16 = 2,
  LS_GGUF_INT16 = 3,
  LS_GGUF_UINT32 = 4,
  LS_GGUF_INT32 = 5,
  LS_GGUF_FLOAT32 = 6,
  LS_GGUF_BOOL = 7,
  LS_GGUF_STRING = 8,
  LS_GGUF_ARRAY = 9,
  LS_GGUF_UINT64 = 10,
  LS_GGUF_INT64 = 11,
  LS_GGUF_FLOAT64 = 12,
  LS_GGUF_NTYPES
};

#define LS_GGUF_DEFAULT_ALIGNMENT 32
#define LS_GGUF_MAX_DIMS 4
#define LS_GGUF_MAX_NAME 64     /* tensor names are shorter than this (ggml's GGML_MAX_NAME) */
#define LS_GGUF_MAX_NESTING 8   /* arrays of arrays deeper than this are refused */

/* A value inside the mapping (already validated). */
typedef struct ls_gguf_value {
  uint32_t type;        /* LS_GGUF_* */
  const uint8_t *p;     /* first byte of the value (strings: the u64 length) */
  size_t nbytes;        /* bytes the whole value occupies */
  /* arrays only */
  uint32_t arr_type;
  uint64_t arr_n;
  const uint8_t *arr_data; /* first element */
} ls_gguf_value;

typedef struct ls_gguf_kv {
  const char *key;      /* NUL-terminated copy */
  ls_gguf_value val;
} ls_gguf_kv;

typedef struct ls_gguf_tensor {
  const char *name;     /* NUL-terminated copy */
  uint32_t n_dims;
  int64_t ne[LS_GGUF_MAX_DIMS]; /* ne[0] fastest (columns); unused dims are 1 */
  uint32_t type;        /* GGML type number */
  uint64_t offset;      /* relative to the data section */
  size_t nbytes;
  const void *data;     /* inside the mapping */
} ls_gguf_tensor;

typedef struct ls_gguf {
  char path[1024];
  const uint8_t *base;
  size_t size;
  uint32_t version;
  uint64_t n_kv, n_tensors;
  ls_gguf_kv *kv;          /* [n_kv] in file order */
  ls_gguf_tensor *tensors; /* [n_tensors] in file order */
  size_t alignment;
  size_t data_offset;      /* start of the data section */
  size_t data_bytes;       /* sum of the tensors' nbytes */
  /* private */
  char *strings;
  int own_map;
} ls_gguf;

/* Parses the GGUF bytes base[0..size) (which must outlive g). Every error
 * message starts with path. */
int ls_gguf_parse(ls_gguf *g, const void *base, size_t size, const char *path, ls_err *err);
/* Maps path read-only and parses it; ls_gguf_close() unmaps. */
int ls_gguf_open(ls_gguf *g, const char *path, ls_err *err);
void ls_gguf_close(ls_gguf *g);

const ls_gguf_kv *ls_gguf_find(const ls_gguf *g, const char *key);
const ls_gguf_tensor *ls_gguf_find_tensor(const ls_gguf *g, const char *name);

const char *ls_gguf_value_type_name(uint32_t type);
/* Tensor types (names, block sizes) are runtime/quant/ls_quant.h's table. */

/* Typed access to a value. Integers convert between all integer types when
 * the value fits; floats accept FLOAT32/FLOAT64. Return 1 on success, 0 if
 * the value has another type or does not fit. */
int ls_gguf_value_int(const ls_gguf_value *v, int64_t *out);
int ls_gguf_value_uint(const ls_gguf_value *v, uint64_t *out);
int ls_gguf_value_float(const ls_gguf_value *v, double *out);
int ls_gguf_value_bool(const ls_gguf_value *v, int *out);
int ls_gguf_value_str(const ls_gguf_value *v, const char **s, size_t *len);
/* Element i of an array: O(1) for fixed-size elements, O(i) for strings and
 * nested arrays (walk those with ls_gguf_array_next). */
int ls_gguf_array_at(const ls_gguf_value *arr, uint64_t i, ls_gguf_value *elem);
/* Walk an array: set *cursor = NULL first; each call yields the next element.
 * Returns 0 after the last. */
int ls_gguf_array_next(const ls_gguf_value *arr, const uint8_t **cursor, ls_gguf_value *elem);

/* Keyed getters for loaders. A missing key is an error only if `required`
 * (then *out is untouched when absent); a key of the wrong type or out of
 * range is always an error naming the file and key. *found (may be NULL) says
 * whether the key was there. */
int ls_gguf_get_int(const ls_gguf *g, const char *key, int required, int64_t lo, int64_t hi, int64_t *out,
                    int *found, ls_err *err);
int ls_gguf_get_float(const ls_gguf *g, const char *key, int required, double *out, int *found, ls_err *err);
int ls_gguf_get_bool(const ls_gguf *g, const char *key, int required, int *out, int *found, ls_err *err);
/* *s points into the mapping and is NOT NUL-terminated. */
int ls_gguf_get_str(const ls_gguf *g, const char *key, int required, const char **s, size_t *len, int *found,
                    ls_err *err);
/* An array whose elements have type elem_type (or any integer type if
 * elem_type is LS_GGUF_INT64, any float type if LS_GGUF_FLOAT64). */
int ls_gguf_get_array(const ls_gguf *g, const char *key, uint32_t elem_type, int required, ls_gguf_value *out,
                      int *found, ls_err *err);

/* Prints a value in a short human form (arrays: type, count and the first few elements). */
void ls_gguf_print_value(FILE *f, const ls_gguf_value *v, int max_elems);

/* ---- writer ------------------------------------------------------------- */

/* Little-endian encoders into a byte buffer (ls_strbuf_put: an allocation
 * failure sets b->oom), to build metadata values (including nested arrays)
 * for ls_gguf_writer_kv_raw(). */
void ls_gguf_put_u8(ls_strbuf *b, uint8_t v);
void ls_gguf_put_u32(ls_strbuf *b, uint32_t v);
void ls_gguf_put_u64(ls_strbuf *b, uint64_t v);
void ls_gguf_put_str(ls_strbuf *b, const char *s, size_t len);

typedef struct ls_gguf_writer ls_gguf_writer;

/* Order of use: open; kv_* and tensor (any order, all before data);
 * tensor_data for every tensor in the order declared (a tensor's bytes may
 * come in several calls, e.g. row by row); finish. The file is written to
 * PATH.tmp.PID and renamed into place by finish; ls_gguf_writer_free() on an
 * unfinished writer removes the temp file. general.alignment (32) is added
 * unless the caller sets it. */
int ls_gguf_writer_open(ls_gguf_writer **w, const char *path, ls_err *err);
int ls_gguf_writer_kv_u32(ls_gguf_writer *w, const char *key, uint32_t v, ls_err *err);
int ls_gguf_writer_kv_i32(ls_gguf_writer *w, const char *key, int32_t v, ls_err *err);
int ls_gguf_writer_kv_f32(ls_gguf_writer *w, const char *key, float v, ls_err *err);
int ls_gguf_writer_kv_bool(ls_gguf_writer *w, const char *key, int v, ls_err *err);
int ls_gguf_writer_kv_str(ls_gguf_writer *w, const char *key, const char *s, ls_err *err);
/* Array of fixed-size elements (native little-endian layout) or, for
 * LS_GGUF_STRING, of `const char *` NUL-terminated strings. */
int ls_gguf_writer_kv_array(ls_gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n,
                            const void *elems, ls_err *err);
/* Any value, pre-encoded (for nested arrays and the 64-bit types). */
int ls_gguf_writer_kv_raw(ls_gguf_writer *w, const char *key, uint32_t type, const void *encoded, size_t n,
                          ls_err *err);
/* Declares a tensor; ne[0] is the fastest dimension. */
int ls_gguf_writer_tensor(ls_gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne,
                          ls_err *err);
int ls_gguf_writer_tensor_data(ls_gguf_writer *w, const void *data, size_t n, ls_err *err);
int ls_gguf_writer_finish(ls_gguf_writer *w, ls_err *err);
void ls_gguf_writer_free(ls_gguf_writer *w);

/* ---- llama models ------------------------------------------------------- */

struct ls_model;
struct ls_config;
struct ls_vocab;

/* llama.cpp's general.file_type for a tensor type (LLAMA_FTYPE_*). */
uint32_t ls_gguf_file_type(uint32_t type);
#define LS_GGUF_FTYPE_Q4_K_M 15 /* LLAMA_FTYPE_MOSTLY_Q4_K_M: the mix of ls_synth_opts.q4_k_m */

/* Writes the standard llama.cpp metadata for a llama model: general.*
 * (general.file_type = file_type, e.g. ls_gguf_file_type(weight type)),
 * llama.* and (if vocab has tokens) tokenizer.ggml.* with U+2581 for spaces. */
int ls_gguf_write_llama_meta(ls_gguf_writer *w, const struct ls_config *c, const struct ls_vocab *v,
                             const char *name, uint32_t file_type, ls_err *err);

/* Converts a loaded model (e.g. a llama2.c checkpoint) to a GGUF file whose
 * 2-D weights have `type` (LS_F32 or LS_Q8_0; a matrix whose columns are not
 * a multiple of 32 stays F32). Norms stay F32. */
int ls_gguf_convert(const struct ls_model *m, const char *out_path, uint32_t type, ls_err *err);

/* A random-weight llama model of a given shape (runtime/formats/synth.c). */
typedef struct ls_synth_opts {
  int dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab_size, seq_len;
  uint32_t type;   /* a writable type (ls_dtype_info.writes) */
  int q4_k_m;      /* with type Q4_K: llama-quantize's Q4_K_M mix (Q6_K for output.weight and for
                      attn_v / ffn_down of the first and last eighth of the layers and every
                      third layer between; Q4_K for the rest, token_embd included) */
  uint64_t seed;
  int tied;        /* no output.weight: the classifier is token_embd */
  float stddev;    /* weight scale (<= 0: 0.02) */
  /* progress callback (may be NULL): bytes written so far of total */
  void (*progress)(void *ctx, size_t done, size_t total);
  void *progress_ctx;
} ls_synth_opts;

int ls_synth_write(const ls_synth_opts *o, const char *out_path, ls_err *err);

#endif
