/* Format dispatch, memory mapping, ownership and shape validation shared by
 * the GGUF and llama2.c loaders. */
#include "ls_model.h"
#include "kernels.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ls_map_file(const char *path, void **data, size_t *size, ls_err *err) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return ls_err_set(err, LS_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return ls_err_set(err, LS_EIO, "%s: not a regular file", path);
  }
  if (st.st_size == 0) {
    close(fd);
    return ls_err_set(err, LS_EFORMAT, "%s: file is empty", path);
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return ls_err_set(err, LS_EIO, "%s: cannot mmap: %s", path, strerror(errno));
  *data = p;
  *size = (size_t)st.st_size;
  return LS_OK;
}

int ls_model_map_file(ls_model *m, const char *path, ls_err *err) {
  void *p;
  size_t size;
  LS_TRY(ls_map_file(path, &p, &size, err));
  m->map = p;
  m->map_size = size;
  m->file_size = size;
  snprintf(m->path, sizeof m->path, "%s", path);
  const char *base = strrchr(path, '/');
  snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
  return LS_OK;
}

int ls_model_own(ls_model *m, void *buf, ls_err *err) {
  if (m->n_owned == m->cap_owned) {
    int cap = m->cap_owned ? 2 * m->cap_owned : 16;
    void **n = realloc(m->owned, (size_t)cap * sizeof *n);
    if (!n) {
      free(buf);
      return ls_err_set(err, LS_ENOMEM, "out of memory tracking model buffers");
    }
    m->owned = n;
    m->cap_owned = cap;
  }
  m->owned[m->n_owned++] = buf;
  return LS_OK;
}

void ls_vocab_free(ls_vocab *v) {
  if (v->tokens)
    for (int i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
  free(v->tokens);
  free(v->scores);
  free(v->types);
  free(v->merge_text);
  free(v->merge_off);
  memset(v, 0, sizeof *v);
}

void ls_model_free(ls_model *m) {
  if (!m) return;
  if (m->map) munmap(m->map, m->map_size);
  for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
  free(m->owned);
  free(m->layers);
  ls_vocab_free(&m->vocab);
  memset(m, 0, sizeof *m);
}

int ls_config_validate(const ls_config *c, const char *path, ls_err *err) {
  const long lim_dim = 1 << 16, lim_layers = 1024, lim_vocab = 1 << 22, lim_seq = 1 << 22;
  if (c->dim <= 0 || c->dim > lim_dim)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd embedding length %d", path, c->dim);
  if (c->hidden_dim <= 0 || c->hidden_dim > 8 * lim_dim)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd feed-forward length %d", path, c->hidden_dim);
  if (c->n_layers <= 0 || c->n_layers > lim_layers)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd layer count %d", path, c->n_layers);
  if (c->n_heads <= 0 || c->n_heads > c->dim || c->dim % c->n_heads)
    return ls_err_set(err, LS_EFORMAT, "%s: head count %d does not divide embedding length %d", path,
                      c->n_heads, c->dim);
  if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
    return ls_err_set(err, LS_EFORMAT, "%s: KV head count %d does not divide head count %d", path,
                      c->n_kv_heads, c->n_heads);
  if (c->head_dim != c->dim / c->n_heads || c->head_dim % 2)
    return ls_err_set(err, LS_EFORMAT, "%s: head dimension %d must be even and dim/heads", path, c->head_dim);
  if (c->rope_dim <= 0 || c->rope_dim > c->head_dim || c->rope_dim % 2)
    return ls_err_set(err, LS_EFORMAT, "%s: bad rope dimension count %d", path, c->rope_dim);
  if (c->vocab_size <= 0 || c->vocab_size > lim_vocab)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd vocabulary size %d", path, c->vocab_size);
  if (c->seq_len <= 0 || c->seq_len > lim_seq)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd context length %d", path, c->seq_len);
  if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
    return ls_err_set(err, LS_EFORMAT, "%s: bad RMS norm epsilon %g", path, (double)c->norm_eps);
  if (!(c->rope_theta > 0.0f))
    return ls_err_set(err, LS_EFORMAT, "%s: bad rope frequency base %g", path, (double)c->rope_theta);
  return LS_OK;
}

static int is_gguf(const char *path, int *yes, ls_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return ls_err_set(err, LS_EIO, "%s: cannot open: %s", path, strerror(errno));
  char magic[4] = {0};
  size_t n = fread(magic, 1, 4, f);
  fclose(f);
  *yes = n == 4 && memcmp(magic, "GGUF", 4) == 0;
  return LS_OK;
}

/* MemAvailable in bytes, 0 if unknown. */
static size_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  fclose(f);
  return (size_t)kb * 1024;
}

static ls_weights_place resolve_place(ls_weights_place place, size_t bytes) {
  if (place != LS_WEIGHTS_AUTO) return place;
  const char *env = getenv("LS_WEIGHTS");
  if (env && !strcmp(env, "map")) return LS_WEIGHTS_MAP;
  if (env && !strcmp(env, "copy")) return LS_WEIGHTS_COPY;
  size_t avail = mem_available();
  return avail >= bytes + ((size_t)1 << 30) ? LS_WEIGHTS_COPY : LS_WEIGHTS_MAP;
}

