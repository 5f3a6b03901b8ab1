/* litestage-run convert: a llama2.c checkpoint (or a GGUF) to GGUF. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "commands.h"
#include "gguf.h"
#include "ls_model.h"
#include "ls_quant.h"
#include "ls_util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: litestage-run convert IN.bin -z TOKENIZER.bin -o OUT.gguf [--type f32|q8_0]\n\n"
          "Writes a GGUF v3 file that llama.cpp also loads (standard llama keys and tensor names,\n"
          "the vocabulary as tokenizer.ggml.* with U+2581 for spaces). IN may also be a GGUF file\n"
          "(re-encoding it); -z is then optional.\n"
          "  --type f32    every tensor as stored in a llama2.c checkpoint (default)\n"
          "  --type q8_0   2-D weights, token_embd included, in Q8_0; a matrix whose columns are not a\n"
          "                multiple of 32 stays F32; norms stay F32\n"
          "  --type f16|q4_0 are accepted as well\n");
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
  if (!strcasecmp(type_s, "f32")) type = LS_F32;
  else if (!strcasecmp(type_s, "q8_0")) type = LS_Q8_0;
  else if (!strcasecmp(type_s, "f16")) type = LS_F16;
  else if (!strcasecmp(type_s, "q4_0")) type = LS_Q4_0;
  else return bad_usage("--type must be f32 or q8_0, not ", type_s);
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
