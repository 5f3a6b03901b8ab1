/* Tokenization of arbitrary bytes with the bundled vocabularies: SentencePiece
 * (stories260K's tok512.bin, the llama 2 tokenizer.bin, the vocabulary of the
 * tiny llama.cpp GGUF) and byte-level BPE (llama.cpp's gpt-2 and qwen2
 * vocabulary files in tests/data/tokenizer: two pre-tokenizers; the larger
 * llama-bpe file would make the replay slow). The first input byte picks
 * the vocabulary (bits 0-2, modulo 5) and BOS (bit 3); the rest, up to a NUL,
 * is the text.
 * tok512's tokenizer is built afresh for every input (it is small), so that
 * paths taken only by a tokenizer's first call are fuzzed too.
 *
 * Property: every byte has a token in these vocabularies (<0xNN> byte tokens,
 * or BPE's byte alphabet), so decoding the tokens gives back the text exactly
 * (after the SentencePiece space prefix, which the first piece after BOS
 * drops). SentencePiece never makes a control token from text; BPE does for
 * special-token text (as llama.cpp does), and such a text is not compared;
 * nor is invalid UTF-8 under BPE, which becomes U+FFFD (as in llama.cpp). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_model.h"
#include "ls_tokenizer.h"

#define N_VOCABS 5

static ls_vocab vocabs[N_VOCABS];
static ls_model gguf_model;
static ls_tokenizer toks[N_VOCABS];
static int ready;

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static int valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i], len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > n) return 0;
    unsigned cp = len == 1 ? c : c & (0x7F >> len);
    for (unsigned k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += len;
  }
  return 1;
}

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
  static const char *const bpe[] = {"gpt-2", "qwen2"};
  for (int i = 0; i < 2; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/tokenizer/ggml-vocab-%s.gguf", bpe[i]);
    if (ls_vocab_load_gguf(&vocabs[3 + i], fz_source(rel), &err)) die(&err);
  }
  for (int i = 0; i < N_VOCABS; i++)
    if (ls_tokenizer_init(&toks[i], &vocabs[i], &err)) die(&err);
  ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) setup();
  fz_in in = {data, size};
  uint8_t sel = fz_u8(&in);
  int which = (sel & 7) % N_VOCABS;
  ls_tokenizer fresh, *t = &toks[which];
  ls_err err;
  if (which == 0) {
    /* tok512's tokenizer is cheap to build: a fresh one per input exercises first-use paths (no buffers yet) */
    if (ls_tokenizer_init(&fresh, &vocabs[0], &err)) die(&err);
    t = &fresh;
  }
  const ls_vocab *v = t->vocab;
  int bos = (sel >> 3) & 1;
  int sp = t->kind == LS_VOCAB_SPM;
  size_t len;
  const uint8_t *p = fz_until_nul(&in, &len);
  char *text = fz_cstr(p, len);
  int max = (int)len + 8, n = 0;
  int *ids = malloc((size_t)max * sizeof *ids);
  size_t back_cap = 3 * len + 8; /* BPE: an invalid byte decodes as U+FFFD (3 bytes) */
  char *back = malloc(back_cap);
  if (!ids || !back) abort();
  int rc = ls_tokenize(t, text, bos, ids, max, &n, &err);
  FZ_ASSERT(rc == LS_OK, "tokenize %zu bytes: %s", len, err.msg);
  FZ_ASSERT(n <= (int)len + 2, "%d tokens for %zu bytes", n, len);
  /* expected: the space prefix, then the text */
  int space = sp && len > 0 && v->add_space_prefix && ls_token_lookup(t, " ") >= 0;
  int special = 0; /* BPE: special-token text became a special token */
  int compare = sp || valid_utf8(p, len);
  size_t o = 0;
  int first = 0;
  if (n > 0 && bos && v->add_bos && ids[0] == v->bos_id) first = 1;
  if (!sp && n > first && bos && v->add_eos && ids[n - 1] == v->eos_id) n--; /* BPE's EOS last */
  for (int i = 0; i < n; i++) {
    FZ_ASSERT(ids[i] >= 0 && ids[i] < v->n_tokens, "token id %d of %d", ids[i], v->n_tokens);
    if (i < first) continue;
    int type = v->types ? v->types[ids[i]] : LS_TOK_NORMAL;
    if (!sp && (type == LS_TOK_CONTROL || type == LS_TOK_USER || type == LS_TOK_UNKNOWN)) special = 1;
    else
      FZ_ASSERT(type != LS_TOK_CONTROL && type != LS_TOK_UNKNOWN, "text tokenized to control/unknown token %d \"%s\"",
                ids[i], v->tokens[ids[i]]);
    const char *piece = ls_token_piece(t, i ? ids[i - 1] : -1, ids[i]);
    size_t k = strlen(piece);
    if (i == first && first == 1 && space) space = 0; /* the piece after BOS drops the prefix */
    if (special) continue;
    FZ_ASSERT(o + k < back_cap, "decoded text much longer than the input");
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
  if (compare && !special) FZ_ASSERT(strcmp(got, want) == 0, "round trip: \"%s\" decoded as \"%s\"", want, got);
  if (which == 0) ls_tokenizer_free(&fresh);
  free(text);
  free(ids);
  free(back);
  return 0;
}
