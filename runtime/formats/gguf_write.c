/* GGUF writer: metadata and tensor infos are encoded in memory, then the
 * header is written and tensor data streamed (row by row if the caller
 * likes) into PATH.tmp.PID, which finish() fsyncs and renames into place.
 * Also the standard llama.cpp metadata for a llama model, and conversion of
 * a loaded model (a llama2.c checkpoint) to GGUF. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "ls_model.h"
#include "ls_quant.h"

/* ---- little-endian encoders -------------------------------------------- */

void ls_gguf_put_u8(ls_strbuf *b, uint8_t v) { ls_strbuf_put(b, &v, 1); }
void ls_gguf_put_u32(ls_strbuf *b, uint32_t v) { ls_strbuf_put(b, &v, 4); }
void ls_gguf_put_u64(ls_strbuf *b, uint64_t v) { ls_strbuf_put(b, &v, 8); }

void ls_gguf_put_str(ls_strbuf *b, const char *s, size_t len) {
  ls_gguf_put_u64(b, len);
  ls_strbuf_put(b, s, len);
}

/* ---- writer ------------------------------------------------------------- */

struct ls_gguf_writer {
  char path[1024], tmp[1100];
  FILE *f;
  ls_strbuf kv, info;
  uint64_t n_kv;
  int has_alignment;
  size_t *sizes; /* [n_tensors] data bytes */
  uint64_t n_tensors, cap_tensors;
  uint64_t next_offset; /* data-section offset of the next declared tensor */
  int data_started, done;
  uint64_t cur;       /* tensor receiving data */
  size_t cur_written; /* its bytes so far */
};

static const size_t align_w = LS_GGUF_DEFAULT_ALIGNMENT;

int ls_gguf_writer_open(ls_gguf_writer **out, const char *path, ls_err *err) {
  *out = NULL;
  ls_gguf_writer *w = calloc(1, sizeof *w);
  if (!w) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
  snprintf(w->path, sizeof w->path, "%s", path);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
  w->f = fopen(w->tmp, "wb");
  if (!w->f) {
    int e = errno;
    free(w);
    return ls_err_set(err, LS_EIO, "%s: cannot create: %s", path, strerror(e));
  }
  setvbuf(w->f, NULL, _IOFBF, 1 << 20);
  *out = w;
  return LS_OK;
}

void ls_gguf_writer_free(ls_gguf_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  if (!w->done) unlink(w->tmp);
  ls_strbuf_free(&w->kv);
  ls_strbuf_free(&w->info);
  free(w->sizes);
  free(w);
}

static int check_meta_phase(ls_gguf_writer *w, const char *what, ls_err *err) {
  if (w->data_started)
    return ls_err_set(err, LS_ESTATE, "%s: %s added after tensor data started", w->path, what);
  return LS_OK;
}

static int kv_begin(ls_gguf_writer *w, const char *key, uint32_t type, ls_err *err) {
  LS_TRY(check_meta_phase(w, key, err));
  if (!strcmp(key, "general.alignment")) {
    w->has_alignment = 1;
    if (type != LS_GGUF_UINT32)
      return ls_err_set(err, LS_EINVAL, "%s: general.alignment must be uint32", w->path);
  }
  ls_gguf_put_str(&w->kv, key, strlen(key));
  ls_gguf_put_u32(&w->kv, type);
  w->n_kv++;
  return LS_OK;
}

static int kv_end(ls_gguf_writer *w, ls_err *err) {
  if (w->kv.oom) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for metadata", w->path);
  return LS_OK;
}

int ls_gguf_writer_kv_raw(ls_gguf_writer *w, const char *key, uint32_t type, const void *encoded, size_t n,
                          ls_err *err) {
  LS_TRY(kv_begin(w, key, type, err));
  ls_strbuf_put(&w->kv, encoded, n);
  return kv_end(w, err);
}

