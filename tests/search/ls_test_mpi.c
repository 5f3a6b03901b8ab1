#include "ls_test_mpi.h"

#include <mpi.h>

#include "ls_search.h"
#include "ls_test.h"

int ls_test_run_mpi(Suite *s, int *argc, char ***argv) {
  int provided;
  MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  int status = ls_test_run_nofork(s);
  ls_search_leak_check();
  MPI_Finalize();
  return status;
}
