/* litestage-run synth: write a random-weight llama GGUF of a given shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "ls_cli.h"
#include "gguf.h"
#include "ls_quant.h"
#include "ls_util.h"

typedef struct {
  int tty;
  int last;
  double t0;
} progress;

static void show_progress(void *ctx, size_t done, size_t total) {
  progress *p = ctx;
  int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
  if (pct == p->last || (!p->tty && pct / 10 == p->last / 10 && pct != 100)) return;
  p->last = pct;
  double mb = (double)done / (1 << 20), s = (ls_now_ms() - p->t0) / 1000.0;
  fprintf(stderr, "%ssynth: %3d%% %.0f MiB (%.1f s)%s", p->tty ? "\r" : "", pct, mb, s,
          p->tty && pct < 100 ? "" : "\n");
  fflush(stderr);
}

typedef struct {
  ls_synth_opts so;
  const char *out;
} synth_cli_opts;

static synth_cli_opts g_opts;
static char type_help[512];

/* --type: a writable tensor type, or q4_k_m (Q4_K with llama-quantize's Q6_K tensors). */
static int synth_type_arg(const char *flag, const char *value, void *dest, ls_err *err) {
  g_opts.so.q4_k_m = !strcmp(value, "q4_k_m");
  return ls_dtype_arg(flag, g_opts.so.q4_k_m ? "q4_k" : value, dest, err);
}

static const ls_opt opts[] = {
    LS_STR("-o|--output", "OUT.gguf", "the file to write (written to a temporary name, then renamed)", &g_opts.out),
    LS_INT("--dim", "D", "embedding width", &g_opts.so.dim, 1, 1 << 16),
    LS_INT("--layers", "L", "number of layers", &g_opts.so.n_layers, 1, 1024),
    LS_INT("--heads", "H", "attention heads", &g_opts.so.n_heads, 1, 1 << 16),
    LS_INT("--kv-heads", "K", "KV heads for grouped-query attention (default: --heads)",
           &g_opts.so.n_kv_heads, 1, 1 << 16),
    LS_INT("--ffn", "F", "FFN hidden width", &g_opts.so.hidden_dim, 1, 1 << 19),
    LS_INT("--vocab", "V", "vocabulary size", &g_opts.so.vocab_size, 1, 1 << 22),
    LS_FN("--type", "T", type_help, &g_opts.so.type, synth_type_arg),
    LS_INT("--seq-len", "N", "context length recorded in the model (default 2048)", &g_opts.so.seq_len, 1, 1 << 22),
    LS_U64("-s|--seed", "SEED", "random seed (default 42)", &g_opts.so.seed),
    LS_SWITCH("--tied", "no output.weight: the classifier shares token_embd", &g_opts.so.tied),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run synth",
    .synopsis = "-o OUT.gguf --dim D --layers L --heads H [--kv-heads K] --ffn F --vocab V\n"
                "                           [--type T] [--seq-len N] [-s SEED] [--tied]",
    .about = "Writes a llama model with random weights (about N(0, 0.02^2), deterministic from the seed),\n"
             "norms of 1 and a synthetic vocabulary (<unk> <s> </s>, 256 byte tokens, filler pieces).",
    .opts = opts,
    .footer = "TinyLlama-1.1B shape: --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000",
};

static int check(void *ctx, ls_err *err) {
  synth_cli_opts *o = ctx;
  if (!o->out) return ls_err_set(err, LS_EINVAL, "missing -o OUT.gguf");
  const char *need[] = {"--dim", "--layers", "--heads", "--ffn", "--vocab"};
  const int have[] = {o->so.dim, o->so.n_layers, o->so.n_heads, o->so.hidden_dim, o->so.vocab_size};
  for (int k = 0; k < 5; k++)
    if (!have[k]) return ls_err_set(err, LS_EINVAL, "missing %s", need[k]);
  if (!o->so.n_kv_heads) o->so.n_kv_heads = o->so.n_heads;
  return LS_OK;
}

static int run(void *ctx, ls_err *err) {
  synth_cli_opts *o = ctx;
  progress p = {.tty = isatty(2), .last = -1, .t0 = ls_now_ms()};
  o->so.progress = show_progress;
  o->so.progress_ctx = &p;
  LS_TRY(ls_synth_write(&o->so, o->out, err));
  fprintf(stderr, "synth: wrote %s (%.1f s)\n", o->out, (ls_now_ms() - p.t0) / 1000.0);
  return LS_OK;
}

int ls_cli_synth(int argc, char **argv) {
  g_opts = (synth_cli_opts){.so = {.seq_len = 2048, .type = LS_F32, .seed = 42}};
  ls_cli_type_help_fill();
  snprintf(type_help, sizeof type_help,
           "%s;\nor q4_k_m: Q4_K with Q6_K for output.weight and for attn_v / ffn_down of the first and\n"
           "last eighth of the layers and every third layer between (llama-quantize's Q4_K_M)",
           ls_cli_type_help);
  return ls_cli_main(&cli, argc, argv, check, run, &g_opts);
}
