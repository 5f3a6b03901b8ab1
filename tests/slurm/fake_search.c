/* A stand-in for litestage-search with the same command line and the same exit
 * statuses, used to test the Slurm plumbing (sbatch templates, rank-count check,
 * USR1 checkpoint + requeue + resume) independently of the real search.
 *
 *   fake_search run JOB [--store FILE] [--resume]
 *   fake_search validate JOB
 *   fake_search show FILE
 *   fake_search export FILE [--candidate ID] -o OUT.json
 *
 * JOB is a JSON file with "steps": N and "step_ms": M (and optionally "tolerance": T).
 * run does N steps of M ms each, all ranks in lock step; the result is a sum that does
 * not depend on the number of ranks or on interruptions. The "store" is a small text
 * file rewritten (temp + rename) after every step. SIGUSR1/SIGTERM: finish the step,
 * write the store, exit 3. Rank 0 prints "litestage-search: world size N" at start,
 * like the real search.
 *
 * Exit: 0 done, 1 error, 2 usage, 3 interrupted after a clean checkpoint. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

/* Reads the integer after "key": in a small JSON file; -1 if absent. */
static double json_number(const char *path, const char *key, int *found) {
  char buf[4096], pat[64];
  FILE *f = fopen(path, "r");
  *found = 0;
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  snprintf(pat, sizeof pat, "\"%s\"", key);
  char *p = strstr(buf, pat);
  if (!p) return 0;
  p = strchr(p + strlen(pat), ':');
  if (!p) return 0;
  char *end;
  double v = strtod(p + 1, &end);
  if (end == p + 1) return 0;
  *found = 1;
  return v;
}

static int validate(const char *job, long *steps, long *step_ms) {
  int f1, f2;
  if (access(job, R_OK) != 0) {
    fprintf(stderr, "litestage-search: %s: cannot read job spec\n", job);
    return 1;
  }
  *steps = (long)json_number(job, "steps", &f1);
  *step_ms = (long)json_number(job, "step_ms", &f2);
  if (!f1 || !f2 || *steps <= 0 || *step_ms < 0) {
    fprintf(stderr, "litestage-search: %s: needs \"steps\" > 0 and \"step_ms\" >= 0\n", job);
    return 1;
  }
  return 0;
}

static int write_store(const char *path, int ranks, long step, long steps,
                       unsigned long long sum, double tol, int restarts) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return 1;
  fprintf(f, "ranks %d\nstep %ld\nsteps %ld\nsum %llu\ntolerance %g\nrestarts %d\n", ranks,
          step, steps, sum, tol, restarts);
  if (fclose(f) != 0 || rename(tmp, path) != 0) return 1;
  return 0;
}

