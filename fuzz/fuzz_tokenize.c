/* Tokenization of arbitrary bytes with the bundled vocabularies: stories260K's
 * tok512.bin (512 tokens), the llama 2 tokenizer.bin (32000) and the
 * vocabulary embedded in the tiny llama.cpp GGUF. The first input byte picks
 * the vocabulary (bits 0-1) and BOS (bit 2); the rest, up to a NUL, is the text.
 * tok512's tokenizer is built afresh for every input (it is small), so that
 * paths taken only by a tokenizer's first call are fuzzed too.
 *
 * Property: every byte has a <0xNN> token in these vocabularies, so decoding
 * the tokens gives back the text exactly (after the SentencePiece space
 * prefix, which the first piece after BOS drops), and no token is a control
 * token that text could never spell. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_model.h"
#include "ls_tokenizer.h"

#define N_VOCABS 3

static ls_vocab vocabs[N_VOCABS];
static ls_model gguf_model;
static ls_tokenizer toks[N_VOCABS];
static int ready;

static void die(const ls_err *err) {
  fprintf(stderr, "fuzz_tokenize: %s\n", err->msg);
  abort();
}

static void setup(void) {
  ls_err err;
  if (ls_vocab_load_tokenizer_bin(&vocabs[0], fz_data("models/stories260K/tok512.bin"), 512, &err)) die(&err);
  if (ls_vocab_load_tokenizer_bin(&vocabs[1], fz_data("models/llama2-tokenizer/tokenizer.bin"), 32000, &err))
    die(&err);
  if (ls_model_load(&gguf_model, fz_data("models/tiny-random-gguf/llama-2-tiny-random.gguf"), NULL, &err)) die(&err);
  vocabs[2] = gguf_model.vocab;
  for (int i = 0; i < N_VOCABS; i++)
    if (ls_tokenizer_init(&toks[i], &vocabs[i], &err)) die(&err);
  ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) setup();
  fz_in in = {data, size};
  uint8_t sel = fz_u8(&in);
  int which = (sel & 3) % N_VOCABS;
  ls_tokenizer fresh, *t = &toks[which];
  ls_err err;
  if (which == 0) {
    /* tok512's tokenizer is cheap to build: a fresh one per input exercises first-use paths (no buffers yet) */
    if (ls_tokenizer_init(&fresh, &vocabs[0], &err)) die(&err);
    t = &fresh;
  }
  const ls_vocab *v = t->vocab;
  int bos = (sel >> 2) & 1;
  size_t len;
  const uint8_t *p = fz_until_nul(&in, &len);
  char *text = fz_cstr(p, len);
  int max = (int)len + 8, n = 0;
  int *ids = malloc((size_t)max * sizeof *ids);
  char *back = malloc(len + 2);
  if (!ids || !back) abort();
  int rc = ls_tokenize(t, text, bos, ids, max, &n, &err);
  FZ_ASSERT(rc == LS_OK, "tokenize %zu bytes: %s", len, err.msg);
  FZ_ASSERT(n <= (int)len + 2, "%d tokens for %zu bytes", n, len);
  /* expected: the space prefix, then the text */
  int space = len > 0 && v->add_space_prefix && ls_token_lookup(t, " ") >= 0;
  size_t o = 0;
  int first = 0;
  if (n > 0 && bos && v->add_bos && ids[0] == v->bos_id) first = 1;
  for (int i = 0; i < n; i++) {
    FZ_ASSERT(ids[i] >= 0 && ids[i] < v->n_tokens, "token id %d of %d", ids[i], v->n_tokens);
    if (i < first) continue;
    FZ_ASSERT(v->types[ids[i]] != LS_TOK_CONTROL && v->types[ids[i]] != LS_TOK_UNKNOWN,
              "text tokenized to control/unknown token %d \"%s\"", ids[i], v->tokens[ids[i]]);
    const char *piece = ls_token_piece(t, i ? ids[i - 1] : -1, ids[i]);
    size_t k = strlen(piece);
    if (i == first && first == 1 && space) space = 0; /* the piece after BOS drops the prefix */
    FZ_ASSERT(o + k <= len + 1, "decoded text longer than the input");
    memcpy(back + o, piece, k);
    o += k;
  }
  back[o] = '\0';
  const char *want = text;
  const char *got = back;
  if (space) {
    FZ_ASSERT(got[0] == ' ', "space prefix missing");
    got++;
  } else if (first && want[0] == ' ' && got[0] != ' ') {
    want++; /* a text that starts with a space after BOS: that space is dropped as the prefix would be */
  }
  FZ_ASSERT(strcmp(got, want) == 0, "round trip: \"%s\" decoded as \"%s\"", want, got);
  if (which == 0) ls_tokenizer_free(&fresh);
  free(text);
  free(ids);
  free(back);
  return 0;
}
