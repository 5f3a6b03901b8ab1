/* litestage-run synth: write a random-weight llama GGUF of a given shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "gguf.h"
#include "ls_quant.h"
#include "ls_util.h"

static void usage(FILE *f) {
  char types[128];
  ls_dtype_list_writable(types, sizeof types, "|");
  fprintf(f,
          "usage: litestage-run synth -o OUT.gguf --dim D --layers L --heads H [--kv-heads K] --ffn F --vocab V\n"
          "                           [--type %s] [--seq-len N] [-s SEED] [--tied]\n\n"
          "Writes a llama model with random weights (about N(0, 0.02^2), deterministic from the seed),\n"
          "norms of 1 and a synthetic vocabulary (<unk> <s> </s>, 256 byte tokens, filler pieces).\n"
          "  --kv-heads K   KV heads for grouped-query attention (default: --heads)\n"
          "  --type T       weight type of the matrices (default f32); a matrix whose columns are\n"
          "                 not a multiple of 32 stays f32 under q8_0/q4_0; norms are always f32\n"
          "  --seq-len N    context length recorded in the model (default 2048)\n"
          "  -s SEED        random seed (default 42)\n"
          "  --tied         no output.weight: the classifier shares token_embd\n\n"
          "TinyLlama-1.1B shape: --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000\n",
          types);
}

static int bad_usage(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "litestage-run synth: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, " (try litestage-run synth --help)\n");
  return 2;
}

static int parse_int(const char *s, long max, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v <= 0 || v > max) return 0;
  *out = (int)v;
  return 1;
}

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

int ls_cli_synth(int argc, char **argv) {
  ls_synth_opts o = {.seq_len = 2048, .type = LS_F32, .seed = 42};
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--tied")) {
      o.tied = 1;
      continue;
    }
    if (a[0] != '-') return bad_usage("unexpected argument '%s'%s", a, "");
    if (i + 1 >= argc) return bad_usage("%s needs a value%s", a, "");
    const char *v = argv[++i];
    int ok = 1;
    if (!strcmp(a, "-o")) out = v;
    else if (!strcmp(a, "--dim")) ok = parse_int(v, 1 << 16, &o.dim);
    else if (!strcmp(a, "--layers")) ok = parse_int(v, 1024, &o.n_layers);
    else if (!strcmp(a, "--heads")) ok = parse_int(v, 1 << 16, &o.n_heads);
    else if (!strcmp(a, "--kv-heads")) ok = parse_int(v, 1 << 16, &o.n_kv_heads);
    else if (!strcmp(a, "--ffn")) ok = parse_int(v, 1 << 19, &o.hidden_dim);
    else if (!strcmp(a, "--vocab")) ok = parse_int(v, 1 << 22, &o.vocab_size);
    else if (!strcmp(a, "--seq-len")) ok = parse_int(v, 1 << 22, &o.seq_len);
    else if (!strcmp(a, "--type")) {
      if (!ls_dtype_parse(v, &o.type) || !ls_dtype_get(o.type)->writes) {
        char list[128];
        ls_dtype_list_writable(list, sizeof list, ", ");
        return bad_usage("--type '%s': expected one of %s", v, list);
      }
    } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
      char *end;
      errno = 0;
      o.seed = strtoull(v, &end, 10);
      ok = !errno && end != v && !*end && v[0] != '-';
    } else {
      return bad_usage("unknown option '%s'%s", a, "");
    }
    if (!ok) return bad_usage("%s '%s': expected a positive integer in range", a, v);
  }
  if (!out) return bad_usage("missing -o OUT.gguf%s%s", "", "");
  const char *need[] = {"--dim", "--layers", "--heads", "--ffn", "--vocab"};
  const int have[] = {o.dim, o.n_layers, o.n_heads, o.hidden_dim, o.vocab_size};
  for (int k = 0; k < 5; k++)
    if (!have[k]) return bad_usage("missing %s%s", need[k], "");
  if (!o.n_kv_heads) o.n_kv_heads = o.n_heads;
  progress p = {.tty = isatty(2), .last = -1, .t0 = ls_now_ms()};
  o.progress = show_progress;
  o.progress_ctx = &p;
  ls_err err = {0};
  if (ls_synth_write(&o, out, &err)) {
    fprintf(stderr, "litestage-run synth: %s\n", err.msg);
    return 1;
  }
  fprintf(stderr, "synth: wrote %s (%.1f s)\n", out, (ls_now_ms() - p.t0) / 1000.0);
  return 0;
}
