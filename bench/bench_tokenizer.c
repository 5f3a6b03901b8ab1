/* Tokenizer benchmark: how long ls_tokenize takes for prompts of growing size
 * cut from a text file (default: the bundled TinyStories corpus, repeated to
 * the size), with a tokenizer.bin vocabulary; and how long refusing a prompt
 * that cannot fit a context of --ctx tokens takes.
 *
 * Prints one machine-readable row per size, tab-separated key=value:
 *   bench=tokenizer what=encode|refuse vocab= bytes= tokens= ms=
 * ms is the best of --reps runs (wall clock).
 *
 * usage: bench_tokenizer [--vocab tokenizer.bin --vocab-size N] [--text FILE]
 *                        [--sizes 1024,20480,...] [--ctx N] [--reps N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_model.h"
#include "ls_tokenizer.h"
#include "ls_util.h"

static double best_ms(ls_tokenizer *t, const char *text, int *toks, int cap, int reps, int *n, int *rc) {
  double best = 1e300;
  for (int r = 0; r < reps; r++) {
    ls_err err = {0};
    double t0 = ls_now_ms();
    *rc = ls_tokenize(t, text, 1, toks, cap, n, &err);
    double ms = ls_now_ms() - t0;
    if (ms < best) best = ms;
  }
  return best;
}

int main(int argc, char **argv) {
  const char *vocab_path = "data/models/llama2-tokenizer/tokenizer.bin", *text_path =
                               "data/corpora/tinystories_val_subset.txt";
  const char *sizes_arg = "1024,4096,20480,131072,1048576";
  int vocab_size = 32000, ctx = 2048, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--vocab")) vocab_path = argv[i + 1];
    else if (!strcmp(argv[i], "--vocab-size")) vocab_size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--text")) text_path = argv[i + 1];
    else if (!strcmp(argv[i], "--sizes")) sizes_arg = argv[i + 1];
    else if (!strcmp(argv[i], "--ctx")) ctx = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "bench_tokenizer: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  ls_err err = {0};
  ls_vocab v = {0};
  ls_tokenizer t;
  char *src = NULL;
  size_t src_len = 0;
  if (ls_vocab_load_tokenizer_bin(&v, vocab_path, vocab_size, &err) || ls_tokenizer_init(&t, &v, &err) ||
      ls_read_file(text_path, &src, &src_len, &err)) {
    fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
    return 1;
  }
  if (src_len == 0 || reps < 1 || ctx < 1) return 2;
  for (const char *s = sizes_arg; *s;) {
    char *end;
    size_t bytes = strtoul(s, &end, 10);
    if (end == s || bytes == 0) {
      fprintf(stderr, "bench_tokenizer: --sizes '%s': expected N,N,...\n", sizes_arg);
      return 2;
    }
    s = *end == ',' ? end + 1 : end;
    char *text = malloc(bytes + 1);
    int *toks = malloc((bytes + 2) * sizeof *toks);
    if (!text || !toks) return 1;
    for (size_t k = 0; k < bytes; k++) text[k] = src[k % src_len] ? src[k % src_len] : ' ';
    text[bytes] = '\0';
    int n = 0, rc;
    double ms = best_ms(&t, text, toks, (int)bytes + 2, reps, &n, &rc);
    printf("bench=tokenizer\twhat=encode\tvocab=%d\tbytes=%zu\ttokens=%d\tms=%.3f\trc=%d\n", v.n_tokens, bytes, n, ms,
           rc);
    ms = best_ms(&t, text, toks, ctx, reps, &n, &rc);
    printf("bench=tokenizer\twhat=refuse\tvocab=%d\tbytes=%zu\tctx=%d\tms=%.3f\trefused=%d\n", v.n_tokens, bytes, ctx,
           ms, rc != LS_OK);
    fflush(stdout);
    free(text);
    free(toks);
  }
  free(src);
  ls_tokenizer_free(&t);
  ls_vocab_free(&v);
  return 0;
}
