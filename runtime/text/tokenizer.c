#include "ls_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* qsort/bsearch context: the vocabulary being sorted (init is single-threaded). */
static const ls_vocab *sort_vocab;

static int cmp_ids(const void *a, const void *b) {
  return strcmp(sort_vocab->tokens[*(const int *)a], sort_vocab->tokens[*(const int *)b]);
}

int ls_tokenizer_init(ls_tokenizer *t, const ls_vocab *v, ls_err *err) {
  memset(t, 0, sizeof *t);
  if (!v || v->n_tokens <= 0) return ls_err_set(err, LS_EINVAL, "the model has no vocabulary (pass a tokenizer)");
  t->vocab = v;
  t->kind = v->kind;
  if (v->kind == LS_VOCAB_BPE) {
    int rc = ls_bpe_new(v, &t->bpe, err);
    if (rc) {
      t->vocab = NULL;
      return rc;
    }
    t->max_piece = ls_bpe_max_piece(t->bpe);
    return LS_OK;
  }
  t->sorted = malloc((size_t)v->n_tokens * sizeof *t->sorted);
  int max_len = v->max_token_len > 0 ? v->max_token_len : 0;
  for (int i = 0; i < v->n_tokens; i++) {
    int len = (int)strlen(v->tokens[i]);
    if (len > max_len) max_len = len;
  }
  t->scratch_cap = (size_t)max_len * 2 + 8;
  t->max_piece = t->scratch_cap;
  t->scratch = malloc(t->scratch_cap);
  if (!t->sorted || !t->scratch) {
    ls_tokenizer_free(t);
    return ls_err_set(err, LS_ENOMEM, "out of memory building the tokenizer");
  }
  for (int i = 0; i < v->n_tokens; i++) t->sorted[i] = i;
  sort_vocab = v;
  qsort(t->sorted, (size_t)v->n_tokens, sizeof *t->sorted, cmp_ids);
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    t->byte_id[b] = ls_token_lookup(t, name);
    t->byte_piece[b][0] = (char)b;
    t->byte_piece[b][1] = '\0';
  }
  return LS_OK;
}

void ls_tokenizer_free(ls_tokenizer *t) {
  ls_bpe_free(t->bpe);
  free(t->sorted);
  free(t->scratch);
  free(t->work);
  memset(t, 0, sizeof *t);
}

int ls_token_lookup(const ls_tokenizer *t, const char *text) {
  if (t->bpe) return ls_bpe_lookup(t->bpe, text, strlen(text));
  int lo = 0, hi = t->vocab->n_tokens - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    int id = t->sorted[mid];
    int c = strcmp(text, t->vocab->tokens[id]);
    if (c == 0) return id;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return -1;
}

static int push(ls_tokenizer *t, int *n, int id, ls_err *err) {
  if (*n == t->work_cap) {
    int cap = t->work_cap ? 2 * t->work_cap : 256;
    int *w = realloc(t->work, (size_t)cap * sizeof *w);
    if (!w) return ls_err_set(err, LS_ENOMEM, "out of memory tokenizing");
    t->work = w;
    t->work_cap = cap;
  }
  t->work[(*n)++] = id;
  return LS_OK;
}

/* Splits text into code points and maps each to a token, or to byte tokens. */
static int initial_tokens(ls_tokenizer *t, const char *text, int *n, ls_err *err) {
  const unsigned char *s = (const unsigned char *)text;
  while (*s) {
    size_t len = 1;
    /* a UTF-8 sequence: lead byte then continuation bytes (at most 4 in all) */
    while (len < 4 && (s[len] & 0xC0) == 0x80) len++;
    memcpy(t->scratch, s, len);
    t->scratch[len] = '\0';
    int id = ls_token_lookup(t, t->scratch);
    if (id >= 0) {
      LS_TRY(push(t, n, id, err));
    } else {
      for (size_t i = 0; i < len; i++) {
        int b = t->byte_id[s[i]];
        if (b < 0) b = t->vocab->unk_id;
        LS_TRY(push(t, n, b, err));
      }
    }
    s += len;
  }
  return LS_OK;
}

/* Merges the best-scoring adjacent pair until none is in the vocabulary. */
static void merge_pairs(ls_tokenizer *t, int *n) {
  const ls_vocab *v = t->vocab;
  for (;;) {
    float best_score = -1e30f;
    int best_id = -1, best_idx = -1;
    for (int i = 0; i + 1 < *n; i++) {
      snprintf(t->scratch, t->scratch_cap, "%s%s", v->tokens[t->work[i]], v->tokens[t->work[i + 1]]);
      int id = ls_token_lookup(t, t->scratch);
      if (id >= 0 && v->scores[id] > best_score) {
        best_score = v->scores[id];
        best_id = id;
        best_idx = i;
      }
    }
    if (best_idx < 0) return;
    t->work[best_idx] = best_id;
    memmove(&t->work[best_idx + 1], &t->work[best_idx + 2], (size_t)(*n - best_idx - 2) * sizeof(int));
    (*n)--;
  }
}

int ls_tokenize(ls_tokenizer *t, const char *text, int add_bos, int *tokens, int max_tokens, int *n_tokens,
                ls_err *err) {
  if (t->bpe) return ls_bpe_encode(t->bpe, text, add_bos, tokens, max_tokens, n_tokens, err);
  const ls_vocab *v = t->vocab;
  if (strlen(text) > LS_TOKENIZE_MAX_BYTES)
    return ls_err_set(err, LS_EINVAL, "text of %zu bytes is longer than the tokenizer's limit of %d bytes",
                      strlen(text), LS_TOKENIZE_MAX_BYTES);
  int n = 0;
  if (add_bos && v->add_bos && v->bos_id >= 0) LS_TRY(push(t, &n, v->bos_id, err));
  int first = n;
  if (text[0] && v->add_space_prefix) {
    int sp = ls_token_lookup(t, " ");
    if (sp >= 0) LS_TRY(push(t, &n, sp, err));
  }
  LS_TRY(initial_tokens(t, text, &n, err));
  int m = n - first;
  int *body = t->work + first;
  /* merge only the text part, never across BOS */
  int *saved = t->work;
  t->work = body;
  merge_pairs(t, &m);
  t->work = saved;
  n = first + m;
  if (n > max_tokens)
    return ls_err_set(err, LS_EINVAL, "prompt needs %d tokens but at most %d fit", n, max_tokens);
  memcpy(tokens, t->work, (size_t)n * sizeof *tokens);
  *n_tokens = n;
  return LS_OK;
}

const char *ls_token_piece(const ls_tokenizer *t, int prev, int token) {
  if (t->bpe) return ls_bpe_piece(t->bpe, token);
  const ls_vocab *v = t->vocab;
  if (token < 0 || token >= v->n_tokens) return "";
  int type = v->types ? v->types[token] : LS_TOK_NORMAL;
  if (type == LS_TOK_CONTROL) return "";
  const char *piece = v->tokens[token];
  if (type == LS_TOK_BYTE) {
    unsigned b = 0;
    if (sscanf(piece, "<0x%02X>", &b) == 1) return t->byte_piece[b & 255];
  }
  if (prev == v->bos_id && piece[0] == ' ') piece++;
  return piece;
}
