/* litestage-run convert: a llama2.c checkpoint (or a GGUF) to GGUF. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "ls_cli.h"
#include "gguf.h"
#include "ls_model.h"
#include "ls_quant.h"
#include "ls_util.h"

static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

typedef struct {
  const char *in, *tok, *out;
  uint32_t type;
  int n_args;
} convert_opts;

static convert_opts g_opts;
char ls_cli_type_help[256];

void ls_cli_type_help_fill(void) {
  char types[128];
  ls_dtype_list_writable(types, sizeof types, ", ");
  snprintf(ls_cli_type_help, sizeof ls_cli_type_help,
           "weight type of the 2-D matrices (token_embd included): one of\n%s (default f32); a matrix whose\n"
           "columns are not a multiple of the type's block stays f32; norms stay f32",
           types);
}

static const ls_opt opts[] = {
    LS_STR("-z|--tokenizer", "TOKENIZER", "llama2.c tokenizer.bin (needed for a .bin model)", &g_opts.tok),
    LS_STR("-o|--output", "OUT.gguf", "the file to write (written to a temporary name, then renamed)", &g_opts.out),
    LS_FN("--type", "T", ls_cli_type_help, &g_opts.type, ls_dtype_arg),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run convert",
    .synopsis = "IN.bin -z TOKENIZER.bin -o OUT.gguf [--type T]",
    .about = "Writes a GGUF v3 file that llama.cpp also loads (standard llama keys and tensor names,\n"
             "the vocabulary as tokenizer.ggml.* with U+2581 for spaces). IN may also be a GGUF file\n"
             "(re-encoding it); -z is then optional.",
    .opts = opts,
    .args = &g_opts.in,
    .max_args = 1,
    .n_args = &g_opts.n_args,
};

static int check(void *ctx, ls_err *err) {
  convert_opts *o = ctx;
  if (!o->in) return ls_err_set(err, LS_EINVAL, "missing input model");
  if (!o->out) return ls_err_set(err, LS_EINVAL, "missing -o OUT.gguf");
  if (same_file(o->in, o->out)) return ls_err_set(err, LS_EINVAL, "-o names the input file %s", o->out);
  return LS_OK;
}

static int run(void *ctx, ls_err *err) {
  convert_opts *o = ctx;
  ls_model m;
  double t0 = ls_now_ms();
  LS_TRY(ls_model_load_placed(&m, o->in, o->tok, LS_WEIGHTS_MAP, err)); /* reads the weights once */
  int rc = LS_OK;
  if (m.vocab.n_tokens == 0) rc = ls_err_set(err, LS_EINVAL, "%s: no vocabulary (pass -z TOKENIZER.bin)", o->in);
  else rc = ls_gguf_convert(&m, o->out, o->type, err);
  ls_model_free(&m);
  LS_TRY(rc);
  struct stat st;
  long long size = stat(o->out, &st) == 0 ? (long long)st.st_size : -1;
  fprintf(stderr, "convert: wrote %s (%s, %lld bytes, %.1f s)\n", o->out, ls_dtype_name(o->type), size,
          (ls_now_ms() - t0) / 1000.0);
  return LS_OK;
}

int ls_cli_convert(int argc, char **argv) {
  g_opts = (convert_opts){.type = LS_F32};
  ls_cli_type_help_fill();
  return ls_cli_main(&cli, argc, argv, check, run, &g_opts);
}
