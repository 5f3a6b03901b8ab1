/* Reference results shared between ranks (docs/search.md, "Method" 1).
 *
 * The reference pass is distributed as work units like any candidate; the
 * fidelity objective and the importance pass then need every example's full
 * reference run (prompt and output tokens of every stage call) on every rank.
 * Each rank packs the examples it computed into one byte buffer and an
 * MPI_Allgatherv gives everyone all of them. */
#ifndef LS_REFSHARE_H
#define LS_REFSHARE_H

#include <mpi.h>
#include <stdint.h>

#include "ls_error.h"
#include "ls_pipeline.h"

/* Packs ref[i] for every i with mine[i] into a malloc'd buffer (*buf, *len). */
int ls_ref_pack(const ls_example_result *ref, int n, const uint8_t *mine, char **buf, size_t *len, ls_err *err);
/* Unpacks a buffer of ls_ref_pack into ref[] (the examples it holds; each must be empty). */
int ls_ref_unpack(const char *buf, size_t len, ls_example_result *ref, int n, ls_err *err);

/* Collective: afterwards every rank holds every ref[i]; on entry ref[i] is filled where mine[i]
 * and empty elsewhere. */
int ls_ref_allgather(MPI_Comm comm, ls_example_result *ref, int n, const uint8_t *mine, ls_err *err);

#endif
