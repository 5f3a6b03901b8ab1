/* litestage-run inspect: a model's format, shape, tensors, size, vocabulary
 * and fingerprint. For GGUF the metadata is printed from the raw parsed view
 * first, so that a file the engine cannot run (another architecture, an
 * unsupported tensor type) can still be inspected before the error. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ls_cli.h"
#include "gguf.h"
#include "ls_model.h"
#include "ls_tokenizer.h"
#include "ls_quant.h"
#include "ls_util.h"

static int is_gguf(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char magic[4] = {0};
  size_t n = fread(magic, 1, 4, f);
  fclose(f);
  return n == 4 && !memcmp(magic, "GGUF", 4);
}

static void print_meta(const ls_gguf *g, int all) {
  printf("metadata:       %" PRIu64 " keys, alignment %zu, data at offset %zu\n", g->n_kv, g->alignment,
         g->data_offset);
  for (uint64_t i = 0; i < g->n_kv; i++) {
    const ls_gguf_kv *kv = &g->kv[i];
    int is_tok = !strncmp(kv->key, "tokenizer.", 10) && kv->val.type == LS_GGUF_ARRAY;
    printf("  %-40s ", kv->key);
    ls_gguf_print_value(stdout, &kv->val, is_tok && !all ? 0 : 8);
    putchar('\n');
  }
}

typedef struct {
  const char *name;
  uint32_t type;
  int64_t rows, cols; /* rows 0: a vector of cols */
  size_t bytes;
} tinfo;

static void add_mat(tinfo *t, int *n, const char *name, const ls_mat *w) {
  t[*n] = (tinfo){name, w->type, w->rows, w->cols, w->row_bytes * (size_t)w->rows};
  (*n)++;
}

static void add_vec(tinfo *t, int *n, const char *name, int64_t len) {
  t[*n] = (tinfo){name, LS_F32, 0, len, (size_t)len * 4};
  (*n)++;
}

/* "types: F32 x9, Q4_K x25, Q6_K x5": the per-tensor type mix, by type name. */
static void print_type_mix(const tinfo *t, int n) {
  const char *names[32];
  int counts[32], nt = 0;
  for (int i = 0; i < n; i++) {
    const char *name = ls_dtype_name(t[i].type);
    int k = 0;
    while (k < nt && strcmp(names[k], name)) k++;
    if (k == nt) {
      if (nt == 32) continue;
      names[nt] = name;
      counts[nt++] = 0;
    }
    counts[k]++;
  }
  for (int i = 1; i < nt; i++) /* insertion sort by name: a stable, readable order */
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      const char *sn = names[j];
      int sc = counts[j];
      names[j] = names[j - 1], counts[j] = counts[j - 1];
      names[j - 1] = sn, counts[j - 1] = sc;
    }
  printf("types:         ");
  for (int i = 0; i < nt; i++) printf("%s %s x%d", i ? "," : "", names[i], counts[i]);
  printf("\n");
}

