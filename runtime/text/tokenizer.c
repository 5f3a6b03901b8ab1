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

/* A candidate merge of the symbols at left and right (ids lid, rid) into id. */
typedef struct sp_pair {
  float score;
  int left, right, lid, rid, id;
} sp_pair;

/* llama2.c's order: the highest score first, the leftmost on ties. */
static int sp_before(const sp_pair *a, const sp_pair *b) {
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void sp_push(sp_pair *h, int *n, sp_pair p) {
  int i = (*n)++;
  while (i > 0 && sp_before(&p, &h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = p;
}

static sp_pair sp_pop(sp_pair *h, int *n) {
  sp_pair top = h[0], last = h[--(*n)];
  int i = 0;
  for (int c; (c = 2 * i + 1) < *n; i = c) {
    if (c + 1 < *n && sp_before(&h[c + 1], &h[c])) c++;
    if (!sp_before(&h[c], &last)) break;
    h[i] = h[c];
  }
  if (*n > 0) h[i] = last;
  return top;
}

static void sp_candidate(ls_tokenizer *t, const int *next, sp_pair *h, int *n_heap, int left) {
  int right = left >= 0 ? next[left] : -1;
  if (right < 0) return;
  const ls_vocab *v = t->vocab;
  snprintf(t->scratch, t->scratch_cap, "%s%s", v->tokens[t->work[left]], v->tokens[t->work[right]]);
  int id = ls_token_lookup(t, t->scratch);
  if (id >= 0 && v->scores[id] > -1e30f)
    sp_push(h, n_heap, (sp_pair){v->scores[id], left, right, t->work[left], t->work[right], id});
}

/* Merges the best-scoring adjacent pair until none is in the vocabulary (the
 * result of llama2.c's repeated scan), with a heap of candidate pairs over a
 * linked list of symbols: O(n log n). A popped pair is stale if either symbol
 * changed since it was pushed. */
static int merge_pairs(ls_tokenizer *t, int *n, ls_err *err) {
  int m = *n;
  if (m < 2) return LS_OK;
  int *next = malloc((size_t)m * sizeof *next), *prev = malloc((size_t)m * sizeof *prev), n_heap = 0;
  sp_pair *heap = malloc((size_t)3 * (size_t)m * sizeof *heap); /* m - 1 pairs, then at most 2 per merge */
  if (!next || !prev || !heap) {
    free(next), free(prev), free(heap);
    return ls_err_set(err, LS_ENOMEM, "out of memory tokenizing");
  }
  for (int i = 0; i < m; i++) {
    next[i] = i + 1 < m ? i + 1 : -1;
    prev[i] = i - 1;
  }
  for (int i = 0; i + 1 < m; i++) sp_candidate(t, next, heap, &n_heap, i);
  while (n_heap > 0) {
    sp_pair p = sp_pop(heap, &n_heap);
    if (t->work[p.left] != p.lid || next[p.left] != p.right || t->work[p.right] != p.rid) continue;
    t->work[p.left] = p.id;
    t->work[p.right] = -1;
    next[p.left] = next[p.right];
    if (next[p.right] >= 0) prev[next[p.right]] = p.left;
    sp_candidate(t, next, heap, &n_heap, prev[p.left]);
    sp_candidate(t, next, heap, &n_heap, p.left);
  }
  int k = 0;
  for (int i = 0; i >= 0; i = next[i]) t->work[k++] = t->work[i];
  *n = k;
  free(next), free(prev), free(heap);
  return LS_OK;
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
  int rc = merge_pairs(t, &m, err);
  t->work = saved;
  if (rc) return rc;
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
