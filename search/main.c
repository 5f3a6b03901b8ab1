/* litestage-search: distributed offline search of a per-stage layer-skipping
 * schedule (docs/search.md).
 *
 *   litestage-search validate JOB.json
 *   litestage-search run JOB.json [--store FILE.h5] [--resume] [--force] [--quiet]
 *   litestage-search show FILE.h5
 *   litestage-search export FILE.h5 [--candidate ID] -o schedule.json
 *
 * Exit: 0 ok, 1 error, 2 usage, 3 interrupted after a clean checkpoint
 * (SIGTERM/SIGUSR1; resume with --resume), 4 reference score at chance level. */
#include <errno.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_cli.h"
#include "ls_job.h"
#include "ls_search.h"
#include "ls_store.h"

static volatile sig_atomic_t g_stop = 0;
static volatile sig_atomic_t g_finished = 0; /* the search returned: a signal now stops nothing */
static char g_sigmsg[256];
static size_t g_sigmsg_len;
static void on_signal(int sig) {
  (void)sig;
  if (!g_stop && !g_finished && g_sigmsg_len) {
    ssize_t w = write(2, g_sigmsg, g_sigmsg_len);
    (void)w;
  }
  g_stop = 1;
}

static int load_job(const char *path, ls_job **job) {
  ls_err err = {0};
  if (ls_job_load(path, job, &err) != LS_OK || ls_job_validate(*job, &err) != LS_OK) {
    fprintf(stderr, "litestage-search: %s\n", err.msg);
    ls_cli_print_trace(stderr, &err);
    ls_job_free(*job);
    *job = NULL;
    return LS_EXIT_ERROR;
  }
  return LS_EXIT_OK;
}

/* ---- validate ------------------------------------------------------------ */

typedef struct {
  const char *path;
  int n_args;
} path_opts;

static int need_path(void *ctx, ls_err *err) {
  path_opts *o = ctx;
  return o->path ? LS_OK : ls_err_set(err, LS_EINVAL, "missing the file argument");
}

/* validate and show: one file argument, no options. Returns LS_CLI_GO or the exit status. */
static int one_path_args(const char *name, const char *synopsis, const char *about, int argc, char **argv,
                         const char **path) {
  path_opts o = {0};
  const ls_opt opts[] = {LS_OPT_END};
  const ls_cli cli = {.name = name, .synopsis = synopsis, .about = about, .opts = opts, .args = &o.path,
                      .max_args = 1, .n_args = &o.n_args};
  int status = ls_cli_args(&cli, argc, argv, need_path, &o);
  *path = o.path;
  return status;
}

static int cmd_validate(int argc, char **argv) {
  const char *path;
  int status = one_path_args("litestage-search validate", "JOB.json",
                             "Parses and checks a job spec (model, tokenizer, template, dataset, budgets, grid,\n"
                             "profile) without starting MPI, and prints a one-line summary (docs/search.md).",
                             argc, argv, &path);
  if (status != LS_CLI_GO) return status;
  ls_job *job = NULL;
  int rc = load_job(path, &job);
  if (rc) return rc;
  printf("%s: ok: %d layers (%d sub-layers), %d stages, %d examples in %d shards, objective %s, strategy %s, "
         "budget %d..%d, early-exit grid %dx%d, latency %s\n",
         job->path, job->n_layers, 2 * job->n_layers, job->n_stages, job->n_examples, job->shards,
         ls_objective_name(job->objective), ls_strategy_name(job->strategy), job->budget_min, job->budget_max,
         job->n_windows, job->n_thresholds, job->latency);
  ls_job_free(job);
  return LS_EXIT_OK;
}

/* ---- run ------------------------------------------------------------------ */

/* Validates the job (before MPI starts: a typo costs no allocation), then
 * runs the search on every rank. */
/* This process's rank as the launcher (mpirun, srun) announces it before MPI starts; 0 alone. */
static int launcher_rank(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
  for (int i = 0; i < 4; i++)
    if (getenv(vars[i])) return atoi(getenv(vars[i]));
  return 0;
}

