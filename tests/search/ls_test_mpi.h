/* The main of a Check suite that uses MPI (tests/search). */
#ifndef LS_TEST_MPI_H
#define LS_TEST_MPI_H

#include <check.h>

/* Initialises MPI (MPI_THREAD_SERIALIZED, as litestage-search), runs the suite in this process
 * (MPI is initialised once: no forked tests), runs the leak check while Open MPI's plugins are
 * still loaded (ls_search_leak_check, docs/search.md) and finalises MPI; returns the exit
 * status. */
int ls_test_run_mpi(Suite *s, int *argc, char ***argv);

#endif
