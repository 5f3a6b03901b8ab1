/* llama2.c checkpoints: the legacy 7-int header and the "ak42" version-1 fp32
 * export, plus llama2.c's tokenizer.bin. Weights stay in the mapping. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_model.h"

#define AK42_MAGIC 0x616b3432u
#define AK42_HEADER_BYTES 256

/* A cursor over the mapped file that refuses to run past its end. */
typedef struct {
  const char *base;
  size_t size, off;
  const char *path;
} cursor;

static int take_f32(cursor *c, int64_t n, const float **out, const char *what, ls_err *err) {
  size_t bytes = (size_t)n * sizeof(float);
  if (n < 0 || c->off > c->size || bytes > c->size - c->off)
    return ls_err_set(err, LS_EFORMAT, "%s: truncated: %s needs %zu bytes at offset %zu, file has %zu", c->path,
                      what, bytes, c->off, c->size);
  *out = (const float *)(c->base + c->off);
  c->off += bytes;
  return LS_OK;
}

static void set_mat(ls_mat *w, const float *data, int64_t rows, int64_t cols) {
  w->type = LS_F32;
  w->rows = rows;
  w->cols = cols;
  w->row_bytes = (size_t)cols * sizeof(float);
  w->data = data;
}

/* Per-layer tensors are stored contiguously across layers: [n_layers][rows][cols]. */
static int take_layers(cursor *c, ls_model *m, size_t field, int64_t rows, int64_t cols, const char *what,
                       ls_err *err) {
  const float *p;
  LS_TRY(take_f32(c, rows * cols * m->cfg.n_layers, &p, what, err));
  for (int l = 0; l < m->cfg.n_layers; l++) {
    ls_mat *w = (ls_mat *)((char *)&m->layers[l] + field);
    set_mat(w, p + (int64_t)l * rows * cols, rows, cols);
  }
  return LS_OK;
}

static int take_norms(cursor *c, ls_model *m, size_t field, const char *what, ls_err *err) {
  const float *p;
  LS_TRY(take_f32(c, (int64_t)m->cfg.dim * m->cfg.n_layers, &p, what, err));
  for (int l = 0; l < m->cfg.n_layers; l++)
    *(const float **)((char *)&m->layers[l] + field) = p + (int64_t)l * m->cfg.dim;
  return LS_OK;
}

static int read_header(ls_model *m, cursor *c, int *shared, int *ak42, ls_err *err) {
  int32_t h[9];
  if (c->size < 7 * sizeof(int32_t))
    return ls_err_set(err, LS_EFORMAT, "%s: truncated: %zu bytes is shorter than a llama2.c header", c->path,
                      c->size);
  memcpy(h, c->base, 7 * sizeof(int32_t));
  *ak42 = (uint32_t)h[0] == AK42_MAGIC;
  if (*ak42) {
    if (c->size < AK42_HEADER_BYTES)
      return ls_err_set(err, LS_EFORMAT, "%s: truncated ak42 header", c->path);
    memcpy(h, c->base, 9 * sizeof(int32_t));
    if (h[1] != 1)
      return ls_err_set(err, LS_EUNSUPPORTED, "%s: ak42 checkpoint version %d (only version 1, fp32, is supported)",
                        c->path, h[1]);
    memmove(h, h + 2, 7 * sizeof(int32_t));
    *shared = (unsigned char)c->base[9 * sizeof(int32_t)] != 0;
    c->off = AK42_HEADER_BYTES;
  } else {
    /* legacy: a negative vocab size means a separate classifier */
    *shared = h[5] > 0;
    if (h[5] == INT32_MIN) /* has no positive counterpart */
      return ls_err_set(err, LS_EFORMAT, "%s: absurd vocabulary size %d", c->path, h[5]);
    if (h[5] < 0) h[5] = -h[5];
    c->off = 7 * sizeof(int32_t);
  }
  ls_config *cfg = &m->cfg;
  cfg->dim = h[0];
  cfg->hidden_dim = h[1];
  cfg->n_layers = h[2];
  cfg->n_heads = h[3];
  cfg->n_kv_heads = h[4];
  cfg->vocab_size = h[5];
  cfg->seq_len = h[6];
  cfg->head_dim = cfg->n_heads > 0 ? cfg->dim / cfg->n_heads : 0;
  cfg->rope_dim = cfg->head_dim;
  cfg->rope_theta = 10000.0f;
  cfg->norm_eps = 1e-5f;
  if (cfg->dim <= 0 && !*ak42)
    return ls_err_set(err, LS_EFORMAT, "%s: not a GGUF file and not a llama2.c checkpoint (bad header)", c->path);
  return ls_config_validate(cfg, c->path, err);
}

