/* Random-weight llama models of a given shape, written as GGUF, so that
 * latency work can use real shapes (e.g. TinyLlama-1.1B) without the real
 * weights. Weights are drawn row by row and streamed to the writer: memory
 * stays at one row whatever the model size. Each tensor has its own random
 * stream (seed, tensor index), so the values before encoding do not depend on
 * the tensor type. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "ls_model.h"
#include "ls_quant.h"

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* xoshiro256+ : fast, good enough for weights. */
typedef struct {
  uint64_t s[4];
} rng;

static void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s, res = s[0] + s[3], t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return res;
}

/* Approximately N(0, std^2): the sum of four 16-bit uniforms (Irwin-Hall),
 * centred and scaled; bounded by +-2*sqrt(3)*std, so activations stay finite. */
static void fill_row(rng *r, float *x, int64_t n, float std) {
  const float scale = std * 1.7320508f / 65536.0f; /* sqrt(3) / 2^16 */
  for (int64_t i = 0; i < n; i++) {
    uint64_t v = rng_next(r);
    uint32_t sum = (uint32_t)(v & 0xffff) + (uint32_t)((v >> 16) & 0xffff) + (uint32_t)((v >> 32) & 0xffff) +
                   (uint32_t)(v >> 48);
    x[i] = ((float)sum - 2.0f * 65535.0f) * scale;
  }
}

/* The synthetic vocabulary: <unk>, <s>, </s>, the 256 byte tokens (if the
 * vocabulary has room), then filler pieces over a small alphabet in order of
 * length, so every piece's prefix is also a piece (BPE can merge up to it). */
static int synth_vocab(ls_vocab *v, int n, ls_err *err) {
  static const char alpha[] = " etaoinshrdlucmfwypvbgkjqxz";
  const int na = (int)sizeof alpha - 1;
  memset(v, 0, sizeof *v);
  v->n_tokens = n;
  v->tokens = calloc((size_t)n, sizeof *v->tokens);
  v->scores = calloc((size_t)n, sizeof *v->scores);
  v->types = calloc((size_t)n, sizeof *v->types);
  if (!v->tokens || !v->scores || !v->types) return ls_err_set(err, LS_ENOMEM, "out of memory for the vocabulary");
  int i = 0;
  static const char *const special[3] = {"<unk>", "<s>", "</s>"};
  static const int special_type[3] = {LS_TOK_UNKNOWN, LS_TOK_CONTROL, LS_TOK_CONTROL};
  for (; i < 3 && i < n; i++) {
    v->tokens[i] = strdup(special[i]);
    v->types[i] = special_type[i];
  }
  if (n >= 3 + 256 + 1)
    for (int b = 0; b < 256; b++, i++) {
      char t[8];
      snprintf(t, sizeof t, "<0x%02X>", b);
      v->tokens[i] = strdup(t);
      v->types[i] = LS_TOK_BYTE;
    }
  int first_filler = i;
  for (int64_t k = 0; i < n; i++, k++) {
    /* k-th string over the alphabet in length-then-lexicographic order */
    char t[16];
    int len = 1;
    int64_t idx = k, count = na;
    while (idx >= count) {
      idx -= count;
      count *= na;
      len++;
    }
    for (int j = len - 1; j >= 0; j--) {
      t[j] = alpha[idx % na];
      idx /= na;
    }
    t[len] = '\0';
    v->tokens[i] = strdup(t);
    v->types[i] = LS_TOK_NORMAL;
    v->scores[i] = -(float)(i - first_filler);
  }
  for (i = 0; i < n; i++) {
    if (!v->tokens[i]) return ls_err_set(err, LS_ENOMEM, "out of memory for the vocabulary");
    int l = (int)strlen(v->tokens[i]);
    if (l > v->max_token_len) v->max_token_len = l;
  }
  v->unk_id = 0;
  v->eot_id = -1;
  v->bos_id = n > 1 ? 1 : -1;
  v->eos_id = n > 2 ? 2 : -1;
  v->add_bos = 1;
  v->add_space_prefix = 1;
  return LS_OK;
}

typedef struct {
  char name[64];
  int64_t rows, cols; /* rows == 0: a norm vector of cols ones */
  uint32_t type;
} synth_tensor;

/* llama-quantize's Q4_K_M rule for a layer's attn_v and ffn_down ("use more
 * bits"): the first and last eighth of the layers and every third between. */
static int q4_k_m_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

/* A tensor's type: F32 for norms and for a width the type's block does not
 * divide; the Q4_K_M mix's Q6_K where it applies; else o->type. */
static uint32_t tensor_type(const ls_synth_opts *o, const synth_tensor *t, int n_layers) {
  if (!t->rows) return LS_F32;
  uint32_t want = o->type;
  int layer;
  char kind[32];
  if (o->q4_k_m && !strcmp(t->name, "output.weight")) want = LS_Q6_K;
  if (o->q4_k_m && sscanf(t->name, "blk.%d.%31[a-z_]", &layer, kind) == 2 &&
      (!strcmp(kind, "attn_v") || !strcmp(kind, "ffn_down")) && q4_k_m_more_bits(layer, n_layers))
    want = LS_Q6_K;
  return ls_dtype_row_bytes(want, t->cols) ? want : LS_F32;
}

