/* One tokenizer interface over two kinds, picked at init from the vocabulary:
 *
 * - SentencePiece (GGUF tokenizer.ggml.model "llama", llama2.c tokenizer.bin),
 *   llama2.c's algorithm (tokenizer.c): text is split into UTF-8 code points,
 *   each looked up in the vocabulary (bytes as <0xNN> tokens when a code point
 *   is missing), then the adjacent pair with the highest merge score (the
 *   leftmost among equal scores) is merged until no pair is in the vocabulary;
 *   the candidate pairs sit in a priority queue over a linked list of tokens,
 *   O(n log n) in the text's length, with exactly the tokens of llama2.c's
 *   quadratic rescan (tests/text/test_tokenizer.c keeps it as the reference).
 * - byte-level BPE (GGUF "gpt2"; bpe.c): special-token text is cut out first,
 *   the rest is split by the model's pre-tokenizer, each piece's bytes are
 *   mapped to printable code points (GPT-2's byte-to-unicode table) and merged
 *   by merge rank. Matches llama.cpp's tokenizer (tests/text/test_bpe.c). */
#ifndef LS_TOKENIZER_H
#define LS_TOKENIZER_H

#include "ls_error.h"
#include "ls_model.h"

/* Longest text ls_tokenize accepts, in bytes (1 MiB, some 250k tokens):
 * prompts are bounded by the context anyway, and the BPE work buffers grow
 * with the text (about 12 bytes per input byte, plus 48 per code point of the
 * longest pre-tokenizer piece). */
#define LS_TOKENIZE_MAX_BYTES (1 << 20)

typedef struct ls_bpe ls_bpe; /* bpe.c */

typedef struct ls_tokenizer {
  const ls_vocab *vocab;  /* not owned */
  int kind;               /* ls_vocab_kind */
  size_t max_piece;       /* longest text ls_token_piece can return */
  /* SentencePiece */
  int *sorted;            /* [n_tokens] ids sorted by token text, for lookup */
  int byte_id[256];       /* id of <0xNN>, or -1 */
  char byte_piece[256][2];/* one-byte strings returned when decoding byte tokens */
  char *scratch;          /* merge candidate buffer */
  size_t scratch_cap;     /* 2 * longest token + 8 */
  int *work;              /* [work_cap] token ids during encoding */
  int work_cap;
  /* byte-level BPE */
  ls_bpe *bpe;
  /* SentencePiece merging */
  int max_token_bytes;    /* text bytes one token can stand for at most (0: no bound known) */
  struct ls_merge_node *nodes; /* [merge_cap] linked list of the tokens being merged */
  struct ls_merge_cand *heap;  /* [3 * merge_cap] candidate pairs, best first */
  int merge_cap;
} ls_tokenizer;

int ls_tokenizer_init(ls_tokenizer *t, const ls_vocab *v, ls_err *err);
void ls_tokenizer_free(ls_tokenizer *t);

/* Encodes text into at most max_tokens ids. add_special: add BOS first (and,
 * for BPE vocabularies that ask for it, EOS last) when the vocabulary asks for
 * them. Special-token text in the input (BPE: control, user-defined and
 * unknown tokens) becomes that token, as llama.cpp does with parse_special.
 * Fails with LS_EINVAL if the text is longer than LS_TOKENIZE_MAX_BYTES or
 * needs more than max_tokens ids; with SentencePiece, a text that cannot fit
 * whatever the merges do (more bytes than max_tokens times the longest token)
 * is refused before any work. */
int ls_tokenize(ls_tokenizer *t, const char *text, int add_special, int *tokens, int max_tokens, int *n_tokens,
                ls_err *err);

/* The text a token adds after prev: SentencePiece byte tokens become their
 * byte, the leading space after BOS is dropped (as llama2.c does); BPE tokens
 * are mapped back to their bytes; control tokens are "". */
const char *ls_token_piece(const ls_tokenizer *t, int prev, int token);

/* Id of a token text (as the vocabulary spells it), or -1. */
int ls_token_lookup(const ls_tokenizer *t, const char *text);

/* Byte-level BPE (bpe.c), used through the functions above. */
int ls_bpe_new(const ls_vocab *v, ls_bpe **out, ls_err *err);
void ls_bpe_free(ls_bpe *b);
int ls_bpe_encode(ls_bpe *b, const char *text, int add_special, int *tokens, int max_tokens, int *n_tokens,
                  ls_err *err);
const char *ls_bpe_piece(const ls_bpe *b, int token);
int ls_bpe_lookup(const ls_bpe *b, const char *text, size_t len);
size_t ls_bpe_max_piece(const ls_bpe *b);

/* Names of a pre-tokenizer kind, and the kind of a tokenizer.ggml.pre value
 * (-1 if unsupported). */
const char *ls_pre_kind_name(int pre);
int ls_pre_kind_from_name(const char *name, size_t len);

#endif