int ls_gguf_writer_kv_u32(ls_gguf_writer *w, const char *key, uint32_t v, ls_err *err) {
  if (!strcmp(key, "general.alignment") && v != align_w)
    return ls_err_set(err, LS_EINVAL, "%s: the writer only writes alignment %zu", w->path, align_w);
  return ls_gguf_writer_kv_raw(w, key, LS_GGUF_UINT32, &v, 4, err);
}
int ls_gguf_writer_kv_i32(ls_gguf_writer *w, const char *key, int32_t v, ls_err *err) {
  return ls_gguf_writer_kv_raw(w, key, LS_GGUF_INT32, &v, 4, err);
}
int ls_gguf_writer_kv_f32(ls_gguf_writer *w, const char *key, float v, ls_err *err) {
  return ls_gguf_writer_kv_raw(w, key, LS_GGUF_FLOAT32, &v, 4, err);
}
int ls_gguf_writer_kv_bool(ls_gguf_writer *w, const char *key, int v, ls_err *err) {
  uint8_t b = v != 0;
  return ls_gguf_writer_kv_raw(w, key, LS_GGUF_BOOL, &b, 1, err);
}
int ls_gguf_writer_kv_str(ls_gguf_writer *w, const char *key, const char *s, ls_err *err) {
  LS_TRY(kv_begin(w, key, LS_GGUF_STRING, err));
  ls_gguf_put_str(&w->kv, s, strlen(s));
  return kv_end(w, err);
}

static const size_t fixed_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

int ls_gguf_writer_kv_array(ls_gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n,
                            const void *elems, ls_err *err) {
  if (elem_type >= LS_GGUF_NTYPES || elem_type == LS_GGUF_ARRAY)
    return ls_err_set(err, LS_EINVAL, "%s: key %s: use ls_gguf_writer_kv_raw for arrays of type %u", w->path, key,
                      elem_type);
  LS_TRY(kv_begin(w, key, LS_GGUF_ARRAY, err));
  ls_gguf_put_u32(&w->kv, elem_type);
  ls_gguf_put_u64(&w->kv, n);
  if (elem_type == LS_GGUF_STRING) {
    const char *const *s = elems;
    for (uint64_t i = 0; i < n; i++) ls_gguf_put_str(&w->kv, s[i], strlen(s[i]));
  } else {
    ls_strbuf_put(&w->kv, elems, (size_t)n * fixed_size[elem_type]);
  }
  return kv_end(w, err);
}

int ls_gguf_writer_tensor(ls_gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne,
                          ls_err *err) {
  LS_TRY(check_meta_phase(w, name, err));
  size_t len = strlen(name);
  if (len == 0 || len >= LS_GGUF_MAX_NAME)
    return ls_err_set(err, LS_EINVAL, "%s: tensor name '%s' must have 1..%d bytes", w->path, name, LS_GGUF_MAX_NAME - 1);
  if (n_dims < 1 || n_dims > LS_GGUF_MAX_DIMS)
    return ls_err_set(err, LS_EINVAL, "%s: tensor %s: %d dimensions", w->path, name, n_dims);
  const ls_dtype_info *dt = ls_dtype_get(type);
  if (!dt)
    return ls_err_set(err, LS_EINVAL, "%s: tensor %s: unknown type %u", w->path, name, type);
  int blck = dt->block_elems;
  size_t bbytes = dt->block_bytes;
  if (ne[0] <= 0 || ne[0] % blck)
    return ls_err_set(err, LS_EINVAL, "%s: tensor %s: %lld columns is not a multiple of the %s block", w->path, name,
                      (long long)ne[0], dt->name);
  size_t bytes = (size_t)(ne[0] / blck) * bbytes;
  for (int d = 1; d < n_dims; d++) {
    if (ne[d] <= 0) return ls_err_set(err, LS_EINVAL, "%s: tensor %s: dimension %d is %lld", w->path, name, d, (long long)ne[d]);
    bytes *= (size_t)ne[d];
  }
  if (w->n_tensors == w->cap_tensors) {
    uint64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
    size_t *s = realloc(w->sizes, (size_t)cap * sizeof *s);
    if (!s) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", w->path);
    w->sizes = s;
    w->cap_tensors = cap;
  }
  w->sizes[w->n_tensors++] = bytes;
  ls_gguf_put_str(&w->info, name, len);
  ls_gguf_put_u32(&w->info, (uint32_t)n_dims);
  for (int d = 0; d < n_dims; d++) ls_gguf_put_u64(&w->info, (uint64_t)ne[d]);
  ls_gguf_put_u32(&w->info, type);
  ls_gguf_put_u64(&w->info, w->next_offset);
  w->next_offset += (bytes + align_w - 1) / align_w * align_w;
  if (w->info.oom) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for tensor infos", w->path);
  return LS_OK;
}