static int synth_tensors(const ls_synth_opts *o, const ls_config *c, synth_tensor **out, int *n_out, ls_err *err) {
  int n = 3 + 9 * c->n_layers, k = 0;
  synth_tensor *t = calloc((size_t)n, sizeof *t);
  if (!t) return ls_err_set(err, LS_ENOMEM, "out of memory");
  int64_t dim = c->dim, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
  int64_t hid = c->hidden_dim, voc = c->vocab_size;
#define T(r, cl, ...) (snprintf(t[k].name, sizeof t[k].name, __VA_ARGS__), t[k].rows = (r), t[k++].cols = (cl))
  T(voc, dim, "token_embd.weight");
  T(0, dim, "output_norm.weight");
  if (!o->tied) T(voc, dim, "output.weight");
  for (int l = 0; l < c->n_layers; l++) {
    T(0, dim, "blk.%d.attn_norm.weight", l);
    T(q, dim, "blk.%d.attn_q.weight", l);
    T(kv, dim, "blk.%d.attn_k.weight", l);
    T(kv, dim, "blk.%d.attn_v.weight", l);
    T(dim, q, "blk.%d.attn_output.weight", l);
    T(0, dim, "blk.%d.ffn_norm.weight", l);
    T(hid, dim, "blk.%d.ffn_gate.weight", l);
    T(hid, dim, "blk.%d.ffn_up.weight", l);
    T(dim, hid, "blk.%d.ffn_down.weight", l);
  }
#undef T
  for (int i = 0; i < k; i++) t[i].type = tensor_type(o, &t[i], c->n_layers);
  *out = t;
  *n_out = k;
  return LS_OK;
}

static int synth_into(ls_gguf_writer *w, const ls_synth_opts *o, const ls_config *c, const ls_vocab *v,
                      const synth_tensor *t, int n, ls_err *err) {
  char name[128];
  snprintf(name, sizeof name, "synth-d%d-l%d-%s", c->dim, c->n_layers, o->q4_k_m ? "Q4_K_M" : ls_dtype_name(o->type));
  uint32_t ftype = o->q4_k_m ? LS_GGUF_FTYPE_Q4_K_M : ls_gguf_file_type(o->type);
  LS_TRY(ls_gguf_write_llama_meta(w, c, v, name, ftype, err));
  size_t total = 0, done = 0;
  for (int i = 0; i < n; i++) {
    uint32_t ty = t[i].type;
    int64_t ne[2] = {t[i].cols, t[i].rows};
    LS_TRY(ls_gguf_writer_tensor(w, t[i].name, ty, t[i].rows ? 2 : 1, ne, err));
    total += ls_dtype_row_bytes(ty, t[i].cols) * (size_t)(t[i].rows ? t[i].rows : 1);
  }
  int64_t maxc = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
  if ((int64_t)c->n_heads * c->head_dim > maxc) maxc = (int64_t)c->n_heads * c->head_dim;
  float *row = malloc((size_t)maxc * sizeof *row);
  void *enc = malloc((size_t)maxc * sizeof(float));
  int rc = (!row || !enc) ? ls_err_set(err, LS_ENOMEM, "out of memory") : LS_OK;
  float std = o->stddev > 0 ? o->stddev : 0.02f;
  for (int i = 0; i < n && !rc; i++) {
    if (!t[i].rows) {
      for (int64_t j = 0; j < t[i].cols; j++) row[j] = 1.0f;
      rc = ls_gguf_writer_tensor_data(w, row, (size_t)t[i].cols * sizeof(float), err);
      done += (size_t)t[i].cols * sizeof(float);
      continue;
    }
    uint32_t ty = t[i].type;
    size_t rb = ls_dtype_row_bytes(ty, t[i].cols);
    rng r;
    rng_seed(&r, o->seed, (uint64_t)i + 1);
    for (int64_t j = 0; j < t[i].rows && !rc; j++) {
      fill_row(&r, row, t[i].cols, std);
      ls_quantize_row(ty, row, enc, t[i].cols);
      rc = ls_gguf_writer_tensor_data(w, enc, rb, err);
    }
    done += rb * (size_t)t[i].rows;
    if (o->progress) o->progress(o->progress_ctx, done, total);
  }
  free(row);
  free(enc);
  LS_TRY(rc);
  return ls_gguf_writer_finish(w, err);
}

int ls_synth_write(const ls_synth_opts *o, const char *out_path, ls_err *err) {
  const ls_dtype_info *dt = ls_dtype_get(o->type);
  if (!dt || !dt->writes) return ls_err_set(err, LS_EINVAL, "%s: cannot write tensor type %u", out_path, o->type);
  ls_config c = {.dim = o->dim, .hidden_dim = o->hidden_dim, .n_layers = o->n_layers, .n_heads = o->n_heads,
                 .n_kv_heads = o->n_kv_heads, .vocab_size = o->vocab_size, .seq_len = o->seq_len,
                 .rope_theta = 10000.0f, .norm_eps = 1e-5f};
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.rope_dim = c.head_dim;
  LS_TRY(ls_config_validate(&c, out_path, err));
  if (c.vocab_size < 3)
    return ls_err_set(err, LS_EINVAL, "%s: vocabulary of %d tokens is too small (at least 3)", out_path, c.vocab_size);
  ls_vocab v;
  synth_tensor *t = NULL;
  int n = 0;
  int rc = synth_vocab(&v, c.vocab_size, err);
  if (!rc) rc = synth_tensors(o, &c, &t, &n, err);
  if (rc) ls_err_prefix(err, "%s", out_path);
  ls_gguf_writer *w = NULL;
  if (!rc) rc = ls_gguf_writer_open(&w, out_path, err);
  if (!rc) rc = synth_into(w, o, &c, &v, t, n, err);
  ls_gguf_writer_free(w);
  free(t);
  ls_vocab_free(&v);
  return rc;
}