static int run_search(const char *job_path, ls_search_opts *so, int argc, char **argv) {
  char default_store[1100];
  if (!so->store_path) {
    const char *b = strrchr(job_path, '/');
    b = b ? b + 1 : job_path;
    snprintf(default_store, sizeof default_store, "%.*s.h5",
             (int)(strlen(b) > 5 && strcmp(b + strlen(b) - 5, ".json") == 0 ? strlen(b) - 5 : strlen(b)), b);
    so->store_path = default_store;
  }
  ls_job *job = NULL;
  int rc = load_job(job_path, &job);
  if (rc) return rc;
  ls_err perr = {0};
  if (ls_store_check_path(so->store_path, so->resume, so->force, &perr) != LS_OK) {
    if (launcher_rank() == 0) fprintf(stderr, "litestage-search: %s\n", perr.msg); /* every rank fails alike */
    ls_job_free(job);
    return LS_EXIT_ERROR;
  }
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "litestage-search: MPI_Init_thread failed\n");
    ls_job_free(job);
    return LS_EXIT_ERROR;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (provided < MPI_THREAD_SERIALIZED) {
    if (rank == 0) fprintf(stderr, "litestage-search: the MPI library does not provide MPI_THREAD_SERIALIZED\n");
    MPI_Finalize();
    ls_job_free(job);
    return LS_EXIT_ERROR;
  }
  g_sigmsg_len = (size_t)snprintf(g_sigmsg, sizeof g_sigmsg,
                                  "litestage-search: rank %d: stop signal (job cancelled or preempted, or under mpirun "
                                  "another rank died): finishing the work in flight; the store keeps every committed "
                                  "candidate\n", rank);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  if (rank == 0) fprintf(stderr, "litestage-search: world size %d\n", size);
  ls_err err = {0};
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  rc = ls_search_run(job, so, comm, &g_stop, &err);
  g_finished = 1; /* under mpirun, a rank that exits 1 first gets the others SIGTERM'd */
  int status = LS_EXIT_OK;
  if (rc == LS_EINTERRUPTED) {
    if (rank == 0)
      fprintf(stderr, "litestage-search: %s; %s holds every finished candidate; continue with --resume\n", err.msg,
              so->store_path);
    status = LS_EXIT_INTERRUPTED;
  } else if (rc == LS_ECHANCE) {
    if (rank == 0) fprintf(stderr, "litestage-search: %s\n", err.msg);
    status = LS_EXIT_CHANCE;
  } else if (rc != LS_OK) {
    if (err.msg[0]) {
      fprintf(stderr, "litestage-search: rank %d: %s\n", rank, err.msg);
      ls_cli_print_trace(stderr, &err);
    }
    if (rc == LS_EMPI) {
      fprintf(stderr, "litestage-search: %s keeps the last complete commit; continue with --resume\n", so->store_path);
      ls_job_free(job);
      MPI_Abort(MPI_COMM_WORLD, LS_EXIT_ERROR);
      return LS_EXIT_ERROR;
    }
    status = LS_EXIT_ERROR;
  }
  MPI_Comm_free(&comm);
  ls_job_free(job);
  /* Everything this program allocated is freed by now: check for leaks while Open MPI's
   * plugins are still loaded (their state is reachable; after MPI_Finalize they are dlclosed
   * and what they kept would be reported from "<unknown module>"). */
  ls_search_leak_check();
  MPI_Finalize();
  return status;
}

typedef struct {
  const char *job;
  int n_args;
  ls_search_opts so;
} run_opts;

static int need_job(void *ctx, ls_err *err) {
  run_opts *o = ctx;
  return o->job ? LS_OK : ls_err_set(err, LS_EINVAL, "missing JOB.json");
}

