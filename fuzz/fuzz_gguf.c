/* GGUF: the parsed view over the bytes (every key and value walked with the
 * typed accessors), then the same bytes as a model file through ls_model_load
 * (shape, tensors, embedded vocabulary) and, when it has a vocabulary, the
 * tokenizer built from it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "gguf.h"
#include "ls_model.h"
#include "ls_tokenizer.h"

static void walk_value(const ls_gguf_value *v, int depth) {
  int64_t i64;
  uint64_t u64;
  double f;
  int b;
  const char *s;
  size_t len;
  (void)ls_gguf_value_int(v, &i64);
  (void)ls_gguf_value_uint(v, &u64);
  (void)ls_gguf_value_float(v, &f);
  (void)ls_gguf_value_bool(v, &b);
  if (ls_gguf_value_str(v, &s, &len)) {
    for (size_t k = 0; k < len; k++) fz_sink += (unsigned char)s[k]; /* inside the input? */
  }
  if (v->type != LS_GGUF_ARRAY) return;
  const uint8_t *cursor = NULL;
  ls_gguf_value e;
  uint64_t n = 0;
  while (ls_gguf_array_next(v, &cursor, &e) && n < 4096) {
    if (depth < 3) walk_value(&e, depth + 1);
    n++;
  }
  FZ_ASSERT(n == v->arr_n || n == 4096, "array walk yields %llu of %llu elements", (unsigned long long)n,
            (unsigned long long)v->arr_n);
  if (v->arr_n > 0) {
    FZ_ASSERT(ls_gguf_array_at(v, 0, &e), "first element");
    if (v->arr_n < 4096) FZ_ASSERT(ls_gguf_array_at(v, v->arr_n - 1, &e), "last element");
    FZ_ASSERT(!ls_gguf_array_at(v, v->arr_n, &e), "element past the end");
  }
}

static void parse_view(const uint8_t *data, size_t size) {
  ls_gguf g;
  ls_err err;
  int rc = ls_gguf_parse(&g, data, size, "fuzz.gguf", &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, "fuzz.gguf");
    return;
  }
  for (uint64_t i = 0; i < g.n_kv; i++) {
    walk_value(&g.kv[i].val, 0);
    ls_gguf_print_value(fz_null(), &g.kv[i].val, 8);
    FZ_ASSERT(ls_gguf_find(&g, g.kv[i].key) == &g.kv[i], "key %s found again", g.kv[i].key);
  }
  for (uint64_t i = 0; i < g.n_tensors; i++) {
    const ls_gguf_tensor *t = &g.tensors[i];
    FZ_ASSERT(ls_gguf_find_tensor(&g, t->name) == t, "tensor %s found again", t->name);
    const uint8_t *p = t->data;
    FZ_ASSERT(p >= data && p + t->nbytes <= data + size, "tensor %s lies outside the file", t->name);
    (void)ls_dtype_name(t->type);
  }
  int64_t v;
  ls_err e2;
  (void)ls_gguf_get_int(&g, "llama.block_count", 0, 1, 1024, &v, NULL, &e2);
  ls_gguf_close(&g);
}

static void load_model(const uint8_t *data, size_t size) {
  const char *path = fz_write("model.gguf", data, size);
  ls_model m;
  ls_err err;
  int rc = ls_model_load(&m, path, NULL, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return;
  }
  if (m.vocab.n_tokens > 0) {
    ls_tokenizer t;
    if (ls_tokenizer_init(&t, &m.vocab, &err) == LS_OK) {
      int toks[64], n = 0;
      if (ls_tokenize(&t, "Once upon a time, \xc3\xa9\xf0\x9f\x99\x82!", 1, toks, 64, &n, &err) == LS_OK)
        for (int i = 0; i < n; i++) {
          FZ_ASSERT(toks[i] >= 0 && toks[i] < m.vocab.n_tokens, "token id %d of %d", toks[i], m.vocab.n_tokens);
          (void)ls_token_piece(&t, i ? toks[i - 1] : -1, toks[i]);
        }
      ls_tokenizer_free(&t);
    }
  }
  ls_model_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_view(data, size);
  if (size > 0) load_model(data, size);
  return 0;
}
