/* litestage-run profile: measure a latency profile of a model on this CPU
 * (ls_profile.h, docs/latency.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "ls_model.h"
#include "ls_profile.h"
#include "ls_util.h"

typedef struct {
  const char *model, *tokenizer, *out;
  ls_profile_opts po;
  int quiet;
} profile_opts;

static void usage(FILE *f) {
  fprintf(f,
          "usage: litestage-run profile -m MODEL [-z TOKENIZER] -o PROFILE.json [-t THREADS] [--reps N]\n"
          "                             [--min-ms MS] [--contexts 16,64,256] [--batches 1,8,32,128] [--max-batch N]\n"
          "                             [--clock wall|cpu] [-q]\n"
          "  -m MODEL         GGUF file or llama2.c checkpoint\n"
          "  -z TOKENIZER     tokenizer.bin (accepted for symmetry; profiling needs no vocabulary)\n"
          "  -o FILE          where to write the profile (JSON, written atomically)\n"
          "  -t THREADS       worker threads, as the deployment will use (default 1)\n"
          "  --reps N         at least N timed repetitions per point; medians are kept (default 7)\n"
          "  --min-ms MS      and at least MS milliseconds of repetitions per point (default 200)\n"
          "  --contexts LIST  decode context lengths (default 16,64,256,1024,2048 up to the model's)\n"
          "  --batches LIST   prefill prompt lengths (default 1,8,32,128,512 up to --max-batch)\n"
          "  --max-batch N    prefill chunk size of the deployment (default 512)\n"
          "  --clock wall|cpu wall time (default: latency) or process CPU time (checks the model on a busy\n"
          "                   machine with -t 1; not a latency with more threads)\n"
          "  -q               no progress on stderr\n");
}

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

static int parse(int argc, char **argv, profile_opts *o, ls_err *err) {
  memset(o, 0, sizeof *o);
  o->po.n_threads = 1;
  o->po.reps = 7;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return -1;
    if (!strcmp(a, "-q")) {
      o->quiet = 1;
      continue;
    }
    LS_TRY(ls_arg_value(argc, argv, &i, &v, err));
    if (!strcmp(a, "-m")) o->model = v;
    else if (!strcmp(a, "-z")) o->tokenizer = v;
    else if (!strcmp(a, "-o")) o->out = v;
    else if (!strcmp(a, "-t")) LS_TRY(ls_arg_int(a, v, 1, 256, &o->po.n_threads, err));
    else if (!strcmp(a, "--reps")) LS_TRY(ls_arg_int(a, v, 1, 10000, &o->po.reps, err));
    else if (!strcmp(a, "--min-ms")) {
      float f;
      LS_TRY(ls_arg_float(a, v, 0, 1e6, &f, err));
      o->po.min_ms = f;
    } else if (!strcmp(a, "--max-batch")) LS_TRY(ls_arg_int(a, v, 1, 1 << 16, &o->po.max_batch, err));
    else if (!strcmp(a, "--clock")) {
      if (!strcmp(v, "wall")) o->po.clock = LS_CLOCK_WALL;
      else if (!strcmp(v, "cpu")) o->po.clock = LS_CLOCK_CPU;
      else return ls_err_set(err, LS_EINVAL, "--clock '%s': expected wall or cpu", v);
    } else if (!strcmp(a, "--contexts")) LS_TRY(parse_list(a, v, o->po.ctx_list, &o->po.n_ctx_list, err));
    else if (!strcmp(a, "--batches")) LS_TRY(parse_list(a, v, o->po.batch_list, &o->po.n_batch_list, err));
    else return ls_err_set(err, LS_EINVAL, "unknown option %s", a);
  }
  if (!o->model) return ls_err_set(err, LS_EINVAL, "missing -m MODEL");
  if (!o->out) return ls_err_set(err, LS_EINVAL, "missing -o PROFILE.json");
  return LS_OK;
}

static void on_progress(void *user, const char *msg) {
  (void)user;
  fprintf(stderr, "profile: %s\n", msg);
}

static int run(profile_opts *o, ls_err *err) {
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
  profile_opts o;
  ls_err err = {0};
  int rc = parse(argc, argv, &o, &err);
  if (rc < 0) {
    usage(stdout);
    return 0;
  }
  if (rc != LS_OK) {
    fprintf(stderr, "litestage-run profile: %s\n", err.msg);
    usage(stderr);
    return 2;
  }
  if (run(&o, &err) != LS_OK) {
    fprintf(stderr, "litestage-run profile: %s\n", err.msg);
    return 1;
  }
  return 0;
}