static int cmd_run(int argc, char **argv) {
  run_opts o = {0};
  const ls_opt opts[] = {
      LS_STR("--store", "FILE.h5", "the HDF5 results store (default: the job file's name with .h5, in the\n"
             "current directory)", &o.so.store_path),
      LS_SWITCH("--resume", "continue a store left by an interrupted run of the same job", &o.so.resume),
      LS_SWITCH("--force", "replace an existing store instead of refusing", &o.so.force),
      LS_SWITCH("-q|--quiet", "no progress lines on stderr", &o.so.quiet),
      LS_OPT_END,
  };
  const ls_cli cli = {
      .name = "litestage-search run",
      .synopsis = "JOB.json [--store FILE.h5] [--resume] [--force] [--quiet]",
      .about = "Runs the search of a job on every MPI rank (mpirun -np N litestage-search run ..., or srun):\n"
               "reference pass, importance, budget search, early-exit sweep; every candidate is committed\n"
               "to the store. Exit 3: interrupted after a clean checkpoint (continue with --resume);\n"
               "exit 4: the reference score is at chance level.",
      .opts = opts,
      .args = &o.job,
      .max_args = 1,
      .n_args = &o.n_args,
  };
  int status = ls_cli_args(&cli, argc, argv, need_job, &o);
  if (status != LS_CLI_GO) return status;
  return run_search(o.job, &o.so, argc, argv);
}

/* ---- show, export ----------------------------------------------------------- */

static int cmd_show(int argc, char **argv) {
  const char *path;
  int status = one_path_args("litestage-search show", "FILE.h5",
                             "Prints a store's provenance, reference, importance ranking, candidates, Pareto front\n"
                             "and chosen schedule.",
                             argc, argv, &path);
  if (status != LS_CLI_GO) return status;
  ls_err err = {0};
  if (ls_search_show(path, &err) == LS_OK) return LS_EXIT_OK;
  fprintf(stderr, "litestage-search show: %s\n", err.msg);
  ls_cli_print_trace(stderr, &err);
  return LS_EXIT_ERROR;
}

typedef struct {
  const char *store, *out;
  long long id;
  int n_args;
} export_opts;

static int parse_candidate(const char *flag, const char *v, void *dest, ls_err *err) {
  char *end;
  errno = 0;
  long long id = strtoll(v, &end, 10);
  if (errno || end == v || *end || id < 0)
    return ls_err_set(err, LS_EINVAL, "%s '%s': expected a candidate id >= 0", flag, v);
  *(long long *)dest = id;
  return LS_OK;
}

static int export_check(void *ctx, ls_err *err) {
  export_opts *o = ctx;
  if (!o->store) return ls_err_set(err, LS_EINVAL, "missing FILE.h5");
  if (!o->out) return ls_err_set(err, LS_EINVAL, "missing -o schedule.json");
  return LS_OK;
}

static int cmd_export(int argc, char **argv) {
  export_opts o = {.id = -1};
  const ls_opt opts[] = {
      LS_FN("--candidate", "ID", "export this candidate instead of the search's choice", &o.id, parse_candidate),
      LS_STR("-o|--output", "FILE", "the schedule to write (JSON, atomically; /dev/stdout works)", &o.out),
      LS_OPT_END,
  };
  const ls_cli cli = {
      .name = "litestage-search export",
      .synopsis = "FILE.h5 [--candidate ID] -o schedule.json",
      .about = "Writes the chosen schedule (or a given candidate's) as the JSON litestage-run pipeline\n"
               "--schedule reads (docs/formats.md, \"Schedules\").",
      .opts = opts,
      .args = &o.store,
      .max_args = 1,
      .n_args = &o.n_args,
  };
  int status = ls_cli_args(&cli, argc, argv, export_check, &o);
  if (status != LS_CLI_GO) return status;
  ls_err err = {0};
  return ls_search_export(o.store, o.id, o.out, &err) ? ls_cli_fail(&cli, &err) : LS_EXIT_OK;
}

static const ls_cli_command commands[] = {
    {"validate", cmd_validate, "check a job spec without starting MPI"},
    {"run", cmd_run, "run a job's search on every MPI rank into an HDF5 store"},
    {"show", cmd_show, "print what a store holds"},
    {"export", cmd_export, "write a store's chosen schedule (or a candidate's) as JSON"},
};

int main(int argc, char **argv) {
  return ls_cli_dispatch("litestage-search", commands, (int)(sizeof commands / sizeof commands[0]), argc, argv);
}
