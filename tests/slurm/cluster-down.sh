#!/usr/bin/env bash
# Stop the one-node test cluster started by cluster-up.sh: cancel its jobs, stop
# slurmd, slurmctld and munged (by the pids in their pid files, nothing else).
# Only acts on a cluster whose slurm.conf cluster-up.sh wrote. Idempotent.
# Environment: LS_SLURM_KEEP_MUNGE=1 leaves munged running.
set -u -o pipefail

say() { echo "cluster-down: $*" >&2; }
CONF=/etc/slurm/slurm.conf
MARKER="# written by litestage tests/slurm/cluster-up.sh"

[ "$(id -u)" = 0 ] || { say "SKIP: needs root"; exit 77; }
if [ ! -e "$CONF" ] || ! grep -qF "$MARKER" "$CONF"; then
  say "no cluster started by cluster-up.sh here ($CONF missing or not ours); nothing to do"
  exit 0
fi

# stop NAME PIDFILE: TERM the pid if it is that daemon, wait up to 10 s, then KILL.
stop() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || { say "$1 not running"; return 0; }
  if [ -z "$pid" ] || [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != "$1" ]; then
    say "$1 not running"; return 0
  fi
  say "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    [ -d /proc/"$pid" ] || return 0
    sleep 0.25
  done
  say "$1 (pid $pid) ignores SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

scancel --user="$(id -un)" 2>/dev/null || true
stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
[ "${LS_SLURM_KEEP_MUNGE:-0}" = 1 ] || stop munged /run/munge/munged.pid
say "cluster down"
