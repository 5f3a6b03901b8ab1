/* llama2.c's tokenizer.bin: the first two input bytes are the model's
 * vocabulary size (1..4096), the rest is the file. A loaded vocabulary builds
 * a tokenizer that encodes and decodes a few fixed texts. */
#include <string.h>

#include "fuzz_common.h"
#include "ls_model.h"
#include "ls_tokenizer.h"

/* (the empty text on a tokenizer's first call is fuzz_tokenize's concern) */
static const char *const texts[] = {"Once upon a time, there was a cat.", " ", "", "", "a\xff\xfe\x80 \xe2\x82",
                                    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 <s></s><unk>"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_in in = {data, size};
  int vocab_size = 1 + fz_u16(&in) % 4096;
  const char *path = fz_write("tokenizer.bin", in.p, in.n);
  ls_vocab v;
  ls_err err;
  int rc = ls_vocab_load_tokenizer_bin(&v, path, vocab_size, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return 0;
  }
  FZ_ASSERT(v.n_tokens == vocab_size, "%d tokens for vocab size %d", v.n_tokens, vocab_size);
  ls_tokenizer t;
  if (ls_tokenizer_init(&t, &v, &err) == LS_OK) {
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
      int toks[128], n = 0;
      if (ls_tokenize(&t, texts[k], (int)(k & 1), toks, 128, &n, &err) != LS_OK) continue;
      for (int i = 0; i < n; i++) {
        FZ_ASSERT(toks[i] >= 0 && toks[i] < v.n_tokens, "token id %d of %d", toks[i], v.n_tokens);
        (void)strlen(ls_token_piece(&t, i ? toks[i - 1] : -1, toks[i]));
      }
    }
    ls_tokenizer_free(&t);
  }
  ls_vocab_free(&v);
  return 0;
}