static int put(ls_gguf_writer *w, const void *p, size_t n, ls_err *err) {
  if (n && fwrite(p, 1, n, w->f) != n)
    return ls_err_set(err, LS_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
  return LS_OK;
}

static int pad(ls_gguf_writer *w, ls_err *err) {
  static const uint8_t zeros[LS_GGUF_DEFAULT_ALIGNMENT];
  long pos = ftell(w->f);
  if (pos < 0) return ls_err_set(err, LS_EIO, "%s: ftell failed: %s", w->tmp, strerror(errno));
  size_t r = (size_t)pos % align_w;
  return r ? put(w, zeros, align_w - r, err) : LS_OK;
}

static int write_header(ls_gguf_writer *w, ls_err *err) {
  if (!w->has_alignment) LS_TRY(ls_gguf_writer_kv_u32(w, "general.alignment", (uint32_t)align_w, err));
  w->data_started = 1;
  uint32_t version = 3;
  LS_TRY(put(w, "GGUF", 4, err));
  LS_TRY(put(w, &version, 4, err));
  LS_TRY(put(w, &w->n_tensors, 8, err));
  LS_TRY(put(w, &w->n_kv, 8, err));
  LS_TRY(put(w, w->kv.buf, w->kv.len, err));
  LS_TRY(put(w, w->info.buf, w->info.len, err));
  return pad(w, err);
}

int ls_gguf_writer_tensor_data(ls_gguf_writer *w, const void *data, size_t n, ls_err *err) {
  if (!w->data_started) LS_TRY(write_header(w, err));
  if (w->cur >= w->n_tensors || n > w->sizes[w->cur] - w->cur_written)
    return ls_err_set(err, LS_ESTATE, "%s: more tensor data than the declared tensors hold", w->path);
  LS_TRY(put(w, data, n, err));
  w->cur_written += n;
  if (w->cur_written == w->sizes[w->cur]) {
    LS_TRY(pad(w, err));
    w->cur++;
    w->cur_written = 0;
  }
  return LS_OK;
}

int ls_gguf_writer_finish(ls_gguf_writer *w, ls_err *err) {
  if (!w->data_started) LS_TRY(write_header(w, err));
  if (w->cur != w->n_tensors)
    return ls_err_set(err, LS_ESTATE, "%s: tensor %llu of %llu has no data", w->path, (unsigned long long)w->cur,
                      (unsigned long long)w->n_tensors);
  if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
    return ls_err_set(err, LS_EIO, "%s: cannot flush: %s", w->tmp, strerror(errno));
  int rc = fclose(w->f);
  w->f = NULL;
  if (rc != 0) return ls_err_set(err, LS_EIO, "%s: cannot close: %s", w->tmp, strerror(errno));
  if (rename(w->tmp, w->path) != 0)
    return ls_err_set(err, LS_EIO, "%s: cannot rename into place: %s", w->path, strerror(errno));
  w->done = 1;
  return LS_OK;
}

/* ---- rows and llama metadata -------------------------------------------- */

uint32_t ls_gguf_file_type(uint32_t type) {
  switch (type) {
  case LS_F32: return 0;   /* LLAMA_FTYPE_ALL_F32 */
  case LS_F16: return 1;   /* MOSTLY_F16 */
  case LS_Q4_0: return 2;  /* MOSTLY_Q4_0 */
  case LS_Q8_0: return 7;  /* MOSTLY_Q8_0 */
  case LS_BF16: return 32; /* MOSTLY_BF16 */
  case LS_Q4_K: return 14; /* MOSTLY_Q4_K_S: every matrix Q4_K (F32 where the width does not fit) */
  case LS_Q6_K: return 18; /* MOSTLY_Q6_K */
  default: return 0;
  }
}

/* SentencePiece text: ' ' becomes U+2581; byte tokens <0xNN> stay as they are. */
static char *sp_text(const char *s) {
  size_t n = 0;
  for (const char *p = s; *p; p++) n += *p == ' ' ? 3 : 1;
  char *t = malloc(n + 1), *o = t;
  if (!t) return NULL;
  for (const char *p = s; *p; p++) {
    if (*p == ' ') {
      memcpy(o, "\xE2\x96\x81", 3);
      o += 3;
    } else {
      *o++ = *p;
    }
  }
  *o = '\0';
  return t;
}

static int is_byte_token(const char *s) {
  unsigned b;
  char tail;
  return strlen(s) == 6 && sscanf(s, "<0x%02X>%c", &b, &tail) == 1;
}

static int write_vocab(ls_gguf_writer *w, const ls_vocab *v, ls_err *err) {
  int n = v->n_tokens, rc = LS_OK;
  char **text = calloc((size_t)n, sizeof *text);
  int32_t *types = malloc((size_t)n * sizeof *types);
  if (!text || !types) rc = ls_err_set(err, LS_ENOMEM, "%s: out of memory", w->path);
  for (int i = 0; i < n && !rc; i++) {
    if (!(text[i] = sp_text(v->tokens[i]))) rc = ls_err_set(err, LS_ENOMEM, "%s: out of memory", w->path);
    int32_t t = v->types ? v->types[i] : LS_TOK_NORMAL;
    if (t < LS_TOK_NORMAL || t > LS_TOK_BYTE) t = LS_TOK_NORMAL;
    if (is_byte_token(v->tokens[i])) t = LS_TOK_BYTE;
    if (i == v->unk_id) t = LS_TOK_UNKNOWN;
    if (i == v->bos_id || i == v->eos_id) t = LS_TOK_CONTROL;
    types[i] = t;
  }
  if (!rc) rc = ls_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama", err);
  if (!rc) rc = ls_gguf_writer_kv_array(w, "tokenizer.ggml.tokens", LS_GGUF_STRING, (uint64_t)n, text, err);
  if (!rc) rc = ls_gguf_writer_kv_array(w, "tokenizer.ggml.scores", LS_GGUF_FLOAT32, (uint64_t)n, v->scores, err);
  if (!rc) rc = ls_gguf_writer_kv_array(w, "tokenizer.ggml.token_type", LS_GGUF_INT32, (uint64_t)n, types, err);
  if (!rc && v->bos_id >= 0) rc = ls_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id, err);
  if (!rc && v->eos_id >= 0) rc = ls_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id, err);
  if (!rc && v->unk_id >= 0)
    rc = ls_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id, err);
  if (!rc) rc = ls_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, err);
  if (!rc) rc = ls_gguf_writer_kv_bool(w, "tokenizer.ggml.add_eos_token", 0, err);
  if (!rc) rc = ls_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix, err);
  if (text)
    for (int i = 0; i < n; i++) free(text[i]);
  free(text);
  free(types);
  return rc;
}

