/* litestage-run tokenize: a GGUF's tokenizer (a whole model or a vocab-only
 * file) on a text, printing ids as llama.cpp's llama-tokenize --ids does, or
 * "id -> 'piece'" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ls_cli.h"
#include "ls_model.h"
#include "ls_tokenizer.h"
#include "ls_util.h"

typedef struct {
  const char *model, *prompt, *file;
  int ids, no_bos;
} tokenize_opts;

static tokenize_opts g_opts;

static const ls_opt opts[] = {
    LS_STR("-m|--model", "MODEL", "GGUF model or vocab-only GGUF", &g_opts.model),
    LS_STR("-p|--prompt", "TEXT", "text to tokenize", &g_opts.prompt),
    LS_STR("-f|--file", "FILE", "read the text from a file (its bytes as they are)", &g_opts.file),
    LS_SWITCH("--ids", "print only the ids, as [a, b, ...]", &g_opts.ids),
    LS_SWITCH("--no-bos", "add no BOS/EOS even if the vocabulary asks for them", &g_opts.no_bos),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run tokenize",
    .synopsis = "-m MODEL (-p TEXT | -f FILE) [--ids] [--no-bos]",
    .about = "Tokenizes a text with the GGUF's tokenizer (SentencePiece or byte-level BPE). Special-token\n"
             "text in the input (e.g. <|eot_id|>) becomes the special token.",
    .opts = opts,
};

static int check(void *ctx, ls_err *err) {
  tokenize_opts *o = ctx;
  if (!o->model) return ls_err_set(err, LS_EINVAL, "missing -m MODEL");
  if (!o->prompt == !o->file) return ls_err_set(err, LS_EINVAL, "give one of -p TEXT or -f FILE");
  return LS_OK;
}

static int print_tokens(const char *text, const tokenize_opts *o, ls_tokenizer *t, ls_err *err) {
  int cap = (int)strlen(text) + 4, n = 0;
  int *ids = malloc((size_t)cap * sizeof *ids);
  if (!ids) return ls_err_set(err, LS_ENOMEM, "out of memory");
  int rc = ls_tokenize(t, text, !o->no_bos, ids, cap, &n, err);
  if (!rc && o->ids) {
    printf("[");
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("]\n");
  } else if (!rc) {
    for (int i = 0; i < n; i++) printf("%6d -> '%s'\n", ids[i], ls_token_piece(t, i ? ids[i - 1] : -1, ids[i]));
  }
  free(ids);
  return rc;
}

static int run(void *ctx, ls_err *err) {
  tokenize_opts *o = ctx;
  char *buf = NULL;
  size_t len = 0;
  if (o->file) {
    LS_TRY(ls_read_file(o->file, &buf, &len, err));
    if (memchr(buf, '\0', len)) {
      free(buf);
      return ls_err_set(err, LS_EINVAL, "%s: the text contains a NUL byte", o->file);
    }
  }
  ls_vocab v;
  ls_tokenizer t;
  int rc = ls_vocab_load_gguf(&v, o->model, err);
  if (!rc) {
    rc = ls_tokenizer_init(&t, &v, err);
    if (!rc) rc = print_tokens(buf ? buf : o->prompt, o, &t, err);
    if (t.vocab) ls_tokenizer_free(&t);
    ls_vocab_free(&v);
  }
  free(buf);
  return rc;
}

int ls_cli_tokenize(int argc, char **argv) {
  memset(&g_opts, 0, sizeof g_opts);
  return ls_cli_main(&cli, argc, argv, check, run, &g_opts);
}