static void print_tensors(const ls_model *m, int all) {
  const ls_config *c = &m->cfg;
  int cap = 3 + 9 * c->n_layers, n = 0;
  tinfo *t = calloc((size_t)cap, sizeof *t);
  char(*names)[48] = calloc((size_t)cap, 48);
  if (!t || !names) {
    free(t);
    free(names);
    return;
  }
  add_mat(t, &n, "token_embd.weight", &m->tok_embd);
  add_vec(t, &n, "output_norm.weight", c->dim);
  if (!m->tied_output) add_mat(t, &n, "output.weight", &m->output);
  static const char *const part[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                      "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
  for (int l = 0; l < c->n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    const ls_mat *mats[9] = {NULL, &L->wq, &L->wk, &L->wv, &L->wo, NULL, &L->w_gate, &L->w_up, &L->w_down};
    for (int j = 0; j < 9; j++) {
      snprintf(names[n], 48, "blk.%d.%s.weight", l, part[j]);
      if (mats[j]) add_mat(t, &n, names[n], mats[j]);
      else add_vec(t, &n, names[n], c->dim);
    }
  }
  int64_t params = 0;
  for (int i = 0; i < n; i++) params += (t[i].rows ? t[i].rows : 1) * t[i].cols;
  printf("parameters:     %" PRId64 " (%.2f M)%s\n", params, (double)params / 1e6,
         m->tied_output ? ", classifier tied to token_embd" : "");
  printf("tensors:        %d\n", n);
  print_type_mix(t, n);
  if (all || n <= 40) {
    for (int i = 0; i < n; i++) {
      char shape[64];
      if (t[i].rows) snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 "]", t[i].cols, t[i].rows);
      else snprintf(shape, sizeof shape, "[%" PRId64 "]", t[i].cols);
      printf("  %-28s %-6s %-16s %12zu bytes\n", t[i].name, ls_dtype_name(t[i].type), shape, t[i].bytes);
    }
  } else {
    printf("  %-6s %8s %16s   (--tensors lists every tensor)\n", "type", "count", "bytes");
    uint32_t seen[16];
    int ns = 0;
    for (int i = 0; i < n; i++) {
      int k = 0;
      while (k < ns && seen[k] != t[i].type) k++;
      if (k < ns || ns == 16) continue;
      seen[ns++] = t[i].type;
      int count = 0;
      size_t bytes = 0;
      for (int j = 0; j < n; j++)
        if (t[j].type == t[i].type) count++, bytes += t[j].bytes;
      printf("  %-6s %8d %16zu\n", ls_dtype_name(t[i].type), count, bytes);
    }
  }
  free(t);
  free(names);
}

static void print_token(const ls_vocab *v, int id) {
  if (id < 0 || id >= v->n_tokens) {
    printf("none");
    return;
  }
  printf("%d \"", id);
  for (const unsigned char *p = (const unsigned char *)v->tokens[id]; *p; p++)
    if (*p < 0x20 || *p == '"') printf("\\x%02x", *p);
    else putchar(*p);
  putchar('"');
}

static void print_vocab(const ls_vocab *v) {
  if (v->n_tokens == 0) {
    printf("vocabulary:     none (pass -z TOKENIZER to generate text)\n");
  } else {
    printf("tokenizer:      %s", ls_vocab_kind_name(v));
    if (v->kind == LS_VOCAB_BPE) printf(", pre-tokenizer %s (%s), %d merges", v->pre_name, ls_pre_kind_name(v->pre), v->n_merges);
    printf("\n");
    printf("vocabulary:     %d tokens, BOS ", v->n_tokens);
    print_token(v, v->bos_id);
    printf(", EOS ");
    print_token(v, v->eos_id);
    printf(", UNK ");
    print_token(v, v->unk_id);
    if (v->eot_id >= 0) {
      printf(", EOT ");
      print_token(v, v->eot_id);
    }
    printf(", add_bos %s, add_eos %s, space prefix %s\n", v->add_bos ? "yes" : "no", v->add_eos ? "yes" : "no",
           v->add_space_prefix ? "yes" : "no");
  }
}

static void print_model(const ls_model *m, int all) {
  const ls_config *c = &m->cfg;
  printf("architecture:   %s\n", c->arch == LS_ARCH_QWEN2 ? "qwen2 (Q/K/V biases, NEOX rope)" : "llama");
  printf("name:           %s\n", m->name);
  printf("config:\n");
  printf("  dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, head_dim %d\n", c->dim, c->hidden_dim,
         c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim);
  printf("  vocab_size %d, seq_len %d, rope_dim %d, rope_theta %g, norm_eps %g\n", c->vocab_size, c->seq_len,
         c->rope_dim, (double)c->rope_theta, (double)c->norm_eps);
  if (m->rope_freqs) printf("  rope scaling: per-frequency divisors (Llama 3), %g .. %g\n", (double)m->rope_freqs[0],
                            (double)m->rope_freqs[c->rope_dim / 2 - 1]);
  if (c->rope_freq_scale > 0 && c->rope_freq_scale != 1.0f)
    printf("  rope scaling: linear, positions x %g\n", (double)c->rope_freq_scale);
  printf("  classifier: %s\n", m->tied_output ? "tied to the token embedding" : "output.weight");
  print_tensors(m, all);
  printf("weights:        %zu bytes (%.1f MiB)\n", m->weight_bytes, (double)m->weight_bytes / (1 << 20));
  print_vocab(&m->vocab);
}

