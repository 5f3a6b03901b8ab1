/* litestage-run generate: plain text generation, optionally skipping sub-layers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "ls_engine.h"

typedef struct {
  ls_engine_params ep;
  const char *prompt;
  const char *skip;
  int steps;
} generate_opts;

static void usage(FILE *f) {
  fprintf(f,
          "usage: litestage-run generate -m MODEL [-z TOKENIZER] [-p PROMPT] [-n N] [--temp T] [--top-p P]\n"
          "                              [-s SEED] [-t THREADS] [--skip L3.attn,L4.ffn]\n"
          "  -m MODEL       GGUF file or llama2.c checkpoint\n"
          "  -z TOKENIZER   tokenizer.bin (needed for llama2.c checkpoints)\n"
          "  -p PROMPT      prompt text (default: empty)\n"
          "  -n N           positions counted from the BOS token, as llama2.c (default 256)\n"
          "  --temp T       sampling temperature, 0 = greedy (default 0)\n"
          "  --top-p P      nucleus sampling threshold in (0,1] (default 0.9)\n"
          "  -s SEED        random seed (default 42)\n"
          "  -t THREADS     worker threads (default 1)\n"
          "  --skip LIST    sub-layers to skip, e.g. L3.attn,L4.ffn (0-based layers)\n"
          "Prints the prompt and generated text on stdout, tokens/s on stderr.\n");
}

static int parse(int argc, char **argv, generate_opts *o, ls_err *err) {
  *o = (generate_opts){.ep = {.n_threads = 1, .top_p = 0.9f, .seed = 42, .need_tokenizer = 1}, .prompt = "", .steps = 256};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return -1;
    LS_TRY(ls_arg_value(argc, argv, &i, &v, err));
    if (!strcmp(a, "-m")) o->ep.model_path = v;
    else if (!strcmp(a, "-z")) o->ep.tokenizer_path = v;
    else if (!strcmp(a, "-p")) o->prompt = v;
    else if (!strcmp(a, "-n")) LS_TRY(ls_arg_int(a, v, 1, 1 << 22, &o->steps, err));
    else if (!strcmp(a, "--temp")) LS_TRY(ls_arg_float(a, v, 0, 100, &o->ep.temperature, err));
    else if (!strcmp(a, "--top-p")) LS_TRY(ls_arg_float(a, v, 1e-6, 1, &o->ep.top_p, err));
    else if (!strcmp(a, "-s")) LS_TRY(ls_arg_u64(a, v, &o->ep.seed, err));
    else if (!strcmp(a, "-t")) LS_TRY(ls_arg_int(a, v, 1, 256, &o->ep.n_threads, err));
    else if (!strcmp(a, "--skip")) o->skip = v;
    else return ls_err_set(err, LS_EINVAL, "unknown option %s", a);
  }
  if (!o->ep.model_path) return ls_err_set(err, LS_EINVAL, "missing -m MODEL");
  return LS_OK;
}

static void print_piece(const char *piece, void *user) {
  (void)user;
  fputs(piece, stdout);
  fflush(stdout);
}

static int run(generate_opts *o, ls_err *err) {
  ls_engine e;
  LS_TRY(ls_engine_open(&e, &o->ep, err));
  int rc = LS_OK;
  uint8_t *mask = calloc((size_t)e.model.cfg.n_layers, 1);
  if (!mask) rc = ls_err_set(err, LS_ENOMEM, "out of memory");
  if (!rc && o->skip && ls_skip_mask_parse(o->skip, e.model.cfg.n_layers, mask, err))
    rc = ls_err_prefix(err, "--skip");
  int n_prompt = 0;
  if (!rc) rc = ls_tokenize(&e.tok, o->prompt, 1, e.tokens, e.n_ctx, &n_prompt, err);
  if (!rc && n_prompt > o->steps)
    rc = ls_err_set(err, LS_EINVAL, "-n %d: the prompt alone takes %d positions", o->steps, n_prompt);
  if (!rc) {
    /* echo the prompt as llama2.c does: its tokens decoded after BOS */
    for (int i = 1; i < n_prompt; i++) fputs(ls_token_piece(&e.tok, e.tokens[i - 1], e.tokens[i]), stdout);
    ls_gen_request req = {.prompt = o->prompt, .max_new_tokens = o->steps - n_prompt + 1, .skip = mask,
                          .on_text = print_piece};
    ls_gen_output out;
    rc = ls_engine_generate(&e, &req, &out, err);
    if (!rc) {
      printf("\n");
      fflush(stdout);
      fprintf(stderr, "prefill: %d tokens, %.2f ms, %.1f tokens/s\n", out.n_prompt, out.prefill_ms,
              out.prefill_ms > 0 ? out.n_prompt * 1e3 / out.prefill_ms : 0.0);
      int n_dec = out.n_generated > 1 ? out.n_generated - 1 : 0; /* forward passes after the prefill */
      fprintf(stderr, "decode: %d tokens, %.2f ms, %.1f tokens/s, sub-layers executed %d/%d\n", out.n_generated,
              out.decode_ms, out.decode_ms > 0 ? n_dec * 1e3 / out.decode_ms : 0.0,
              ls_skip_mask_executed(mask, e.model.cfg.n_layers), 2 * e.model.cfg.n_layers);
    }
  }
  free(mask);
  ls_engine_close(&e);
  return rc;
}

int ls_cli_generate(int argc, char **argv) {
  generate_opts o;
  ls_err err = {0};
  int rc = parse(argc, argv, &o, &err);
  if (rc < 0) {
    usage(stdout);
    return 0;
  }
  if (rc) {
    fprintf(stderr, "litestage-run generate: %s (see --help)\n", err.msg);
    return 2;
  }
  if (run(&o, &err)) {
    fprintf(stderr, "litestage-run generate: %s\n", err.msg);
    return 1;
  }
  return 0;
}