/* The same offset in the copy for a pointer into the mapping. */
/* (Every pointer field of ls_model / ls_layer that can point into the
 * mapping must be moved in ls_model_copy_weights.) */
static const void *moved(const ls_model *m, const uint8_t *copy, const void *p) {
  const uint8_t *b = m->map, *q = p;
  return q >= b && q < b + m->map_size ? copy + (q - b) : p;
}

/* The copied Q8_0 / Q4_0 (avx2: and Q4_K) matrices in the layout of the
 * kernel level new contexts take (ls_kernels_get: the CPU's best, or
 * LS_KERNELS), if it has one (amx and avx2: X16, ls_model.h; a level's
 * `pack` leaves what it reads as rows); contexts at other levels read them
 * row by row (ls_matmul_by_rows). The token embedding is looked up by row,
 * so neither it nor an output matrix sharing its bytes is packed. */
static int pack_one(const ls_model *m, const ls_kernels *k, ls_mat *w, ls_err *err) {
  if (ls_x16_packable(w) && k->pack(w, (void *)w->data))
    return ls_err_set(err, LS_ENOMEM, "%s: out of memory packing weights for the %s kernels", m->path, k->name);
  return LS_OK;
}

static int pack_weights(ls_model *m, ls_err *err) {
  const ls_kernels *k = ls_kernels_get();
  if (!k->pack) return LS_OK;
  for (int l = 0; l < m->cfg.n_layers; l++) {
    ls_layer *L = &m->layers[l];
    ls_mat *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (int i = 0; i < 7; i++) LS_TRY(pack_one(m, k, ws[i], err));
  }
  if (m->output.data != m->tok_embd.data) LS_TRY(pack_one(m, k, &m->output, err));
  return LS_OK;
}

int ls_model_copy_weights(ls_model *m, ls_err *err) {
  if (!m->map || m->weights_copied) return LS_OK;
  const size_t huge = (size_t)2 << 20, piece = (size_t)32 << 20;
  size_t size = (m->map_size + huge - 1) / huge * huge;
  uint8_t *copy = aligned_alloc(huge, size);
  if (!copy) return ls_err_set(err, LS_ENOMEM, "%s: out of memory copying %zu bytes of weights", m->path, size);
  madvise(copy, size, MADV_HUGEPAGE); /* advice only: without THP the copy still beats the file mapping */
  for (size_t off = 0; off < m->map_size; off += piece) {
    size_t len = m->map_size - off < piece ? m->map_size - off : piece;
    memcpy(copy + off, (const uint8_t *)m->map + off, len);
    madvise((uint8_t *)m->map + off, len, MADV_DONTNEED); /* the page cache keeps the file */
  }
  LS_TRY(ls_model_own(m, copy, err));
  ls_mat *mats[] = {&m->tok_embd, &m->output};
  for (int i = 0; i < 2; i++) mats[i]->data = moved(m, copy, mats[i]->data);
  m->out_norm = moved(m, copy, m->out_norm);
  m->rope_freqs = moved(m, copy, m->rope_freqs);
  for (int l = 0; l < m->cfg.n_layers; l++) {
    ls_layer *L = &m->layers[l];
    ls_mat *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (int i = 0; i < 7; i++) ws[i]->data = moved(m, copy, ws[i]->data);
    const float **fs[] = {&L->attn_norm, &L->ffn_norm, &L->bq, &L->bk, &L->bv};
    for (int i = 0; i < 5; i++) *fs[i] = moved(m, copy, *fs[i]);
  }
  m->weights_copied = 1;
  return pack_weights(m, err);
}

int ls_model_load(ls_model *m, const char *path, const char *tokenizer_path, ls_err *err) {
  return ls_model_load_placed(m, path, tokenizer_path, LS_WEIGHTS_AUTO, err);
}

/* The steps of a load; on an error the caller frees what was built. */
static int load_parts(ls_model *m, const char *path, const char *tokenizer_path, ls_weights_place place,
                      ls_err *err) {
  int gguf = 0;
  LS_TRY(is_gguf(path, &gguf, err));
  LS_TRY(gguf ? ls_model_load_gguf(m, path, err) : ls_model_load_llama2c(m, path, err));
  if (tokenizer_path) {
    ls_vocab_free(&m->vocab);
    LS_TRY(ls_vocab_load_tokenizer_bin(&m->vocab, tokenizer_path, m->cfg.vocab_size, err));
  }
  if (m->map && resolve_place(place, m->map_size) == LS_WEIGHTS_COPY) LS_TRY(ls_model_copy_weights(m, err));
  return LS_OK;
}

int ls_model_load_placed(ls_model *m, const char *path, const char *tokenizer_path, ls_weights_place place,
                         ls_err *err) {
  memset(m, 0, sizeof *m);
  int rc = load_parts(m, path, tokenizer_path, place, err);
  if (rc == LS_OK) return LS_OK;
  ls_model_free(m);
  /* the readers name their file; an error that names neither (an allocation) gets the model's */
  if (err && !strstr(err->msg, path) && !(tokenizer_path && strstr(err->msg, tokenizer_path)))
    ls_err_prefix(err, "%s", path);
  ls_err_trace(err, __FILE__, __LINE__, __func__);
  return rc;
}
