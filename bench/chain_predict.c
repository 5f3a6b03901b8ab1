/* chain_predict: the latency predictor against the chain as the runtime runs it.
 *
 *   chain_predict -m MODEL [-z TOKENIZER] --profile P.json --template T.json --data D
 *                 [--limit N] [--max-new N] [-t T] [--reps R] [--kv-policy reuse|recompute|shared-prefix]
 *                 [--clock wall|cpu]
 *
 * Runs every example's chain (ls_pipeline_run: prefix reuse under the policy, a per-option
 * stage's calls decoded together; one KV slot per option) R times (default 5, round-robin over
 * the examples) and prints one row per example: the median measured latency (every call's
 * prefill + decode, what `pipeline` reports as latency_ms), the prediction of the chain as run
 * (ls_predict_chain_ms: only positions not taken from the cache prefilled, a stage's calls as one
 * group) and the per-call prediction the search used before (every call alone, whole prompt
 * from position 0), with their errors; then a summary row with the mean absolute errors and the
 * load average. --clock cpu measures the process CPU time of the whole ls_pipeline_run instead
 * (tokenising and rendering included; with -t 1 it leaves out time the process sat preempted,
 * which checks the model on a busy machine, as profile_accuracy's LS_ACC_CLOCK=cpu). A benchmark
 * (times on a shared machine), not a test: docs/latency.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_dataset.h"
#include "ls_pipeline.h"
#include "ls_profile.h"
#include "ls_schedule.h"
#include "ls_template.h"
#include "ls_util.h"

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Every call alone, its whole prompt from position 0 (the search's predictor before prefix reuse
 * and batching were modelled). */
static double per_call_ms(const ls_profile *p, const ls_example_result *r) {
  double t = 0;
  for (int s = 0; s < r->n_stages; s++)
    for (int k = 0; k < r->stages[s].n_calls; k++) {
      const ls_call_result *c = &r->stages[s].calls[k];
      t += ls_predict_stage_ms(p, NULL, c->n_prompt, 0, ls_call_decode_calls(c));
    }
  return t;
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return dflt;
}

int main(int argc, char **argv) {
  const char *model = arg(argc, argv, "-m", NULL), *prof_path = arg(argc, argv, "--profile", NULL);
  const char *tpl_path = arg(argc, argv, "--template", NULL), *data = arg(argc, argv, "--data", NULL);
  if (!model || !prof_path || !tpl_path || !data) {
    fprintf(stderr, "usage: chain_predict -m MODEL [-z TOK] --profile P.json --template T.json --data D "
                    "[--limit N] [--max-new N] [-t T] [--reps R] [--kv-policy P]\n");
    return 2;
  }
  int limit = atoi(arg(argc, argv, "--limit", "4")), max_new = atoi(arg(argc, argv, "--max-new", "0"));
  int threads = atoi(arg(argc, argv, "-t", "1")), reps = atoi(arg(argc, argv, "--reps", "5"));
  int clock = !strcmp(arg(argc, argv, "--clock", "wall"), "cpu") ? LS_CLOCK_CPU : LS_CLOCK_WALL;
  ls_err err = {0};
  int policy = LS_KV_REUSE;
  ls_template *t = NULL;
  ls_dataset *ds = NULL;
  ls_profile p;
  if (ls_kv_policy_parse(arg(argc, argv, "--kv-policy", "reuse"), &policy, "--kv-policy", &err) ||
      ls_template_load(tpl_path, &t, &err) || ls_dataset_load(data, LS_DS_AUTO, &ds, &err) ||
      ls_dataset_select(ds, limit, 0, 1, &err) || ls_profile_load(&p, prof_path, &err)) {
    fprintf(stderr, "chain_predict: %s\n", err.msg);
    return 1;
  }
  for (int s = 0; max_new > 0 && s < t->n_stages; s++)
    if (t->stages[s].max_new_tokens > max_new) t->stages[s].max_new_tokens = max_new;
  int n_seq = 1;
  for (int s = 0; s < t->n_stages; s++)
    for (int i = 0; t->stages[s].per_option && i < ds->n; i++)
      if (ds->ex[i].n_options > n_seq) n_seq = ds->ex[i].n_options;
  ls_engine e;
  ls_engine_params ep = {.model_path = model, .tokenizer_path = arg(argc, argv, "-z", NULL), .n_threads = threads,
                         .n_seq = n_seq, .kv_policy = policy, .top_p = 1.0f, .need_tokenizer = 1,
                         .max_batch = p.max_batch};
  if (ls_engine_open(&e, &ep, &err) || ls_profile_check_model(&p, &e.model, NULL, prof_path, &err)) {
    fprintf(stderr, "chain_predict: %s\n", err.msg);
    return 1;
  }
  double *meas = calloc((size_t)ds->n * reps, sizeof *meas), *pred = calloc((size_t)ds->n, sizeof *pred);
  double *old = calloc((size_t)ds->n, sizeof *old);
  if (!meas || !pred || !old) return 1;
  double load0 = ls_load_avg();
  for (int r = 0; r < reps; r++)
    for (int i = 0; i < ds->n; i++) {
      ls_example_result res;
      double c0 = ls_clock_ms(LS_CLOCK_CPU);
      if (ls_pipeline_run(&e, t, &ds->ex[i], NULL, &res, &err)) {
        fprintf(stderr, "chain_predict: %s\n", err.msg);
        return 1;
      }
      meas[(size_t)i * reps + r] = clock == LS_CLOCK_CPU ? ls_clock_ms(LS_CLOCK_CPU) - c0 : res.total_ms;
      pred[i] = ls_predict_chain_ms(&p, &res, NULL, e.model.cfg.n_layers);
      old[i] = per_call_ms(&p, &res);
      ls_example_result_free(&res);
    }
  double err_new = 0, err_old = 0;
  for (int i = 0; i < ds->n; i++) {
    double *m = meas + (size_t)i * reps;
    qsort(m, (size_t)reps, sizeof *m, cmp_d);
    double med = reps % 2 ? m[reps / 2] : 0.5 * (m[reps / 2 - 1] + m[reps / 2]);
    double en = 100 * (pred[i] / med - 1), eo = 100 * (old[i] / med - 1);
    err_new += fabs(en);
    err_old += fabs(eo);
    printf("bench=chain_predict\tmodel=%s\texample=%s\tpolicy=%s\tthreads=%d\tmeasured_ms=%.3f\tpred_chain_ms=%.3f"
           "\terr_chain_pct=%+.1f\tpred_per_call_ms=%.3f\terr_per_call_pct=%+.1f\n",
           e.model.name, ds->ex[i].id, ls_kv_policy_name(policy), threads, med, pred[i], en, old[i], eo);
  }
  printf("bench=chain_predict\tsummary=1\tmodel=%s\texamples=%d\treps=%d\tpolicy=%s\tthreads=%d\tclock=%s\tprofile_clock=%s"
         "\tmean_abs_err_chain_pct=%.1f\tmean_abs_err_per_call_pct=%.1f\tkernels=%s\tload_start=%.2f\tload_end=%.2f\n",
         e.model.name, ds->n, reps, ls_kv_policy_name(policy), threads, ls_clock_name(clock), ls_clock_name(p.clock),
         err_new / ds->n,
         err_old / ds->n, ls_ctx_kernels(e.ctx), load0, ls_load_avg());
  free(meas);
  free(pred);
  free(old);
  ls_engine_close(&e);
  ls_profile_free(&p);
  ls_dataset_free(ds);
  ls_template_free(t);
  return 0;
}
