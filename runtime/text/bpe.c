/* Byte-level BPE (GGUF tokenizer.ggml.model "gpt2"), written to give the same
 * ids as llama.cpp's tokenizer for the pre-tokenizers in ls_pre_kind.
 *
 * Encoding one text:
 *  1. Special tokens (types control, user-defined, unknown) are cut out of the
 *     text, longest token text first, every occurrence left to right (so
 *     "<|eot_id|>" typed in a prompt is that token, as llama.cpp's
 *     parse_special does).
 *  2. Each remaining fragment is decoded to code points (an invalid UTF-8 byte
 *     becomes U+FFFD) and split into pieces by the pre-tokenizer: the regexes
 *     of the model's tokenizer.json, implemented by hand below, one stage
 *     after another (a later stage splits each earlier piece on its own).
 *  3. Each piece's UTF-8 bytes are mapped to printable code points (GPT-2's
 *     byte-to-unicode table) and merged: the adjacent pair with the lowest
 *     merge rank first (ties: leftmost), using a binary heap of candidate
 *     pairs over a linked list of symbols, O(m log m) for an m-symbol piece.
 *     Stale heap entries are recognised by the symbol lengths they saw.
 *  4. Each final symbol is a token; one that is not in the vocabulary falls
 *     back to its single bytes where those are tokens (else it is dropped, as
 *     llama.cpp drops it).
 *
 * Unicode classes come from runtime/text/unicode_table.h (generated from
 * Python's unicodedata, Unicode 14): code points whose category changed in
 * later Unicode versions may be classed differently from llama.cpp's table.
 * Token attributes lstrip/rstrip (set by llama.cpp for a few other models by
 * name) are not modelled. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ls_heap.h"
#include "ls_tokenizer.h"
#include "unicode_table.h"

/* ---- code point classes -------------------------------------------------- */

enum { C_LETTER = 1, C_NUMBER = 2, C_SPACE = 4, C_PUNCT = 8 };

static int in_ranges(uint32_t c, const uint32_t (*r)[2], int n) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (c < r[mid][0]) hi = mid - 1;
    else if (c > r[mid][1]) lo = mid + 1;
    else return 1;
  }
  return 0;
}

#define N_RANGES(a) ((int)(sizeof(a) / sizeof(a[0])))

