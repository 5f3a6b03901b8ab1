/* SentencePiece-style BPE tokenizer (llama2.c's algorithm): text is split into
 * UTF-8 code points, each looked up in the vocabulary (bytes as <0xNN> tokens
 * when a code point is missing), then the adjacent pair with the highest merge
 * score is merged until no pair is in the vocabulary. Works from a tokenizer.bin
 * or a GGUF's embedded vocabulary (both arrive as an ls_vocab). */
#ifndef LS_TOKENIZER_H
#define LS_TOKENIZER_H

#include "ls_error.h"
#include "ls_model.h"

typedef struct ls_tokenizer {
  const ls_vocab *vocab;  /* not owned */
  int *sorted;            /* [n_tokens] ids sorted by token text, for lookup */
  int byte_id[256];       /* id of <0xNN>, or -1 */
  char byte_piece[256][2];/* one-byte strings returned when decoding byte tokens */
  char *scratch;          /* merge candidate buffer */
  size_t scratch_cap;     /* 2 * longest token + 8 */
  int *work;              /* [work_cap] token ids during encoding */
  int work_cap;
} ls_tokenizer;

int ls_tokenizer_init(ls_tokenizer *t, const ls_vocab *v, ls_err *err);
void ls_tokenizer_free(ls_tokenizer *t);

/* Encodes text into at most max_tokens ids (BOS first when the vocabulary asks
 * for it and add_bos is set). Fails with LS_EINVAL if the text needs more. */
int ls_tokenize(ls_tokenizer *t, const char *text, int add_bos, int *tokens, int max_tokens, int *n_tokens,
                ls_err *err);

/* The text a token adds after prev: byte tokens become their byte, the leading
 * space after BOS is dropped (as llama2.c does), control tokens are "". */
const char *ls_token_piece(const ls_tokenizer *t, int prev, int token);

/* Id of a token text, or -1. */
int ls_token_lookup(const ls_tokenizer *t, const char *text);

#endif