static int map_weights(ls_model *m, cursor *c, int shared, int ak42, ls_err *err) {
  const ls_config *p = &m->cfg;
  int64_t dim = p->dim, hd = p->head_dim, q_dim = (int64_t)p->n_heads * hd, kv_dim = (int64_t)p->n_kv_heads * hd;
  int64_t hidden = p->hidden_dim, vocab = p->vocab_size;
  const float *emb, *fin;
#define L(field) offsetof(ls_layer, field)
  if (ak42) {
    LS_TRY(take_norms(c, m, L(attn_norm), "attention norms", err));
    LS_TRY(take_norms(c, m, L(ffn_norm), "FFN norms", err));
    LS_TRY(take_f32(c, dim, &fin, "final norm", err));
    LS_TRY(take_f32(c, vocab * dim, &emb, "token embedding", err));
  } else {
    LS_TRY(take_f32(c, vocab * dim, &emb, "token embedding", err));
    LS_TRY(take_norms(c, m, L(attn_norm), "attention norms", err));
  }
  LS_TRY(take_layers(c, m, L(wq), q_dim, dim, "wq", err));
  LS_TRY(take_layers(c, m, L(wk), kv_dim, dim, "wk", err));
  LS_TRY(take_layers(c, m, L(wv), kv_dim, dim, "wv", err));
  LS_TRY(take_layers(c, m, L(wo), dim, q_dim, "wo", err));
  if (!ak42) LS_TRY(take_norms(c, m, L(ffn_norm), "FFN norms", err));
  LS_TRY(take_layers(c, m, L(w_gate), hidden, dim, "w1 (FFN gate)", err));
  LS_TRY(take_layers(c, m, L(w_down), dim, hidden, "w2 (FFN down)", err));
  LS_TRY(take_layers(c, m, L(w_up), hidden, dim, "w3 (FFN up)", err));
#undef L
  if (!ak42) {
    LS_TRY(take_f32(c, dim, &fin, "final norm", err));
    const float *freq;
    LS_TRY(take_f32(c, (int64_t)p->seq_len * hd / 2, &freq, "freq_cis_real", err));
    LS_TRY(take_f32(c, (int64_t)p->seq_len * hd / 2, &freq, "freq_cis_imag", err));
  }
  set_mat(&m->tok_embd, emb, vocab, dim);
  m->out_norm = fin;
  m->tied_output = shared;
  if (shared) {
    m->output = m->tok_embd;
  } else {
    const float *cls;
    LS_TRY(take_f32(c, vocab * dim, &cls, "classifier", err));
    set_mat(&m->output, cls, vocab, dim);
  }
  m->weight_bytes = c->off - (ak42 ? AK42_HEADER_BYTES : 7 * sizeof(int32_t));
  return LS_OK;
}

int ls_model_load_llama2c(ls_model *m, const char *path, ls_err *err) {
  LS_TRY(ls_model_map_file(m, path, err));
  cursor c = {.base = m->map, .size = m->map_size, .off = 0, .path = path};
  int shared = 0, ak42 = 0;
  LS_TRY(read_header(m, &c, &shared, &ak42, err));
  m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
  if (!m->layers) return ls_err_set(err, LS_ENOMEM, "%s: out of memory for %d layers", path, m->cfg.n_layers);
  LS_TRY(map_weights(m, &c, shared, ak42, err));
  m->format = LS_FMT_LLAMA2C;
  return LS_OK;
}

