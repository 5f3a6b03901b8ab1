/* llama_ids: token ids from llama.cpp's tokenizer (libllama's llama_tokenize,
 * the call llama-tokenize makes) for many strings at once, for make_expected.py.
 *
 *   llama_ids VOCAB.gguf < CASES > IDS
 * CASES: one string per line as hex. IDS: per case two lines, add_special 1
 * then 0: "ADD<TAB>id id id". Special-token text is parsed (parse_special). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
  (void)ud;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: llama_ids VOCAB.gguf < CASES\n");
    return 2;
  }
  llama_log_set(quiet, NULL);
  ggml_backend_load_all_from_path(getenv("GGML_BACKEND_DIR"));
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  struct llama_model *model = llama_model_load_from_file(argv[1], mp);
  if (!model) return 1;
  const struct llama_vocab *vocab = llama_model_get_vocab(model);
  static char line[65536], text[32768];
  static llama_token ids[32768];
  while (fgets(line, sizeof line, stdin)) {
    size_t n = strcspn(line, "\n") / 2;
    for (size_t i = 0; i < n; i++) {
      unsigned v;
      sscanf(line + 2 * i, "%2x", &v);
      text[i] = (char)v;
    }
    for (int add = 1; add >= 0; add--) {
      int k = llama_tokenize(vocab, text, (int)n, ids, 32768, add, true);
      if (k < 0) return 1;
      printf("%d\t", add);
      for (int i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
      printf("\n");
    }
  }
  llama_model_free(model);
  return 0;
}