static int cmd_run(int argc, char **argv) {
  const char *job = NULL, *store = "results.h5";
  int resume = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--store") && i + 1 < argc) store = argv[++i];
    else if (!strcmp(argv[i], "--resume")) resume = 1;
    else if (!job && argv[i][0] != '-') job = argv[i];
    else { fprintf(stderr, "litestage-search: run: unknown argument %s\n", argv[i]); return 2; }
  }
  if (!job) { fprintf(stderr, "usage: litestage-search run JOB.json [--store F] [--resume]\n"); return 2; }
  long steps, step_ms;
  if (validate(job, &steps, &step_ms)) return 1;
  int ft;
  double tol = json_number(job, "tolerance", &ft);

  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank == 0) fprintf(stderr, "litestage-search: world size %d\n", size);
  signal(SIGUSR1, on_signal);
  signal(SIGTERM, on_signal);

  long step = 0;
  unsigned long long sum = 0;
  int restarts = 0;
  if (resume && rank == 0) {
    FILE *f = fopen(store, "r");
    if (f) {
      int r;
      long s, n;
      if (fscanf(f, "ranks %d\nstep %ld\nsteps %ld\nsum %llu\n", &r, &s, &n, &sum) == 4) step = s;
      char line[128];
      while (fgets(line, sizeof line, f)) sscanf(line, "restarts %d", &restarts);
      fclose(f);
      restarts++;
      fprintf(stderr, "litestage-search: resuming at step %ld of %ld\n", step, steps);
    }
  }
  MPI_Bcast(&step, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  MPI_Bcast(&sum, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);

  int rc = 0;
  while (step < steps) {
    /* One step: every rank computes its share of the step's work, sum reduced. */
    unsigned long long part = 0, tot = 0;
    for (long k = rank; k < 1000; k += size) part += (unsigned long long)(step * 1000 + k) * 2654435761ULL % 1000003ULL;
    struct timespec ts = {step_ms / 1000, (step_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    MPI_Allreduce(&part, &tot, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    sum += tot;
    step++;
    if (rank == 0 && write_store(store, size, step, steps, sum, tol, restarts)) {
      fprintf(stderr, "litestage-search: %s: cannot write store\n", store);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0 && step % 5 == 0) fprintf(stderr, "litestage-search: step %ld/%ld\n", step, steps);
    int stop = g_stop, any = 0;
    MPI_Allreduce(&stop, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && step < steps) {
      if (rank == 0) fprintf(stderr, "litestage-search: interrupted at step %ld/%ld, checkpoint written\n", step, steps);
      rc = 3;
      break;
    }
  }
  if (rc == 0 && rank == 0) fprintf(stderr, "litestage-search: done, sum %llu\n", sum);
  MPI_Finalize();
  return rc;
}

static int cmd_export(int argc, char **argv) {
  const char *store = NULL, *out = NULL;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--candidate") && i + 1 < argc) i++;
    else if (!store) store = argv[i];
    else return 2;
  }
  if (!store || !out) return 2;
  int ranks, restarts = 0;
  long step, steps;
  unsigned long long sum;
  double tol = 0;
  FILE *f = fopen(store, "r");
  if (!f || fscanf(f, "ranks %d\nstep %ld\nsteps %ld\nsum %llu\ntolerance %lg\nrestarts %d", &ranks, &step,
                   &steps, &sum, &tol, &restarts) < 4) {
    fprintf(stderr, "litestage-search: %s: not a store\n", store);
    if (f) fclose(f);
    return 1;
  }
  fclose(f);
  if (step != steps) { fprintf(stderr, "litestage-search: %s: search not finished\n", store); return 1; }
  FILE *o = fopen(out, "w");
  if (!o) return 1;
  /* Shaped like a schedule's numbers; values made up from the tolerance so that a sweep's
   * table has something to check (score falls and speedup rises with the tolerance). */
  fprintf(o,
          "{\"fake\": true, \"sum\": %llu, \"ranks\": %d, \"tolerance\": %g, \"reference_score\": 0.9, "
          "\"target\": %g, \"achieved_score\": %g, \"predicted_latency_ms\": %g, \"speedup\": %g, "
          "\"provenance\": {\"candidate_id\": %d}}\n",
          sum, ranks, tol, 0.9 - tol, 0.9 - tol / 2, 100.0 / (1.0 + 5 * tol), 1.0 + 5 * tol, (int)(tol * 100));
  return fclose(o) ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: litestage-search run|validate|export ...\n"); return 2; }
  if (!strcmp(argv[1], "run")) return cmd_run(argc, argv);
  if (!strcmp(argv[1], "export")) return cmd_export(argc, argv);
  if (!strcmp(argv[1], "show")) {
    FILE *f = fopen(argv[2], "r");
    if (!f) { fprintf(stderr, "litestage-search: %s: cannot open\n", argv[2]); return 1; }
    int c;
    while ((c = fgetc(f)) != EOF) putchar(c);
    fclose(f);
    return 0;
  }
  if (!strcmp(argv[1], "validate")) {
    long s, m;
    int rc = validate(argv[2], &s, &m);
    if (!rc) printf("%s: ok\n", argv[2]);
    return rc;
  }
  fprintf(stderr, "litestage-search: unknown command %s\n", argv[1]);
  return 2;
}