int ls_gguf_write_llama_meta(ls_gguf_writer *w, const ls_config *c, const ls_vocab *v, const char *name,
                             uint32_t file_type, ls_err *err) {
  LS_TRY(ls_gguf_writer_kv_str(w, "general.architecture", "llama", err));
  LS_TRY(ls_gguf_writer_kv_str(w, "general.name", name, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "general.file_type", file_type, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "general.alignment", (uint32_t)align_w, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.context_length", (uint32_t)c->seq_len, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.embedding_length", (uint32_t)c->dim, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.block_count", (uint32_t)c->n_layers, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads, err));
  LS_TRY(ls_gguf_writer_kv_u32(w, "llama.rope.dimension_count", (uint32_t)c->rope_dim, err));
  LS_TRY(ls_gguf_writer_kv_f32(w, "llama.rope.freq_base", c->rope_theta, err));
  LS_TRY(ls_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps, err));
  if (v && v->n_tokens > 0) LS_TRY(write_vocab(w, v, err));
  return LS_OK;
}

/* ---- conversion --------------------------------------------------------- */

/* The type a matrix of `cols` columns gets: block types need whole blocks. */
static uint32_t mat_type(uint32_t want, int64_t cols) { return ls_dtype_row_bytes(want, cols) ? want : LS_F32; }

typedef struct {
  const char *name;
  const ls_mat *mat;  /* or */
  const float *vec;
} conv_tensor;

static int declare(ls_gguf_writer *w, const conv_tensor *t, uint32_t type, int64_t dim, ls_err *err) {
  if (t->vec) return ls_gguf_writer_tensor(w, t->name, LS_F32, 1, &dim, err);
  int64_t ne[2] = {t->mat->cols, t->mat->rows};
  return ls_gguf_writer_tensor(w, t->name, mat_type(type, t->mat->cols), 2, ne, err);
}

/* Re-encodes a matrix row by row (F32 to F32 copies the bytes unchanged). */
static int write_mat(ls_gguf_writer *w, const ls_mat *m, uint32_t type, float *row, void *enc, ls_err *err) {
  type = mat_type(type, m->cols);
  size_t out_bytes = ls_dtype_row_bytes(type, m->cols);
  for (int64_t r = 0; r < m->rows; r++) {
    const uint8_t *src = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
    if (m->type == type) {
      LS_TRY(ls_gguf_writer_tensor_data(w, src, m->row_bytes, err));
      continue;
    }
    ls_dequantize_row(m->type, src, row, m->cols);
    ls_quantize_row(type, row, enc, m->cols);
    LS_TRY(ls_gguf_writer_tensor_data(w, enc, out_bytes, err));
  }
  return LS_OK;
}

static int convert_into(ls_gguf_writer *w, const ls_model *m, uint32_t type, conv_tensor *ts, int n, ls_err *err) {
  const ls_config *c = &m->cfg;
  char name[256];
  snprintf(name, sizeof name, "%s", m->name);
  char *dot = strrchr(name, '.');
  if (dot && dot != name) *dot = '\0';
  LS_TRY(ls_gguf_write_llama_meta(w, c, m->vocab.n_tokens ? &m->vocab : NULL, name, ls_gguf_file_type(type), err));
  for (int i = 0; i < n; i++) LS_TRY(declare(w, &ts[i], type, c->dim, err));
  int64_t maxc = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
  float *row = malloc((size_t)maxc * sizeof *row);
  void *enc = malloc((size_t)maxc * sizeof(float));
  int rc = (!row || !enc) ? ls_err_set(err, LS_ENOMEM, "out of memory") : LS_OK;
  for (int i = 0; i < n && !rc; i++) {
    if (ts[i].vec) rc = ls_gguf_writer_tensor_data(w, ts[i].vec, (size_t)c->dim * sizeof(float), err);
    else rc = write_mat(w, ts[i].mat, type, row, enc, err);
  }
  free(row);
  free(enc);
  LS_TRY(rc);
  return ls_gguf_writer_finish(w, err);
}

int ls_gguf_convert(const ls_model *m, const char *out_path, uint32_t type, ls_err *err) {
  const ls_dtype_info *dt = ls_dtype_get(type);
  if (!dt || !dt->writes) return ls_err_set(err, LS_EINVAL, "%s: cannot write tensor type %u", out_path, type);
  if (m->cfg.arch != LS_ARCH_LLAMA || m->rope_freqs || m->vocab.kind != LS_VOCAB_SPM)
    return ls_err_set(err, LS_EUNSUPPORTED,
                      "%s: convert writes llama models with a SentencePiece vocabulary and plain rope only (%s has %s)",
                      out_path, m->path,
                      m->cfg.arch != LS_ARCH_LLAMA ? "another architecture"
                      : m->rope_freqs              ? "rope scaling"
                                                   : "a BPE vocabulary");
  const ls_config *c = &m->cfg;
  int n = 3 + 9 * c->n_layers, k = 0;
  conv_tensor *ts = calloc((size_t)n, sizeof *ts);
  char (*names)[64] = calloc((size_t)n, 64);
  if (!ts || !names) {
    free(ts);
    free(names);
    return ls_err_set(err, LS_ENOMEM, "%s: out of memory", out_path);
  }
#define MAT(nm, p) (ts[k].name = nm, ts[k++].mat = (p))
#define VEC(nm, p) (ts[k].name = nm, ts[k++].vec = (p))
  MAT("token_embd.weight", &m->tok_embd);
  VEC("output_norm.weight", m->out_norm);
  if (!m->tied_output) MAT("output.weight", &m->output);
  for (int l = 0; l < c->n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    static const char *const part[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                        "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
    for (int j = 0; j < 9; j++) snprintf(names[k + j], 64, "blk.%d.%s.weight", l, part[j]);
    VEC(names[k], L->attn_norm);
    MAT(names[k], &L->wq);
    MAT(names[k], &L->wk);
    MAT(names[k], &L->wv);
    MAT(names[k], &L->wo);
    VEC(names[k], L->ffn_norm);
    MAT(names[k], &L->w_gate);
    MAT(names[k], &L->w_up);
    MAT(names[k], &L->w_down);
  }
#undef MAT
#undef VEC
  ls_gguf_writer *w;
  int rc = ls_gguf_writer_open(&w, out_path, err);
  if (!rc) rc = convert_into(w, m, type, ts, k, err);
  ls_gguf_writer_free(w);
  free(ts);
  free(names);
  return rc;
}