/* ---- tokenizer.bin ------------------------------------------------------ */

static int read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what, ls_err *err) {
  if (fread(buf, 1, n, f) != n) return ls_err_set(err, LS_EFORMAT, "%s: truncated while reading %s", path, what);
  return LS_OK;
}

static int read_tokens(ls_vocab *v, FILE *f, const char *path, ls_err *err) {
  int32_t max_len;
  LS_TRY(read_exact(f, &max_len, 4, path, "max token length", err));
  if (max_len <= 0 || max_len > 4096)
    return ls_err_set(err, LS_EFORMAT, "%s: absurd max token length %d", path, max_len);
  v->max_token_len = max_len;
  for (int i = 0; i < v->n_tokens; i++) {
    int32_t len;
    char what[64];
    snprintf(what, sizeof what, "token %d", i);
    LS_TRY(read_exact(f, &v->scores[i], 4, path, what, err));
    LS_TRY(read_exact(f, &len, 4, path, what, err));
    if (len < 0 || len > max_len)
      return ls_err_set(err, LS_EFORMAT, "%s: token %d has length %d (max %d)", path, i, len, max_len);
    v->tokens[i] = malloc((size_t)len + 1);
    if (!v->tokens[i]) return ls_err_set(err, LS_ENOMEM, "%s: out of memory", path);
    LS_TRY(read_exact(f, v->tokens[i], (size_t)len, path, what, err));
    v->tokens[i][len] = '\0';
    unsigned byte;
    char tail;
    v->types[i] = (len == 6 && sscanf(v->tokens[i], "<0x%02X>%c", &byte, &tail) == 1) ? LS_TOK_BYTE : LS_TOK_NORMAL;
  }
  return LS_OK;
}

int ls_vocab_load_tokenizer_bin(ls_vocab *v, const char *path, int vocab_size, ls_err *err) {
  memset(v, 0, sizeof *v);
  if (vocab_size <= 0) return ls_err_set(err, LS_EINVAL, "%s: the model has no vocabulary size", path);
  /* ids 0, 1, 2 are <unk>, BOS and EOS by convention: a smaller vocabulary would
   * make the tokenizer emit ids the model does not have */
  if (vocab_size < 3)
    return ls_err_set(err, LS_EFORMAT, "%s: a vocabulary of %d tokens is too small (llama2.c's tokenizer.bin starts "
                      "with <unk>, <s>, </s>)", path, vocab_size);
  FILE *f = fopen(path, "rb");
  if (!f) return ls_err_set(err, LS_EIO, "%s: cannot open tokenizer: %s", path, strerror(errno));
  v->n_tokens = vocab_size;
  v->tokens = calloc((size_t)vocab_size, sizeof *v->tokens);
  v->scores = calloc((size_t)vocab_size, sizeof *v->scores);
  v->types = calloc((size_t)vocab_size, sizeof *v->types);
  int rc = (!v->tokens || !v->scores || !v->types) ? ls_err_set(err, LS_ENOMEM, "%s: out of memory", path)
                                                   : read_tokens(v, f, path, err);
  fclose(f);
  if (rc) {
    ls_vocab_free(v);
    return rc;
  }
  /* llama2.c's conventions: 0 <unk>, 1 BOS, 2 EOS, SentencePiece space prefix */
  v->unk_id = 0;
  v->eot_id = -1;
  v->bos_id = 1;
  v->eos_id = 2;
  v->types[0] = LS_TOK_UNKNOWN;
  v->types[1] = LS_TOK_CONTROL;
  v->types[2] = LS_TOK_CONTROL;
  v->add_bos = 1;
  v->add_space_prefix = 1;
  return LS_OK;
}