/* Unicode's White_Space property (what the regexes' \s means here). */
static int is_white_space(uint32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static unsigned cp_class(uint32_t c) {
  unsigned f = 0;
  if (is_white_space(c)) f |= C_SPACE;
  if (in_ranges(c, ls_uc_letter, N_RANGES(ls_uc_letter))) f |= C_LETTER;
  else if (in_ranges(c, ls_uc_number, N_RANGES(ls_uc_number))) f |= C_NUMBER;
  else if (in_ranges(c, ls_uc_punct, N_RANGES(ls_uc_punct))) f |= C_PUNCT;
  return f;
}

/* ---- hash tables --------------------------------------------------------- */

static uint32_t fnv(uint32_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}
#define FNV0 2166136261u

static uint32_t table_size(int n) {
  uint32_t s = 16;
  while (s < 2u * (uint32_t)n) s *= 2;
  return s;
}

struct ls_bpe {
  const ls_vocab *v;
  int pre;
  int ignore_merges;      /* a piece that is a whole token is that token (llama3) */
  uint32_t *tok_len;      /* [n_tokens] */
  int32_t *tok_slot;      /* token text -> id, open addressing, -1 empty */
  uint32_t tok_mask;
  int32_t *merge_slot;    /* "left right" -> rank */
  uint32_t merge_mask;
  uint16_t *merge_split;  /* [n_merges] length of the left part */
  int *special;           /* special token ids, longest text first */
  int n_special;
  char *piece_text;       /* decoded pieces, NUL-separated */
  uint32_t *piece_off;    /* [n_tokens] */
  size_t max_piece;
  char byte_cp[256][3];   /* byte -> UTF-8 of its printable code point */
  int16_t cp_byte[0x144]; /* printable code point -> byte, or -1 */
  unsigned ascii_class[128];
  /* per-call work buffers, grown as needed */
  uint32_t *cps;
  int *seg_a, *seg_b;
  int *frag;              /* fragments: (start, len, token) triples */
  int *frag2;
  char *word;
  int *sym_start, *sym_len, *sym_prev, *sym_next;
  struct pair { int rank, left, ln, rn; } *heap;
  size_t cap_cps, cap_frag, cap_word, cap_sym, cap_heap;
};

int ls_bpe_lookup(const ls_bpe *b, const char *s, size_t len) {
  uint32_t i = fnv(FNV0, s, len) & b->tok_mask;
  for (;; i = (i + 1) & b->tok_mask) {
    int id = b->tok_slot[i];
    if (id < 0) return -1;
    if (b->tok_len[id] == len && !memcmp(b->v->tokens[id], s, len)) return id;
  }
}

static int merge_rank(const ls_bpe *b, const char *l, size_t ln, const char *r, size_t rn) {
  if (!b->merge_slot) return -1;
  uint32_t h = fnv(fnv(fnv(FNV0, l, ln), " ", 1), r, rn);
  for (uint32_t i = h & b->merge_mask;; i = (i + 1) & b->merge_mask) {
    int rank = b->merge_slot[i];
    if (rank < 0) return -1;
    const char *m = b->v->merge_text + b->v->merge_off[rank];
    /* split == ln puts a space at m[ln]; strncmp stops at the end of m */
    if (b->merge_split[rank] == ln && !memcmp(m, l, ln) && !strncmp(m + ln + 1, r, rn) && m[ln + 1 + rn] == '\0')
      return rank;
  }
}

static int build_token_table(ls_bpe *b, ls_err *err) {
  const ls_vocab *v = b->v;
  uint32_t size = table_size(v->n_tokens);
  b->tok_len = malloc((size_t)v->n_tokens * sizeof *b->tok_len);
  b->tok_slot = malloc(size * sizeof *b->tok_slot);
  if (!b->tok_len || !b->tok_slot) return ls_err_set(err, LS_ENOMEM, "out of memory building the BPE tokenizer");
  memset(b->tok_slot, 0xFF, size * sizeof *b->tok_slot);
  b->tok_mask = size - 1;
  for (int id = 0; id < v->n_tokens; id++) {
    size_t len = strlen(v->tokens[id]);
    b->tok_len[id] = (uint32_t)len;
    uint32_t i = fnv(FNV0, v->tokens[id], len) & b->tok_mask;
    /* a repeated text maps to its last id, as llama.cpp's token map does */
    while (b->tok_slot[i] >= 0 && !(b->tok_len[b->tok_slot[i]] == len && !memcmp(v->tokens[b->tok_slot[i]], v->tokens[id], len)))
      i = (i + 1) & b->tok_mask;
    b->tok_slot[i] = id;
  }
  return LS_OK;
}

static int build_merge_table(ls_bpe *b, ls_err *err) {
  const ls_vocab *v = b->v;
  if (v->n_merges <= 0) return LS_OK;
  uint32_t size = table_size(v->n_merges);
  b->merge_slot = malloc(size * sizeof *b->merge_slot);
  b->merge_split = malloc((size_t)v->n_merges * sizeof *b->merge_split);
  if (!b->merge_slot || !b->merge_split) return ls_err_set(err, LS_ENOMEM, "out of memory building the BPE merges");
  memset(b->merge_slot, 0xFF, size * sizeof *b->merge_slot);
  b->merge_mask = size - 1;
  for (int r = 0; r < v->n_merges; r++) {
    const char *m = v->merge_text + v->merge_off[r];
    const char *sp = m[0] ? strchr(m + 1, ' ') : NULL;
    b->merge_split[r] = 0;
    if (!sp || sp - m > UINT16_MAX) continue; /* no pair: can never apply */
    b->merge_split[r] = (uint16_t)(sp - m);
    size_t ln = (size_t)(sp - m), rn = strlen(sp + 1);
    if (merge_rank(b, m, ln, sp + 1, rn) >= 0) continue; /* the first rank of a pair wins */
    uint32_t i = fnv(FNV0, m, ln + 1 + rn) & b->merge_mask;
    while (b->merge_slot[i] >= 0) i = (i + 1) & b->merge_mask;
    b->merge_slot[i] = r;
  }
  return LS_OK;
}

/* ---- byte <-> printable code point (GPT-2's bytes_to_unicode) ------------- */

static int utf8_put(uint32_t c, char *o) {
  if (c < 0x80) {
    o[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    o[0] = (char)(0xC0 | (c >> 6));
    o[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (char)(0xE0 | (c >> 12));
    o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (c >> 18));
  o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  o[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes take the
 * code points from U+0100 up, in byte order. */
static void build_byte_map(ls_bpe *b) {
  for (int i = 0; i < 0x144; i++) b->cp_byte[i] = -1;
  int extra = 0;
  for (int byte = 0; byte < 256; byte++) {
    int printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
    uint32_t cp = printable ? (uint32_t)byte : 0x100u + (uint32_t)extra++;
    int n = utf8_put(cp, b->byte_cp[byte]);
    b->byte_cp[byte][n] = '\0';
    b->cp_byte[cp] = (int16_t)byte;
  }
}

/* Decodes one code point as llama.cpp does: an invalid lead byte, a truncated
 * sequence or a value above U+10FFFF gives U+FFFD for one byte. Overlong forms
 * and surrogates are accepted as decoded. */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
  uint8_t c = s[*i];
  size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || *i + len > n) {
    (*i)++;
    return len == 1 ? c : 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
  for (size_t k = 1; k < len; k++) {
    if ((s[*i + k] & 0xC0) != 0x80) {
      (*i)++;
      return 0xFFFD;
    }
    cp = (cp << 6) | (s[*i + k] & 0x3Fu);
  }
  if (cp > 0x10FFFF) {
    (*i)++;
    return 0xFFFD;
  }
  *i += len;
  return cp;
}

/* The bytes a normal token stands for (code points outside the byte map are
 * kept as UTF-8). Returns the length written to o (at most 2 * strlen(s)). */
static size_t decode_token(const ls_bpe *b, const char *s, char *o) {
  size_t n = strlen(s), i = 0, k = 0;
  while (i < n) {
    size_t at = i;
    uint32_t cp = utf8_next((const uint8_t *)s, n, &i);
    if (cp < 0x144 && b->cp_byte[cp] >= 0) {
      o[k++] = (char)b->cp_byte[cp];
    } else {
      memcpy(o + k, s + at, i - at);
      k += i - at;
    }
  }
  return k;
}

static int build_pieces(ls_bpe *b, ls_err *err) {
  const ls_vocab *v = b->v;
  size_t total = 0;
  for (int id = 0; id < v->n_tokens; id++) total += b->tok_len[id] + 1;
  b->piece_text = malloc(total + 1);
  b->piece_off = malloc((size_t)v->n_tokens * sizeof *b->piece_off);
  if (!b->piece_text || !b->piece_off) return ls_err_set(err, LS_ENOMEM, "out of memory building the BPE pieces");
  size_t at = 0;
  for (int id = 0; id < v->n_tokens; id++) {
    int type = v->types ? v->types[id] : LS_TOK_NORMAL;
    size_t n = 0;
    b->piece_off[id] = (uint32_t)at;
    if (type == LS_TOK_NORMAL) {
      n = decode_token(b, v->tokens[id], b->piece_text + at);
    } else if (type == LS_TOK_USER) {
      n = b->tok_len[id];
      memcpy(b->piece_text + at, v->tokens[id], n);
    }
    b->piece_text[at + n] = '\0';
    if (n > b->max_piece) b->max_piece = n;
    at += n + 1;
  }
  return LS_OK;
}

/* ---- special tokens ------------------------------------------------------ */

static const ls_vocab *sort_vocab; /* qsort context (init is single-threaded) */

static int cmp_longest_first(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb;
  size_t la = strlen(sort_vocab->tokens[a]), lb = strlen(sort_vocab->tokens[b]);
  if (la != lb) return la > lb ? -1 : 1;
  return a < b ? -1 : a > b; /* equal lengths: by id, so the order is fixed */
}

static int build_specials(ls_bpe *b, ls_err *err) {
  const ls_vocab *v = b->v;
  if (!v->types) return LS_OK;
  b->special = malloc((size_t)v->n_tokens * sizeof *b->special);
  if (!b->special) return ls_err_set(err, LS_ENOMEM, "out of memory building the BPE tokenizer");
  for (int id = 0; id < v->n_tokens; id++) {
    int t = v->types[id];
    if ((t == LS_TOK_CONTROL || t == LS_TOK_USER || t == LS_TOK_UNKNOWN) && v->tokens[id][0])
      b->special[b->n_special++] = id;
  }
  sort_vocab = v;
  qsort(b->special, (size_t)b->n_special, sizeof *b->special, cmp_longest_first);
  return LS_OK;
}

/* ---- setup --------------------------------------------------------------- */

static const struct {
  const char *name;
  int kind;
} pre_names[] = {
    {"default", LS_PRE_DEFAULT}, {"gpt-2", LS_PRE_GPT2},    {"llama-bpe", LS_PRE_LLAMA3},
    {"llama3", LS_PRE_LLAMA3},   {"llama-v3", LS_PRE_LLAMA3}, {"qwen2", LS_PRE_QWEN2},
    {"deepseek-r1-qwen", LS_PRE_QWEN2}, {"smollm", LS_PRE_SMOLLM}, {"starcoder", LS_PRE_SMOLLM},
};

int ls_pre_kind_from_name(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++)
    if (strlen(pre_names[i].name) == len && !memcmp(pre_names[i].name, name, len)) return pre_names[i].kind;
  return -1;
}

const char *ls_pre_kind_name(int pre) {
  switch (pre) {
    case LS_PRE_GPT2: return "gpt-2";
    case LS_PRE_LLAMA3: return "llama-bpe";
    case LS_PRE_QWEN2: return "qwen2";
    case LS_PRE_SMOLLM: return "smollm";
    default: return "default";
  }
}

void ls_bpe_free(ls_bpe *b) {
  if (!b) return;
  free(b->tok_len);
  free(b->tok_slot);
  free(b->merge_slot);
  free(b->merge_split);
  free(b->special);
  free(b->piece_text);
  free(b->piece_off);
  free(b->cps);
  free(b->seg_a);
  free(b->seg_b);
  free(b->frag);
  free(b->frag2);
  free(b->word);
  free(b->sym_start);
  free(b->sym_len);
  free(b->sym_prev);
  free(b->sym_next);
  free(b->heap);
  free(b);
}

int ls_bpe_new(const ls_vocab *v, ls_bpe **out, ls_err *err) {
  *out = NULL;
  ls_bpe *b = calloc(1, sizeof *b);
  if (!b) return ls_err_set(err, LS_ENOMEM, "out of memory building the BPE tokenizer");
  b->v = v;
  b->pre = v->pre;
  b->ignore_merges = v->pre == LS_PRE_LLAMA3;
  build_byte_map(b);
  for (uint32_t c = 0; c < 128; c++) b->ascii_class[c] = cp_class(c);
  int rc = build_token_table(b, err);
  if (!rc) rc = build_merge_table(b, err);
  if (!rc) rc = build_pieces(b, err);
  if (!rc) rc = build_specials(b, err);
  if (rc) {
    ls_bpe_free(b);
    return rc;
  }
  *out = b;
  return LS_OK;
}

const char *ls_bpe_piece(const ls_bpe *b, int token) {
  if (token < 0 || token >= b->v->n_tokens) return "";
  return b->piece_text + b->piece_off[token];
}

size_t ls_bpe_max_piece(const ls_bpe *b) { return b->max_piece; }

/* ---- work buffers -------------------------------------------------------- */

/* Makes each of the n_arrays arrays (element sizes elem[]) hold need elements;
 * *cap is their shared capacity. */
static int reserve(void **arrays[], const size_t elem[], int n_arrays, size_t *cap, size_t need, ls_err *err) {
  if (need <= *cap) return LS_OK;
  size_t n = *cap ? *cap : 64;
  while (n < need) n *= 2;
  for (int i = 0; i < n_arrays; i++) {
    void *q = realloc(*arrays[i], n * elem[i]);
    if (!q) return ls_err_set(err, LS_ENOMEM, "out of memory tokenizing");
    *arrays[i] = q;
  }
  *cap = n;
  return LS_OK;
}

/* ---- pre-tokenizers ------------------------------------------------------ */

/* A segment list is an array of lengths (in code points) covering the text in
 * order; each stage splits every segment of the previous stage on its own. */
typedef struct split_ctx {
  const ls_bpe *b;
  const uint32_t *cp;
  int a, end; /* the segment being split: [a, end) */
  int prev;   /* end of the last piece emitted */
  int *out;
  int n_out;
} split_ctx;

static unsigned cls(const split_ctx *s, int p) {
  if (p < s->a || p >= s->end) return 0;
  uint32_t c = s->cp[p];
  return c < 128 ? s->b->ascii_class[c] : cp_class(c);
}

static int in_seg(const split_ctx *s, int p) { return p >= s->a && p < s->end; }

/* Emits the piece [prev, p) if it is not empty. */
static void cut(split_ctx *s, int p) {
  if (p > s->prev) s->out[s->n_out++] = p - s->prev;
  s->prev = p;
}

static uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd at p: its length, or 0. */
static int contraction(const split_ctx *s, int p, int any_case) {
  if (s->cp[p] != '\'' || !in_seg(s, p + 1)) return 0;
  uint32_t c1 = s->cp[p + 1];
  if (any_case) c1 = lower_ascii(c1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (!in_seg(s, p + 2)) return 0;
  uint32_t c2 = s->cp[p + 2];
  if (any_case) c2 = lower_ascii(c2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

/* \s+(?!\S)|\s+ (and, with newlines set, \s*[\r\n]+ first) at p: the end. */
static int space_run_end(const split_ctx *s, int p, int newlines) {
  int w = 0, after_nl = -1;
  while (cls(s, p + w) & C_SPACE) {
    if (newlines && (s->cp[p + w] == '\r' || s->cp[p + w] == '\n')) after_nl = p + w + 1;
    w++;
  }
  if (after_nl >= 0) return after_nl;
  if (w > 1 && in_seg(s, p + w)) return p + w - 1; /* leave the last space to the next word */
  return p + (w > 0 ? w : 1);
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(split_ctx *s) {
  int p = s->a;
  while (p < s->end) {
    int k = contraction(s, p, 0);
    if (k) {
      cut(s, p += k);
      continue;
    }
    int q = s->cp[p] == ' ' ? p + 1 : p; /* the optional leading space */
    unsigned f = cls(s, q);
    if (f & (C_LETTER | C_NUMBER)) {
      unsigned want = f & C_LETTER ? C_LETTER : C_NUMBER;
      p = q;
      while (cls(s, p) & want) p++;
    } else if (in_seg(s, q) && !(f & C_SPACE)) {
      p = q;
      while (in_seg(s, p) && !(cls(s, p) & (C_SPACE | C_LETTER | C_NUMBER))) p++;
    } else {
      p = space_run_end(s, p, 0);
    }
    cut(s, p);
  }
}

/* Llama 3 (max_digits 3) and Qwen2 (max_digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(split_ctx *s, int max_digits) {
  int p = s->a;
  while (p < s->end) {
    uint32_t c = s->cp[p];
    unsigned f = cls(s, p);
    int k = contraction(s, p, 1);
    if (k) {
      cut(s, p += k);
      continue;
    }
    if (c != '\r' && c != '\n' && !(f & C_NUMBER) && ((f & C_LETTER) || (cls(s, p + 1) & C_LETTER))) {
      p++; /* one non-letter prefix, or the first letter */
      while (cls(s, p) & C_LETTER) p++;
      cut(s, p);
      continue;
    }
    if (f & C_NUMBER) {
      int start = p;
      while (cls(s, p) & C_NUMBER) {
        if (++p - start >= max_digits) {
          cut(s, p);
          start = p;
        }
      }
      cut(s, p);
      continue;
    }
    int q = c == ' ' ? p + 1 : p;
    if (!(cls(s, q) & (C_SPACE | C_LETTER | C_NUMBER))) {
      p = q;
      while (in_seg(s, p) && !(cls(s, p) & (C_SPACE | C_LETTER | C_NUMBER))) p++;
      while (in_seg(s, p) && (s->cp[p] == '\r' || s->cp[p] == '\n')) p++;
      cut(s, p);
      continue;
    }
    cut(s, p = space_run_end(s, p, 1));
  }
}

/* Splitters for one-class regexes: the match at p (its length, 0 if none);
 * text between matches stays one piece. */
static int match_number(const split_ctx *s, int p) { return (cls(s, p) & C_NUMBER) ? 1 : 0; }

static int match_number_run(const split_ctx *s, int p) {
  int q = p;
  while (cls(s, q) & C_NUMBER) q++;
  return q - p;
}

static int is_default_punct(const split_ctx *s, int p) {
  if (!in_seg(s, p)) return 0;
  uint32_t c = s->cp[p];
  return (cls(s, p) & C_PUNCT) || (c != 0 && c < 128 && strchr("$+<=>^~|", (int)c));
}

static int match_punct_run(const split_ctx *s, int p) { /* [\p{P}\$\+<=>\^~\|]+ */
  int q = p;
  while (is_default_punct(s, q)) q++;
  return q - p;
}

static int is_ascii_digit(const split_ctx *s, int p) { return in_seg(s, p) && s->cp[p] >= '0' && s->cp[p] <= '9'; }

static int match_three_digits(const split_ctx *s, int p) { /* [0-9][0-9][0-9] */
  return is_ascii_digit(s, p) && is_ascii_digit(s, p + 1) && is_ascii_digit(s, p + 2) ? 3 : 0;
}

static void split_matches(split_ctx *s, int (*match)(const split_ctx *, int)) {
  int p = s->a;
  while (p < s->end) {
    int m = match(s, p);
    if (m) {
      cut(s, p);
      cut(s, p += m);
    } else {
      p++;
    }
  }
  cut(s, s->end);
}

typedef enum { S_GPT2, S_LLAMA3, S_QWEN2, S_NUMBER, S_NUMBER_RUN, S_PUNCT_RUN, S_THREE_DIGITS } split_kind;

/* The regex stages of each pre-tokenizer, as llama.cpp lists them. */
static int pre_stages(int pre, split_kind *st) {
  switch (pre) {
    case LS_PRE_GPT2: st[0] = S_GPT2; return 1;
    case LS_PRE_LLAMA3: st[0] = S_LLAMA3; return 1;
    case LS_PRE_QWEN2: st[0] = S_QWEN2; return 1;
    case LS_PRE_SMOLLM: st[0] = S_NUMBER; st[1] = S_GPT2; return 2;
    default:
      st[0] = S_PUNCT_RUN;
      st[1] = S_GPT2;
      st[2] = S_NUMBER_RUN;
      st[3] = S_THREE_DIGITS;
      return 4;
  }
}

static void run_stage(split_ctx *s, split_kind k) {
  switch (k) {
    case S_GPT2: split_gpt2(s); break;
    case S_LLAMA3: split_llama3(s, 3); break;
    case S_QWEN2: split_llama3(s, 1); break;
    case S_NUMBER: split_matches(s, match_number); break;
    case S_NUMBER_RUN: split_matches(s, match_number_run); break;
    case S_PUNCT_RUN: split_matches(s, match_punct_run); break;
    case S_THREE_DIGITS: split_matches(s, match_three_digits); break;
  }
}

/* Splits cps[0, n) into pieces; returns the piece lengths in *segs. */
static int pre_tokenize(ls_bpe *b, int n, int **segs, int *n_segs) {
  split_kind st[4];
  int n_st = pre_stages(b->pre, st);
  int *in = b->seg_a, *out = b->seg_b, n_in = 1;
  in[0] = n;
  for (int k = 0; k < n_st; k++) {
    split_ctx s = {.b = b, .cp = b->cps, .out = out};
    int at = 0;
    for (int i = 0; i < n_in; i++) {
      s.a = s.prev = at;
      s.end = at + in[i];
      run_stage(&s, st[k]);
      at = s.end;
    }
    int *t = in;
    in = out;
    out = t;
    n_in = s.n_out;
  }
  *segs = in;
  *n_segs = n_in;
  return LS_OK;
}

/* ---- merging ------------------------------------------------------------- */

typedef struct emit_ctx {
  int *tokens;
  int max_tokens;
  int n;
} emit_ctx;

static void emit(emit_ctx *e, int id) {
  if (e->n < e->max_tokens) e->tokens[e->n] = id;
  e->n++;
}

static int pair_before(const void *a, const void *b) {
  const struct pair *x = a, *y = b;
  return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void try_pair(ls_bpe *b, int *n_heap, int left, int right) {
  if (left < 0 || right < 0) return;
  const char *w = b->word;
  int rank = merge_rank(b, w + b->sym_start[left], (size_t)b->sym_len[left], w + b->sym_start[right],
                        (size_t)b->sym_len[right]);
  if (rank < 0) return;
  struct pair p = {rank, left, b->sym_len[left], b->sym_len[right]};
  ls_heap_push(b->heap, n_heap, sizeof p, &p, pair_before);
}

static size_t utf8_len(uint8_t c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1; }

/* Merges one byte-mapped word of len bytes and emits its tokens. */
static int merge_word(ls_bpe *b, size_t len, emit_ctx *e, ls_err *err) {
  const char *w = b->word;
  if (b->ignore_merges) {
    int id = ls_bpe_lookup(b, w, len);
    if (id >= 0) {
      emit(e, id);
      return LS_OK;
    }
  }
  void **sym[] = {(void **)&b->sym_start, (void **)&b->sym_len, (void **)&b->sym_prev, (void **)&b->sym_next};
  const size_t sym_elem[] = {sizeof(int), sizeof(int), sizeof(int), sizeof(int)};
  LS_TRY(reserve(sym, sym_elem, 4, &b->cap_sym, len, err));
  int m = 0;
  for (size_t at = 0; at < len; m++) {
    size_t n = utf8_len((uint8_t)w[at]);
    if (n > len - at) n = len - at;
    b->sym_start[m] = (int)at;
    b->sym_len[m] = (int)n;
    b->sym_prev[m] = m - 1;
    at += n;
    b->sym_next[m] = at == len ? -1 : m + 1;
  }
  /* each merge adds at most two candidate pairs */
  void **heap[] = {(void **)&b->heap};
  const size_t heap_elem[] = {sizeof *b->heap};
  LS_TRY(reserve(heap, heap_elem, 1, &b->cap_heap, 3 * (size_t)m + 1, err));
  int n_heap = 0;
  for (int i = 1; i < m; i++) try_pair(b, &n_heap, i - 1, i);
  while (n_heap > 0) {
    struct pair p;
    ls_heap_pop(b->heap, &n_heap, sizeof p, &p, pair_before);
    int l = p.left, r = b->sym_next[l];
    if (r < 0 || b->sym_len[l] != p.ln || b->sym_len[r] != p.rn) continue; /* stale */
    b->sym_len[l] += b->sym_len[r];
    b->sym_len[r] = 0;
    b->sym_next[l] = b->sym_next[r];
    if (b->sym_next[r] >= 0) b->sym_prev[b->sym_next[r]] = l;
    try_pair(b, &n_heap, b->sym_prev[l], l);
    try_pair(b, &n_heap, l, b->sym_next[l]);
  }
  for (int i = 0; i >= 0 && m > 0; i = b->sym_next[i]) {
    const char *t = w + b->sym_start[i];
    int id = ls_bpe_lookup(b, t, (size_t)b->sym_len[i]);
    if (id >= 0) {
      emit(e, id);
      continue;
    }
    for (int k = 0; k < b->sym_len[i]; k++) { /* single bytes that are tokens */
      int bid = ls_bpe_lookup(b, t + k, 1);
      if (bid >= 0) emit(e, bid);
    }
  }
  return LS_OK;
}

/* Tokenizes one fragment of text without special tokens. */
static int encode_raw(ls_bpe *b, const char *text, size_t len, emit_ctx *e, ls_err *err) {
  void **cp[] = {(void **)&b->cps, (void **)&b->seg_a, (void **)&b->seg_b};
  const size_t cp_elem[] = {sizeof *b->cps, sizeof(int), sizeof(int)};
  LS_TRY(reserve(cp, cp_elem, 3, &b->cap_cps, len + 1, err));
  int n = 0;
  for (size_t i = 0; i < len;) b->cps[n++] = utf8_next((const uint8_t *)text, len, &i);
  int *segs, n_segs;
  LS_TRY(pre_tokenize(b, n, &segs, &n_segs));
  int at = 0;
  for (int s = 0; s < n_segs; s++) {
    /* a code point is at most 4 UTF-8 bytes, each mapped to at most 2 */
    void **word[] = {(void **)&b->word};
    const size_t word_elem[] = {1};
    LS_TRY(reserve(word, word_elem, 1, &b->cap_word, 8 * (size_t)segs[s] + 1, err));
    size_t wl = 0;
    for (int k = at; k < at + segs[s]; k++) {
      char u[4];
      int ul = utf8_put(b->cps[k], u);
      for (int j = 0; j < ul; j++) {
        const char *m = b->byte_cp[(uint8_t)u[j]];
        while (*m) b->word[wl++] = *m++;
      }
    }
    at += segs[s];
    LS_TRY(merge_word(b, wl, e, err));
  }
  return LS_OK;
}

/* ---- special-token partition -------------------------------------------- */

static const char *find_text(const char *hay, size_t n, const char *needle, size_t m) {
  if (m == 0 || m > n) return NULL;
  const char *end = hay + n - m;
  for (const char *p = hay; p <= end; p++) {
    p = memchr(p, needle[0], (size_t)(end - p) + 1);
    if (!p) return NULL;
    if (!memcmp(p, needle, m)) return p;
  }
  return NULL;
}

/* Occurrences of tok in the raw fragments frag[0, n). */
static int count_hits(const ls_bpe *b, const char *text, int n, const char *tok, size_t tl) {
  int hits = 0;
  for (int f = 0; f < n; f++) {
    const int *fr = b->frag + 3 * f;
    if (fr[2] >= 0) continue;
    const char *p = text + fr[0], *end = p + fr[1], *hit;
    while ((hit = find_text(p, (size_t)(end - p), tok, tl))) {
      hits++;
      p = hit + tl;
    }
  }
  return hits;
}

/* Fragments are (start, len, token) triples; token -1 is raw text. For each
 * special token, longest first, every raw fragment is split at each
 * occurrence (k occurrences add at most 2k fragments). Leaves the fragments
 * in b->frag[0, *n_frag). */
static int partition(ls_bpe *b, const char *text, size_t len, int *n_frag, ls_err *err) {
  void **frag[] = {(void **)&b->frag, (void **)&b->frag2};
  const size_t frag_elem[] = {3 * sizeof(int), 3 * sizeof(int)};
  LS_TRY(reserve(frag, frag_elem, 2, &b->cap_frag, 1, err));
  int n = 0;
  if (len > 0) {
    b->frag[0] = 0;
    b->frag[1] = (int)len;
    b->frag[2] = -1;
    n = 1;
  }
  for (int s = 0; s < b->n_special; s++) {
    int id = b->special[s];
    const char *tok = b->v->tokens[id];
    size_t tl = b->tok_len[id];
    int hits = count_hits(b, text, n, tok, tl);
    if (!hits) continue;
    LS_TRY(reserve(frag, frag_elem, 2, &b->cap_frag, (size_t)n + 2 * (size_t)hits, err));
    int m = 0, *in = b->frag, *out = b->frag2;
    for (int f = 0; f < n; f++) {
      int start = in[3 * f], flen = in[3 * f + 1], ftok = in[3 * f + 2];
      const char *hit;
      while (ftok < 0 && flen > 0 && (hit = find_text(text + start, (size_t)flen, tok, tl))) {
        int off = (int)(hit - text);
        if (off > start) {
          out[3 * m] = start, out[3 * m + 1] = off - start, out[3 * m + 2] = -1;
          m++;
        }
        out[3 * m] = off, out[3 * m + 1] = (int)tl, out[3 * m + 2] = id;
        m++;
        flen -= off + (int)tl - start;
        start = off + (int)tl;
      }
      if (flen > 0) {
        out[3 * m] = start, out[3 * m + 1] = flen, out[3 * m + 2] = ftok;
        m++;
      }
    }
    b->frag = out;
    b->frag2 = in;
    n = m;
  }
  *n_frag = n;
  return LS_OK;
}

int ls_bpe_encode(ls_bpe *b, const char *text, int add_special, int *tokens, int max_tokens, int *n_tokens,
                  ls_err *err) {
  const ls_vocab *v = b->v;
  size_t len = strlen(text);
  if (len > LS_TOKENIZE_MAX_BYTES)
    return ls_err_set(err, LS_EINVAL, "text of %zu bytes is longer than the tokenizer's limit of %d bytes", len,
                      LS_TOKENIZE_MAX_BYTES);
  emit_ctx e = {tokens, max_tokens, 0};
  if (add_special && v->add_bos && v->bos_id >= 0) emit(&e, v->bos_id);
  int n_frag;
  LS_TRY(partition(b, text, len, &n_frag, err));
  for (int f = 0; f < n_frag; f++) {
    const int *fr = b->frag + 3 * f;
    if (fr[2] >= 0) emit(&e, fr[2]);
    else LS_TRY(encode_raw(b, text + fr[0], (size_t)fr[1], &e, err));
  }
  if (add_special && v->add_eos && v->eos_id >= 0) emit(&e, v->eos_id);
  if (e.n > max_tokens)
    return ls_err_set(err, LS_EINVAL, "prompt needs %d tokens but at most %d fit", e.n, max_tokens);
  *n_tokens = e.n;
  return LS_OK;
}
