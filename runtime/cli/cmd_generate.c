/* litestage-run generate: plain text generation, optionally skipping sub-layers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "ls_cli.h"
#include "ls_engine.h"
#include "ls_util.h"

#define PROMPT_FILE_MAX (1 << 20) /* longer than any context this engine runs */
#define N_PREDICT_UNSET (-2)      /* -n not given: 256, unless --steps */

typedef struct {
  ls_engine_params ep;
  const char *prompt, *prompt_file, *skip;
  int n_predict; /* new tokens; -1 = until EOS or the context end */
  int n_predict_given; /* -n was on the command line: more than the context holds is an error */
  int steps;     /* llama2.c's -n: positions counted from BOS (0 = unused) */
  int random_seed;
  char *file_text; /* the prompt read from --file */
} generate_opts;

/* -s SEED: a non-negative integer, or -1 for a random seed (printed on stderr). */
static int parse_seed(const char *flag, const char *v, void *dest, ls_err *err) {
  generate_opts *o = dest;
  if (!strcmp(v, "-1")) {
    o->random_seed = 1;
    return LS_OK;
  }
  o->random_seed = 0;
  return ls_arg_u64(flag, v, &o->ep.seed, err);
}

int ls_cli_parse_weights(const char *flag, const char *v, void *dest, ls_err *err) {
  if (!strcmp(v, "copy")) *(int *)dest = LS_WEIGHTS_COPY;
  else if (!strcmp(v, "map")) *(int *)dest = LS_WEIGHTS_MAP;
  else return ls_err_set(err, LS_EINVAL, "%s '%s': expected copy or map", flag, v);
  return LS_OK;
}

static generate_opts g_opts;

static const ls_opt opts[] = {
    LS_STR("-m|--model", "MODEL", "GGUF file or llama2.c checkpoint", &g_opts.ep.model_path),
    LS_STR("-z|--tokenizer", "TOKENIZER", "llama2.c tokenizer.bin (needed for llama2.c checkpoints)",
           &g_opts.ep.tokenizer_path),
    LS_STR("-p|--prompt", "PROMPT", "prompt text (default: empty)", &g_opts.prompt),
    LS_STR("-f|--file", "FILE", "read the prompt from FILE (one trailing newline dropped, as llama.cpp does)",
           &g_opts.prompt_file),
    LS_INT("-n|--n-predict", "N", "new tokens to generate, as llama.cpp counts them; -1 = until EOS or the\n"
           "context is full (default 256)", &g_opts.n_predict, -1, 1 << 22),
    LS_INT("--steps", "N", "llama2.c's -n instead: positions counted from the BOS token, prompt\n"
           "included (N - prompt tokens + 1 new tokens)", &g_opts.steps, 1, 1 << 22),
    LS_FLOAT("--temp", "T", "sampling temperature, 0 = greedy (default 0)", &g_opts.ep.temperature, 0, 100),
    LS_INT("--top-k", "K", "sample among the K most probable tokens only, 0 = off (default 0)",
           &g_opts.ep.top_k, 0, 1 << 22),
    LS_FLOAT("--top-p", "P", "nucleus sampling threshold in (0, 1] (default 0.9)", &g_opts.ep.top_p, 1e-6, 1),
    LS_FN("-s|--seed", "SEED", "random seed, -1 = a random one, printed on stderr (default 42)", &g_opts, parse_seed),
    LS_INT("-c|--ctx-size", "N", "KV cache positions (default: what the prompt and -n can use, at most the\n"
           "model's context length)", &g_opts.ep.n_ctx, 1, LS_MAX_CTX),
    LS_INT("-t|--threads", "N", "worker threads (default 1); the output is the same for any N",
           &g_opts.ep.n_threads, 1, 256),
    LS_STR("--skip", "LIST", "sub-layers to skip, e.g. L3.attn,L4.ffn (0-based layers)", &g_opts.skip),
    LS_FN("--weights", "copy|map", LS_CLI_WEIGHTS_HELP, &g_opts.ep.weights, ls_cli_parse_weights),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run generate",
    .synopsis = "-m MODEL [-z TOKENIZER] [-p PROMPT | -f FILE] [-n N] [--temp T] [--top-k K] [--top-p P]\n"
                "                              [-s SEED] [-t THREADS] [--skip L3.attn,L4.ffn]",
    .about = "Prints the prompt and the generated text on stdout, prefill and decode speeds on stderr.\n"
             "Every option also has the form --option=value.",
    .opts = opts,
};

static int check(void *ctx, ls_err *err) {
  generate_opts *o = ctx;
  if (!o->ep.model_path) return ls_err_set(err, LS_EINVAL, "missing -m MODEL");
  if (o->prompt_file && o->prompt) return ls_err_set(err, LS_EINVAL, "-p and -f both give the prompt: use one");
  if (o->steps && o->n_predict != N_PREDICT_UNSET)
    return ls_err_set(err, LS_EINVAL, "-n and --steps both count tokens: use one");
  o->n_predict_given = o->n_predict != N_PREDICT_UNSET;
  if (o->n_predict == N_PREDICT_UNSET) o->n_predict = 256;
  if (!o->prompt) o->prompt = ""; /* --file fills it at run time */
  return LS_OK;
}

