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
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_job.h"
#include "ls_search.h"

static volatile sig_atomic_t g_stop = 0;
static char g_sigmsg[256];
static size_t g_sigmsg_len;
static void on_signal(int sig) {
  (void)sig;
  if (!g_stop && g_sigmsg_len) {
    ssize_t w = write(2, g_sigmsg, g_sigmsg_len);
    (void)w;
  }
  g_stop = 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: litestage-search validate JOB.json\n"
          "       litestage-search run JOB.json [--store FILE.h5] [--resume] [--force] [--quiet]\n"
          "       litestage-search show FILE.h5\n"
          "       litestage-search export FILE.h5 [--candidate ID] -o schedule.json\n");
  return LS_EXIT_USAGE;
}

static int load_job(const char *path, ls_job **job) {
  ls_err err = {0, ""};
  if (ls_job_load(path, job, &err) != LS_OK || ls_job_validate(*job, &err) != LS_OK) {
    fprintf(stderr, "litestage-search: %s\n", err.msg);
    ls_job_free(*job);
    *job = NULL;
    return LS_EXIT_ERROR;
  }
  return LS_EXIT_OK;
}

static int cmd_validate(int argc, char **argv) {
  if (argc != 3) return usage();
  ls_job *job = NULL;
  int rc = load_job(argv[2], &job);
  if (rc) return rc;
  printf("%s: ok: %d layers (%d sub-layers), %d stages, %d examples in %d shards, objective %s, strategy %s, "
         "budget %d..%d, early-exit grid %dx%d, latency %s\n",
         job->path, job->n_layers, 2 * job->n_layers, job->n_stages, job->n_examples, job->shards,
         ls_objective_name(job->objective), ls_strategy_name(job->strategy), job->budget_min, job->budget_max,
         job->n_windows, job->n_thresholds, job->latency);
  ls_job_free(job);
  return LS_EXIT_OK;
}

static int cmd_run(int argc, char **argv) {
  if (argc < 3) return usage();
  ls_search_opts o = {0};
  const char *job_path = argv[2];
  char default_store[1100];
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
      o.store_path = argv[++i];
    } else if (strcmp(argv[i], "--resume") == 0) {
      o.resume = 1;
    } else if (strcmp(argv[i], "--force") == 0) {
      o.force = 1;
    } else if (strcmp(argv[i], "--quiet") == 0) {
      o.quiet = 1;
    } else {
      fprintf(stderr, "litestage-search run: unknown argument %s\n", argv[i]);
      return usage();
    }
  }
  if (!o.store_path) {
    const char *b = strrchr(job_path, '/');
    b = b ? b + 1 : job_path;
    snprintf(default_store, sizeof default_store, "%.*s.h5",
             (int)(strlen(b) > 5 && strcmp(b + strlen(b) - 5, ".json") == 0 ? strlen(b) - 5 : strlen(b)), b);
    o.store_path = default_store;
  }
  /* The whole job is validated before MPI starts: a typo costs no allocation. */
  ls_job *job = NULL;
  int rc = load_job(job_path, &job);
  if (rc) return rc;
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
  ls_err err = {0, ""};
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  rc = ls_search_run(job, &o, comm, &g_stop, &err);
  int status = LS_EXIT_OK;
  if (rc == LS_EINTERRUPTED) {
    if (rank == 0)
      fprintf(stderr, "litestage-search: %s; %s holds every finished candidate; continue with --resume\n", err.msg,
              o.store_path);
    status = LS_EXIT_INTERRUPTED;
  } else if (rc == LS_ECHANCE) {
    if (rank == 0) fprintf(stderr, "litestage-search: %s\n", err.msg);
    status = LS_EXIT_CHANCE;
  } else if (rc != LS_OK) {
    fprintf(stderr, "litestage-search: rank %d: %s\n", rank, err.msg);
    if (rc == LS_EMPI) {
      fprintf(stderr, "litestage-search: %s keeps the last complete commit; continue with --resume\n", o.store_path);
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

static int cmd_show(int argc, char **argv) {
  if (argc != 3) return usage();
  ls_err err = {0, ""};
  if (ls_search_show(argv[2], &err) != LS_OK) {
    fprintf(stderr, "litestage-search show: %s\n", err.msg);
    return LS_EXIT_ERROR;
  }
  return LS_EXIT_OK;
}

static int cmd_export(int argc, char **argv) {
  if (argc < 3) return usage();
  long long id = -1;
  const char *out = NULL;
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--candidate") == 0 && i + 1 < argc) {
      char *end;
      id = strtoll(argv[++i], &end, 10);
      if (*end || id < 0) {
        fprintf(stderr, "litestage-search export: --candidate %s: expected a candidate id >= 0\n", argv[i]);
        return LS_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      return usage();
    }
  }
  if (!out) return usage();
  ls_err err = {0, ""};
  if (ls_search_export(argv[2], id, out, &err) != LS_OK) {
    fprintf(stderr, "litestage-search export: %s\n", err.msg);
    return LS_EXIT_ERROR;
  }
  return LS_EXIT_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  if (strcmp(argv[1], "validate") == 0) return cmd_validate(argc, argv);
  if (strcmp(argv[1], "run") == 0) return cmd_run(argc, argv);
  if (strcmp(argv[1], "show") == 0) return cmd_show(argc, argv);
  if (strcmp(argv[1], "export") == 0) return cmd_export(argc, argv);
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage();
    return LS_EXIT_OK;
  }
  return usage();
}
