/* litestage-run convert: a llama2.c checkpoint (or a GGUF) to GGUF. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "gguf.h"
#include "ls_model.h"
#include "ls_quant.h"
#include "ls_util.h"

static void usage(FILE *f) {
  char types[128];
  ls_dtype_list_writable(types, sizeof types, "|");
  fprintf(f,
          "usage: litestage-run convert IN.bin -z TOKENIZER.bin -o OUT.gguf [--type T]\n\n"
          "Writes a GGUF v3 file that llama.cpp also loads (standard llama keys and tensor names,\n"
          "the vocabulary as tokenizer.ggml.* with U+2581 for spaces). IN may also be a GGUF file\n"
          "(re-encoding it); -z is then optional.\n"
          "  -z TOKENIZER.bin  llama2.c tokenizer for a .bin model\n"
          "  -o OUT.gguf       the file to write (written to a temporary name, then renamed)\n"
          "  --type T          weight type of the 2-D matrices, token_embd included, one of\n"
          "                    %s (default f32); a matrix whose columns are not a\n"
          "                    multiple of the type's block stays f32; norms stay f32\n",
          types);
}

static int bad_usage(const char *msg, const char *arg) {
  fprintf(stderr, "litestage-run convert: %s%s (try litestage-run convert --help)\n", msg, arg);
  return 2;
}

static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ls_cli_convert(int argc, char **argv) {
  const char *in = NULL, *tok = NULL, *out = NULL, *type_s = "f32";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "-z") || !strcmp(a, "-o") || !strcmp(a, "--type")) {
      if (i + 1 >= argc) return bad_usage("missing value for ", a);
      const char *v = argv[++i];
      if (!strcmp(a, "-z")) tok = v;
      else if (!strcmp(a, "-o")) out = v;
      else type_s = v;
    } else if (a[0] == '-' && a[1]) {
      return bad_usage("unknown option ", a);
    } else if (!in) {
      in = a;
    } else {
      return bad_usage("unexpected argument ", a);
    }
  }
  if (!in) return bad_usage("missing input model", "");
  if (!out) return bad_usage("missing -o OUT.gguf", "");
  uint32_t type;
  if (!ls_dtype_parse(type_s, &type) || !ls_dtype_get(type)->writes) {
    char list[128];
    ls_dtype_list_writable(list, sizeof list, ", ");
    fprintf(stderr, "litestage-run convert: --type '%s': expected one of %s (try litestage-run convert --help)\n",
            type_s, list);
    return 2;
  }
  if (same_file(in, out)) return bad_usage("-o names the input file ", out);

  ls_model m;
  ls_err err = {0};
  double t0 = ls_now_ms();
  if (ls_model_load(&m, in, tok, &err)) {
    fprintf(stderr, "litestage-run convert: %s\n", err.msg);
    return 1;
  }
  int rc = 0;
  if (m.vocab.n_tokens == 0) {
    fprintf(stderr, "litestage-run convert: %s: no vocabulary (pass -z TOKENIZER.bin)\n", in);
    rc = 1;
  } else if (ls_gguf_convert(&m, out, type, &err)) {
    fprintf(stderr, "litestage-run convert: %s\n", err.msg);
    rc = 1;
  } else {
    struct stat st;
    long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    fprintf(stderr, "convert: wrote %s (%s, %lld bytes, %.1f s)\n", out, ls_dtype_name(type), size,
            (ls_now_ms() - t0) / 1000.0);
  }
  ls_model_free(&m);
  return rc;
}
