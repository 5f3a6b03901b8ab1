#include "ls_tokenizer.h"

#include "ls_heap.h"

#include <limits.h>
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
  /* Every initial token stands for at most as many text bytes as its own text
   * has (a code point is its bytes, <0xNN> is 6 characters for 1 byte, the
   * space prefix 1 for 1), and a merge concatenates texts, so no token stands
   * for more bytes than the longest token has; unless the unknown token's text
   * is empty (it then stands for a byte with no text). */
  int unk_empty = v->unk_id >= 0 && v->unk_id < v->n_tokens && !v->tokens[v->unk_id][0];
  t->max_token_bytes = unk_empty ? 0 : max_len;
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
  free(t->nodes);
  free(t->heap);
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

/* ---- merging ----------------------------------------------------------------
 * The quadratic rule (llama2.c): rescan every adjacent pair, merge the one whose
 * concatenation is the vocabulary token with the highest score (strictly above
 * -1e30; the leftmost among equal scores), repeat until no pair merges. Here the
 * tokens form a doubly linked list (a merge keeps the left node and unlinks the
 * right one, so node order is text order) and every mergeable adjacent pair is
 * a candidate in a binary max-heap ordered by (score, leftmost node). A merge
 * changes only the pairs touching the merged node; they are pushed anew, and
 * the candidates it invalidated are recognised when popped because a node's
 * generation counter moves whenever its token or its neighbour changes. The
 * first valid candidate popped is then the pair the rescan would choose. */

typedef struct ls_merge_node {
  int id, prev, next; /* prev/next: node indices, -1 at the ends */
  unsigned gen;       /* bumped when id changes or the node is unlinked */
} ls_merge_node;

typedef struct ls_merge_cand {
  float score;
  int id;             /* the merged token */
  int left, right;    /* node indices */
  unsigned gen_left, gen_right;
} ls_merge_cand;

/* Pops first: higher score, then further left. */
static int cand_before(const void *x, const void *y) {
  const ls_merge_cand *a = x, *b = y;
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Pushes the pair (left, right) if its concatenation is a mergeable token. */
static void push_pair(ls_tokenizer *t, ls_merge_cand *heap, int *n_heap, int left, int right) {
  const ls_vocab *v = t->vocab;
  const ls_merge_node *a = &t->nodes[left], *b = &t->nodes[right];
  snprintf(t->scratch, t->scratch_cap, "%s%s", v->tokens[a->id], v->tokens[b->id]);
  int id = ls_token_lookup(t, t->scratch);
  if (id < 0 || !(v->scores[id] > -1e30f)) return; /* the rescan's threshold; NaN never merges */
  ls_merge_cand c = {v->scores[id], id, left, right, a->gen, b->gen};
  ls_heap_push(heap, n_heap, sizeof c, &c, cand_before);
}

static int reserve_merge(ls_tokenizer *t, int n, ls_err *err) {
  if (n <= t->merge_cap) return LS_OK;
  /* n - 1 initial pairs and at most two new ones per merge */
  if (n > INT_MAX / 3) return ls_err_set(err, LS_ENOMEM, "out of memory tokenizing");
  ls_merge_node *nodes = realloc(t->nodes, (size_t)n * sizeof *nodes);
  if (nodes) t->nodes = nodes;
  ls_merge_cand *heap = nodes ? realloc(t->heap, (size_t)n * 3 * sizeof *heap) : NULL;
  if (!heap) return ls_err_set(err, LS_ENOMEM, "out of memory tokenizing");
  t->heap = heap;
  t->merge_cap = n;
  return LS_OK;
}

/* Merges ids[0..*n) in place; *n becomes the merged count. */
static int merge_pairs(ls_tokenizer *t, int *ids, int *n, ls_err *err) {
  if (*n < 2) return LS_OK;
  LS_TRY(reserve_merge(t, *n, err));
  ls_merge_node *node = t->nodes;
  for (int i = 0; i < *n; i++) node[i] = (ls_merge_node){ids[i], i - 1, i + 1 < *n ? i + 1 : -1, 0};
  int n_heap = 0;
  for (int i = 0; i + 1 < *n; i++) push_pair(t, t->heap, &n_heap, i, i + 1);
  while (n_heap > 0) {
    ls_merge_cand c;
    ls_heap_pop(t->heap, &n_heap, sizeof c, &c, cand_before);
    ls_merge_node *l = &node[c.left], *r = &node[c.right];
    if (l->gen != c.gen_left || r->gen != c.gen_right || l->next != c.right) continue; /* stale */
    l->id = c.id;
    l->gen++;
    r->gen++;
    l->next = r->next;
    if (r->next >= 0) node[r->next].prev = c.left;
    if (l->prev >= 0) push_pair(t, t->heap, &n_heap, l->prev, c.left);
    if (l->next >= 0) push_pair(t, t->heap, &n_heap, c.left, l->next);
  }
  int m = 0;
  for (int i = 0; i >= 0; i = node[i].next) ids[m++] = node[i].id; /* node 0 is never unlinked */
  *n = m;
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
  int bos = add_bos && v->add_bos && v->bos_id >= 0;
  int space = text[0] && v->add_space_prefix && ls_token_lookup(t, " ") >= 0;
  /* refuse a text that cannot fit before spending time on it */
  size_t bytes = strlen(text) + (size_t)space;
  if (t->max_token_bytes > 0) {
    size_t least = (size_t)bos + (bytes + (size_t)t->max_token_bytes - 1) / (size_t)t->max_token_bytes;
    if (least > (size_t)(max_tokens > 0 ? max_tokens : 0))
      return ls_err_set(err, LS_EINVAL, "prompt of %zu bytes needs at least %zu tokens but at most %d fit", bytes,
                        least, max_tokens);
  }
  if (bos) LS_TRY(push(t, &n, v->bos_id, err));
  int first = n;
  if (space) LS_TRY(push(t, &n, ls_token_lookup(t, " "), err));
  LS_TRY(initial_tokens(t, text, &n, err));
  int m = n - first;
  if (m > 0) LS_TRY(merge_pairs(t, t->work + first, &m, err)); /* the text only, never across BOS */
  n = first + m;
  if (n > max_tokens)
    return ls_err_set(err, LS_EINVAL, "prompt needs %d tokens but at most %d fit", n, max_tokens);
  if (n > 0) memcpy(tokens, t->work, (size_t)n * sizeof *tokens);
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