typedef struct {
  const char *path, *model, *tok;
  int all, meta, n_args;
} inspect_opts;

static inspect_opts g_opts;

static const ls_opt opts[] = {
    LS_STR("-m|--model", "MODEL", "the model file (or give MODEL as the argument)", &g_opts.model),
    LS_STR("-z|--tokenizer", "TOKENIZER", "llama2.c tokenizer.bin (replaces a GGUF's embedded vocabulary)",
           &g_opts.tok),
    LS_SWITCH("--tensors", "list every tensor (not a summary by type)", &g_opts.all),
    LS_SWITCH("--meta", "print every GGUF metadata value (tokenizer arrays in full length)", &g_opts.meta),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run inspect",
    .synopsis = "[-m] MODEL [-z TOKENIZER] [--tensors] [--meta]",
    .about = "Prints the model's format, configuration, tensors (a summary by type for models with more\n"
             "than 40 tensors), size, parameter count, vocabulary and SHA-256 fingerprint. A GGUF file\n"
             "without tensors (a vocabulary-only file, usable by `tokenize`) gets its metadata and\n"
             "tokenizer.",
    .opts = opts,
    .args = &g_opts.path,
    .max_args = 1,
    .n_args = &g_opts.n_args,
};

static int check(void *ctx, ls_err *err) {
  inspect_opts *o = ctx;
  if (o->path && o->model) return ls_err_set(err, LS_EINVAL, "give MODEL once: -m %s and %s", o->model, o->path);
  if (o->model) o->path = o->model;
  return o->path ? LS_OK : ls_err_set(err, LS_EINVAL, "missing MODEL");
}

/* GGUF: the raw metadata first, so that a file the engine cannot run still shows it. */
static int print_gguf_view(const char *path, char sha[65], int meta, uint64_t *n_tensors, ls_err *err) {
  ls_gguf g;
  LS_TRY(ls_gguf_open(&g, path, err));
  if (ls_sha256_file(path, sha, err)) {
    ls_gguf_close(&g);
    return err->code;
  }
  printf("file:           %s\n", path);
  printf("format:         GGUF v%u\n", g.version);
  printf("size:           %zu bytes (%.1f MiB)\n", g.size, (double)g.size / (1 << 20));
  printf("fingerprint:    sha256:%s\n", sha);
  print_meta(&g, meta);
  *n_tensors = g.n_tensors;
  ls_gguf_close(&g);
  fflush(stdout);
  return LS_OK;
}

/* A GGUF without tensors: a vocabulary for `tokenize` or -z, not a model. */
static int print_vocab_only(const char *path, ls_err *err) {
  printf("tensors:        none (a vocabulary-only file: `tokenize -m` reads it; it cannot run as a model)\n");
  ls_vocab v;
  LS_TRY(ls_vocab_load_gguf(&v, path, err));
  print_vocab(&v);
  ls_vocab_free(&v);
  return LS_OK;
}

static int run(void *ctx, ls_err *err) {
  inspect_opts *o = ctx;
  int gguf = is_gguf(o->path);
  char sha[65];
  uint64_t n_tensors = 0;
  if (gguf) LS_TRY(print_gguf_view(o->path, sha, o->meta, &n_tensors, err));
  else LS_TRY(ls_sha256_file(o->path, sha, err));
  if (gguf && n_tensors == 0) return print_vocab_only(o->path, err);
  ls_model m;
  LS_TRY(ls_model_load_placed(&m, o->path, o->tok, LS_WEIGHTS_MAP, err)); /* reads the weights once at most */
  if (!gguf) {
    printf("file:           %s\n", o->path);
    printf("format:         llama2.c checkpoint\n");
    printf("size:           %zu bytes (%.1f MiB)\n", m.file_size, (double)m.file_size / (1 << 20));
    printf("fingerprint:    sha256:%s\n", sha);
  }
  print_model(&m, o->all);
  ls_model_free(&m);
  return LS_OK;
}

int ls_cli_inspect(int argc, char **argv) {
  memset(&g_opts, 0, sizeof g_opts);
  return ls_cli_main(&cli, argc, argv, check, run, &g_opts);
}
