/* litestage-run profile: measure a latency profile of a model on this CPU
 * (ls_profile.h, docs/latency.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_cli.h"
#include "commands.h"
#include "ls_model.h"
#include "ls_profile.h"
#include "ls_util.h"

typedef struct {
  const char *model, *tokenizer, *out;
  ls_profile_opts po;
  int quiet;
} profile_opts;

static int parse_list(const char *flag, const char *v, int *out, int *n, ls_err *err) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", v);
  *n = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (*n == LS_PROFILE_MAX_POINTS) return ls_err_set(err, LS_EINVAL, "%s: at most %d values", flag, LS_PROFILE_MAX_POINTS);
    LS_TRY(ls_arg_int(flag, t, 1, 1 << 22, &out[*n], err));
    (*n)++;
  }
  if (*n == 0) return ls_err_set(err, LS_EINVAL, "%s: empty list", flag);
  return LS_OK;
}

static int parse_clock(const char *flag, const char *v, void *dest, ls_err *err) {
  if (!strcmp(v, "wall")) *(int *)dest = LS_CLOCK_WALL;
  else if (!strcmp(v, "cpu")) *(int *)dest = LS_CLOCK_CPU;
  else return ls_err_set(err, LS_EINVAL, "%s '%s': expected wall or cpu", flag, v);
  return LS_OK;
}

static profile_opts g_opts;

static int parse_contexts(const char *flag, const char *v, void *dest, ls_err *err) {
  (void)dest;
  return parse_list(flag, v, g_opts.po.ctx_list, &g_opts.po.n_ctx_list, err);
}

static int parse_batches(const char *flag, const char *v, void *dest, ls_err *err) {
  (void)dest;
  return parse_list(flag, v, g_opts.po.batch_list, &g_opts.po.n_batch_list, err);
}

static const ls_opt opts[] = {
    LS_STR("-m|--model", "MODEL", "GGUF file or llama2.c checkpoint", &g_opts.model),
    LS_STR("-z|--tokenizer", "TOKENIZER", "tokenizer.bin (accepted for symmetry; profiling needs no vocabulary)",
           &g_opts.tokenizer),
    LS_STR("-o|--output", "FILE", "where to write the profile (JSON, written atomically)", &g_opts.out),
    LS_INT("-t|--threads", "N", "worker threads, as the deployment will use (default 1)", &g_opts.po.n_threads, 1, 256),
    LS_INT("--reps", "N", "at least N timed repetitions per point; medians are kept (default 7)",
           &g_opts.po.reps, 1, 10000),
    LS_DOUBLE("--min-ms", "MS", "and at least MS milliseconds of repetitions per point (default 200)",
           &g_opts.po.min_ms, 0, 1e6),
    LS_FN("--contexts", "LIST", "decode context lengths (default 16,64,256,1024,2048 up to the model's)", NULL,
           parse_contexts),
    LS_FN("--batches", "LIST", "prefill prompt lengths (default 1,8,32,128,512 up to --max-batch)", NULL,
           parse_batches),
    LS_INT("--max-batch", "N", "prefill chunk size of the deployment (default 512)", &g_opts.po.max_batch, 1, 1 << 16),
    LS_FN("--clock", "wall|cpu", "wall time (default: latency) or process CPU time (checks the model on a\n"
           "busy machine with -t 1; not a latency with more threads)", &g_opts.po.clock, parse_clock),
    LS_SWITCH("-q|--quiet", "no progress on stderr", &g_opts.quiet),
    LS_OPT_END,
};

static const ls_cli cli = {
    .name = "litestage-run profile",
    .synopsis = "-m MODEL [-z TOKENIZER] -o PROFILE.json [-t THREADS] [--reps N] [--min-ms MS]\n"
                "                             [--contexts 16,64,256] [--batches 1,8,32,128] [--max-batch N]\n"
                "                             [--clock wall|cpu] [-q]",
    .about = "Measures the per-sub-layer latency of prefill and decode on this CPU (docs/latency.md); the\n"
             "search predicts latency from such a profile.",
    .opts = opts,
};

static int check(void *ctx, ls_err *err) {
  profile_opts *o = ctx;
  if (!o->model) return ls_err_set(err, LS_EINVAL, "missing -m MODEL");
  if (!o->out) return ls_err_set(err, LS_EINVAL, "missing -o PROFILE.json");
  return LS_OK;
}

static void on_progress(void *user, const char *msg) {
  (void)user;
  fprintf(stderr, "profile: %s\n", msg);
}

static int run(void *ctx, ls_err *err) {
  profile_opts *o = ctx;
  ls_model m;
  memset(&m, 0, sizeof m);
  LS_TRY(ls_model_load(&m, o->model, o->tokenizer, err));
  if (!o->quiet) {
    o->po.progress = on_progress;
    fprintf(stderr, "profile: %s: %d layers, dim %d, ffn %d, vocab %d, %d threads, %d reps\n", m.name,
            m.cfg.n_layers, m.cfg.dim, m.cfg.hidden_dim, m.cfg.vocab_size, o->po.n_threads, o->po.reps);
  }
  ls_profile p;
  double t0 = ls_now_ms();
  int rc = ls_profile_measure(&p, &m, &o->po, err);
  ls_model_free(&m);
  LS_TRY(rc);
  LS_TRY(ls_profile_save(&p, o->out, err));
  if (!o->quiet) {
    fprintf(stderr, "profile: decode per layer: ffn %.4f ms, attn %.4f ms at context %d .. %.4f ms at %d; "
                    "fixed %.4f ms/token\n",
            p.dec_ffn_ms, p.dec_attn_ms[0], p.dec_ctx[0], p.dec_attn_ms[p.n_dec - 1], p.dec_ctx[p.n_dec - 1],
            p.dec_fixed_ms);
    fprintf(stderr, "profile: wrote %s in %.1f s (kernels %s)\n", o->out, (ls_now_ms() - t0) / 1e3, p.kernel_level);
  }
  ls_profile_free(&p);
  return LS_OK;
}

int ls_cli_profile(int argc, char **argv) {
  memset(&g_opts, 0, sizeof g_opts);
  g_opts.po.n_threads = 1;
  g_opts.po.reps = 7;
  return ls_cli_main(&cli, argc, argv, check, run, &g_opts);
}
