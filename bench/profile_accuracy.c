/* profile_accuracy: how well a latency profile predicts real generation.
 *
 *   profile_accuracy -m MODEL --profile P.json [-t T] [--reps N] [--cases 16:64,128:256]
 *
 * For each skip mask of a fixed family (none, every other FFN, the first half
 * of the attentions, a quarter of the sub-layers spread over the model, three
 * quarters of them) and each case PROMPT:DECODE, runs real generation
 * (ls_time_generation: chunked prefill, then greedy argmax decode calls) N
 * times and prints one machine-readable row per (mask, case) with the median
 * measured and the predicted milliseconds, then an attn_growth row (the
 * profile's decode attention at its last context against its first, PASS if
 * it grows). Used by bench/profile_accuracy.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_forward.h"
#include "ls_model.h"
#include "ls_profile.h"
#include "ls_util.h"

#define MAX_CASES 16
#define N_MASKS 5

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The mask family; names go into the rows. */
static const char *mask_name[N_MASKS] = {"none", "alt_ffn", "half_attn", "quarter", "three_quarters"};

static void make_mask(int which, int L, uint8_t *m) {
  memset(m, 0, (size_t)L);
  for (int l = 0; l < L; l++) {
    switch (which) {
    case 1: if (l % 2) m[l] = LS_SKIP_FFN; break;
    case 2: if (l < L / 2 + (L == 1)) m[l] = LS_SKIP_ATTN; break;
    case 3: /* sub-layer s = 2l (attn), 2l+1 (ffn): skip s with 3s mod 8 < 2, about a quarter, mixed kinds */
      if ((3 * (2 * l)) % 8 < 2) m[l] |= LS_SKIP_ATTN;
      if ((3 * (2 * l + 1)) % 8 < 2) m[l] |= LS_SKIP_FFN;
      break;
    case 4: /* the complement: about three quarters skipped */
      if ((3 * (2 * l)) % 8 >= 2) m[l] |= LS_SKIP_ATTN;
      if ((3 * (2 * l + 1)) % 8 >= 2) m[l] |= LS_SKIP_FFN;
      break;
    default: break;
    }
  }
}