static int read_prompt_file(generate_opts *o, ls_err *err) {
  struct stat st;
  if (stat(o->prompt_file, &st) == 0 && st.st_size > PROMPT_FILE_MAX)
    return ls_err_set(err, LS_EINVAL, "-f %s: %lld bytes; a prompt file may have at most %d", o->prompt_file,
                      (long long)st.st_size, PROMPT_FILE_MAX);
  size_t len;
  if (ls_read_file(o->prompt_file, &o->file_text, &len, err)) return ls_err_prefix(err, "-f");
  if (len && o->file_text[len - 1] == '\n') o->file_text[--len] = '\0';
  if (strlen(o->file_text) != len)
    return ls_err_set(err, LS_EINVAL, "-f %s: the file holds a NUL byte", o->prompt_file);
  o->prompt = o->file_text;
  return LS_OK;
}

static uint64_t random_seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = (uint64_t)time(NULL) ^ (uint64_t)clock();
  return s;
}

static void print_piece(const char *piece, void *user) {
  (void)user;
  fputs(piece, stdout);
  fflush(stdout);
}

static void print_speeds(const ls_engine *e, const ls_gen_output *out, const uint8_t *mask) {
  fprintf(stderr, "prefill: %d tokens, %.2f ms, %.1f tokens/s\n", out->n_prompt, out->prefill_ms,
          out->prefill_ms > 0 ? out->n_prompt * 1e3 / out->prefill_ms : 0.0);
  int n_dec = out->n_generated > 1 ? out->n_generated - 1 : 0; /* forward passes after the prefill */
  fprintf(stderr, "decode: %d tokens, %.2f ms, %.1f tokens/s, sub-layers executed %d/%d\n", out->n_generated,
          out->decode_ms, out->decode_ms > 0 ? n_dec * 1e3 / out->decode_ms : 0.0,
          ls_skip_mask_executed(mask, e->model.cfg.n_layers), 2 * e->model.cfg.n_layers);
  fprintf(stderr, "weights: %.1f MiB, %s\n", (double)e->model.weight_bytes / (1 << 20),
          e->model.weights_copied ? "copied into anonymous huge-page memory" : "read from the file mapping");
}

static int generate(generate_opts *o, ls_engine *e, uint8_t *mask, ls_err *err) {
  if (o->skip && ls_skip_mask_parse(o->skip, e->model.cfg.n_layers, mask, err)) return ls_err_prefix(err, "--skip");
  int n_prompt = 0;
  LS_TRY(ls_tokenize(&e->tok, o->prompt, 1, e->tokens, e->n_ctx, &n_prompt, err));
  int max_new = o->n_predict; /* -1: until EOS or the context end (the engine's 0) */
  if (o->steps) {
    if (n_prompt > o->steps)
      return ls_err_set(err, LS_EINVAL, "--steps %d: the prompt alone takes %d positions", o->steps, n_prompt);
    max_new = o->steps - n_prompt + 1;
  }
  /* n_prompt + max_new - 1 positions are forwarded (the last token is not) */
  if (o->n_predict_given && max_new > 0 && n_prompt + max_new - 1 > e->n_ctx)
    return ls_err_set(err, LS_EINVAL, "-n %d: the prompt's %d tokens and %d new ones exceed the context of %d positions%s",
                      max_new, n_prompt, max_new, e->n_ctx, o->ep.n_ctx > 0 ? " (-c)" : " (the model's)");
  /* echo the prompt as llama2.c does: its tokens decoded after BOS (qwen2 has none) */
  int first = n_prompt > 0 && e->tokens[0] == e->model.vocab.bos_id;
  for (int i = first; i < n_prompt; i++) fputs(ls_token_piece(&e->tok, i ? e->tokens[i - 1] : -1, e->tokens[i]), stdout);
  if (max_new == 0) { /* -n 0: the prompt only, as llama.cpp */
    printf("\n");
    return LS_OK;
  }
  ls_gen_request req = {.prompt = o->prompt, .max_new_tokens = max_new < 0 ? 0 : max_new, .skip = mask,
                        .on_text = print_piece};
  ls_gen_output out;
  LS_TRY(ls_engine_generate(e, &req, &out, err));
  printf("\n");
  fflush(stdout);
  print_speeds(e, &out, mask);
  return LS_OK;
}

static int run(void *ctx, ls_err *err) {
  generate_opts *o = ctx;
  if (o->prompt_file) LS_TRY(read_prompt_file(o, err));
  if (o->random_seed) {
    o->ep.seed = random_seed();
    fprintf(stderr, "seed: %llu\n", (unsigned long long)o->ep.seed);
  }
  /* Without -c, the KV cache holds what this run can use, not the model's
   * whole declared context: every token covers at least one byte of the
   * prompt, plus BOS and EOS. */
  size_t prompt_bytes = strlen(o->prompt);
  if (o->steps) o->ep.n_ctx_needed = o->steps + 1;
  else if (o->n_predict >= 0 && prompt_bytes < (size_t)LS_MAX_CTX)
    o->ep.n_ctx_needed = (int)prompt_bytes + 2 + o->n_predict;
  ls_engine e;
  LS_TRY(ls_engine_open(&e, &o->ep, err));
  uint8_t *mask = ls_calloc((size_t)e.model.cfg.n_layers, 1, err);
  int rc = mask ? generate(o, &e, mask, err) : LS_ENOMEM;
  free(mask);
  ls_engine_close(&e);
  return rc;
}

int ls_cli_generate(int argc, char **argv) {
  g_opts = (generate_opts){.ep = {.n_threads = 1, .top_p = 0.9f, .seed = 42, .need_tokenizer = 1},
                           .n_predict = N_PREDICT_UNSET};
  int rc = ls_cli_main(&cli, argc, argv, check, run, &g_opts);
  free(g_opts.file_text);
  return rc;
}
