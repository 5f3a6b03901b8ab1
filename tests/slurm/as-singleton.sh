#!/usr/bin/env bash
# Test helper: run a command with every Slurm/PMIx/Open MPI launch variable removed, so that
# an MPI program started by `srun --mpi=none` under this wrapper initialises as a singleton
# (world size 1). Used to prove that litestage-search.sbatch detects ranks that did not
# join one communicator. Usage: srun --mpi=none tests/slurm/as-singleton.sh PROG ARGS...
for v in $(env | sed -n 's/^\(\(SLURM\|PMIX\|PMI\|OMPI\)[A-Za-z0-9_]*\)=.*/\1/p'); do
  unset "$v"
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "$@"