static void usage(void) {
  fprintf(stderr, "usage: profile_accuracy -m MODEL --profile P.json [-z TOK] [-t THREADS] [--reps N] "
                  "[--cases P:D,...] [--max-batch N] [--clock wall|cpu]\n");
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *tok = NULL, *prof_path = NULL, *cases_arg = "16:64,64:256,200:32";
  int threads = 1, reps = 7, max_batch = 0, clock = LS_CLOCK_WALL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "-m")) model_path = v;
    else if (!strcmp(a, "-z")) tok = v;
    else if (!strcmp(a, "--profile")) prof_path = v;
    else if (!strcmp(a, "-t")) threads = atoi(v);
    else if (!strcmp(a, "--reps")) reps = atoi(v);
    else if (!strcmp(a, "--cases")) cases_arg = v;
    else if (!strcmp(a, "--max-batch")) max_batch = atoi(v);
    else if (!strcmp(a, "--clock") && (!strcmp(v, "wall") || !strcmp(v, "cpu"))) clock = !strcmp(v, "cpu");
    else {
      usage();
      return 2;
    }
  }
  if (!model_path || !prof_path || threads < 1 || reps < 1) {
    usage();
    return 2;
  }
  int cases[MAX_CASES][2], n_cases = 0, need = 0;
  for (const char *s = cases_arg; *s && n_cases < MAX_CASES;) {
    int np, nd, used;
    if (sscanf(s, "%d:%d%n", &np, &nd, &used) != 2 || np < 1 || nd < 0) {
      fprintf(stderr, "profile_accuracy: --cases '%s': expected PROMPT:DECODE,...\n", cases_arg);
      return 2;
    }
    cases[n_cases][0] = np;
    cases[n_cases][1] = nd;
    if (np + nd > need) need = np + nd;
    n_cases++;
    s += used;
    if (*s == ',') s++;
  }

  ls_err err = {0};
  ls_model m;
  memset(&m, 0, sizeof m);
  ls_profile p;
  ls_ctx *c = NULL;
  if (ls_model_load(&m, model_path, tok, &err) || ls_profile_load(&p, prof_path, &err) ||
      ls_profile_check_model(&p, &m, NULL, prof_path, &err)) {
    fprintf(stderr, "profile_accuracy: %s\n", err.msg);
    return 1;
  }
  if (p.clock != clock)
    fprintf(stderr, "profile_accuracy: warning: profile timed with the %s clock, checking with the %s clock\n",
            ls_clock_name(p.clock), ls_clock_name(clock));
  if (p.n_threads != threads)
    fprintf(stderr, "profile_accuracy: warning: profile measured with %d threads, running %d\n", p.n_threads, threads);
  ls_ctx_params cp = {.n_ctx = need, .max_batch = max_batch > 0 ? max_batch : p.max_batch, .n_threads = threads};
  if (ls_ctx_new(&m, &cp, &c, &err)) {
    fprintf(stderr, "profile_accuracy: %s\n", err.msg);
    return 1;
  }
  int L = m.cfg.n_layers;
  int *prompt = malloc((size_t)need * sizeof *prompt);
  uint8_t *mask = malloc((size_t)L);
  size_t n_samples = (size_t)N_MASKS * (size_t)n_cases * (size_t)reps;
  double *t = malloc(n_samples * sizeof *t), *tp = malloc(n_samples * sizeof *tp);
  if (!prompt || !mask || !t || !tp) return 1;
  for (int i = 0; i < need; i++) prompt[i] = (int)((3u + 104729u * (unsigned)i) % (unsigned)m.cfg.vocab_size);
  /* warm-up: fault in the weights */
  double w0, w1;
  if (ls_time_generation(c, prompt, 8, 0, 8, NULL, clock, &w0, &w1, &err)) {
    fprintf(stderr, "profile_accuracy: %s\n", err.msg);
    return 1;
  }
  printf("# model=%s layers=%d threads=%d reps=%d kernels=%s cpu=\"%s\" commit=%s clock=%s loadavg=%.2f\n", m.name, L,
         threads, reps, ls_ctx_kernels(c), p.cpu_model, ls_git_commit(), ls_clock_name(clock), ls_load_avg());
  printf("%-16s %-15s %6s %6s %8s %12s %12s %12s %12s %8s\n", "model", "mask", "prompt", "decode", "executed",
         "meas_pre_ms", "pred_pre_ms", "meas_ms", "pred_ms", "err_pct");
  /* repetitions round-robin over all (mask, case) pairs: a burst of load
   * from a neighbour then touches one sample of many rows, not a whole row */
  int n_rows = N_MASKS * n_cases;
  for (int r = 0; r < reps; r++)
    for (int row = 0; row < n_rows; row++) {
      int k = row / n_cases, j = row % n_cases;
      make_mask(k, L, mask);
      if (ls_time_generation(c, prompt, cases[j][0], 0, cases[j][1], mask, clock, &t[row * reps + r],
                             &tp[row * reps + r], &err)) {
        fprintf(stderr, "profile_accuracy: %s\n", err.msg);
        return 1;
      }
    }
  for (int row = 0; row < n_rows; row++) {
    int k = row / n_cases, j = row % n_cases;
    make_mask(k, L, mask);
    double meas = median(t + row * reps, reps), meas_pre = median(tp + row * reps, reps);
    double pred = ls_predict_stage_ms(&p, mask, cases[j][0], 0, cases[j][1]);
    double pred_pre = ls_predict_prefill_ms(&p, mask, cases[j][0], 0);
    printf("%-16.16s %-15s %6d %6d %8d %12.4f %12.4f %12.4f %12.4f %+8.2f\n", m.name, mask_name[k], cases[j][0],
           cases[j][1], ls_skip_mask_executed(mask, L), meas_pre, pred_pre, meas, pred, 100.0 * (pred / meas - 1));
  }
  /* the profile itself: decode attention reads more K/V at the last measured
   * context than at the first, so it must cost more (a timing check, hence
   * here and not in test_profile) */
  int first = 0, last = p.n_dec - 1;
  printf("attn_growth %s ctx %d: %.5f ms, ctx %d: %.5f ms %s\n", m.name, p.dec_ctx[first], p.dec_attn_ms[first],
         p.dec_ctx[last], p.dec_attn_ms[last], last > first && p.dec_attn_ms[last] > p.dec_attn_ms[first] ? "PASS" : "FAIL");
  printf("# loadavg_end=%.2f\n", ls_load_avg());
  free(prompt);
  free(mask);
  free(t);
  free(tp);
  ls_ctx_free(c);
  ls_profile_free(&p);
  ls_model_free(&m);
  return 0;
}
