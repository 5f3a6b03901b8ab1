#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine from Debian's packages
# (slurm-wlm, munge): munged, slurmctld and slurmd started directly (no systemd),
# CPUs and memory read from the machine. Idempotent: a cluster that already answers
# with this node idle is reused.
#
# Exit status: 0 cluster up, 77 cannot run here (not root, packages missing and not
# installable, daemons do not start; the reason is printed), 1 unexpected error.
#
# Environment: LS_SLURM_WAIT (seconds to wait for the node, default 60),
# LS_SLURM_NO_INSTALL=1 (never call apt-get).
set -u -o pipefail

skip() { echo "cluster-up: SKIP: $*" >&2; exit 77; }
say() { echo "cluster-up: $*" >&2; }

CONF=/etc/slurm/slurm.conf
MARKER="# written by litestage tests/slurm/cluster-up.sh"
WAIT=${LS_SLURM_WAIT:-60}
NODE=$(hostname -s)

# Tail of the daemon logs, for the error message when something does not start.
logs_tail() {
  local f
  for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/munge/munged.log; do
    [ -r "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
  done
}

# State of our node as sinfo reports it ("idle", "mixed", "alloc", "down*", ...), or empty.
node_state() { timeout 10 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1; }

node_usable() {
  case "$(node_state)" in
    idle|mixed|allocated|completing) return 0 ;;
    *) return 1 ;;
  esac
}

# 1. Reuse a running cluster.
if command -v sinfo >/dev/null 2>&1 && node_usable; then
  say "reusing running cluster (node $NODE is $(node_state))"
  exit 0
fi

[ "$(id -u)" = 0 ] || skip "needs root to start munged, slurmctld and slurmd (running as $(id -un))"

# Tests may run in parallel (ctest -j): one bring-up at a time, then reuse.
mkdir -p /run/lock
exec 9>/run/lock/litestage-cluster-up.lock
flock -w 180 9 || skip "another cluster-up.sh holds /run/lock/litestage-cluster-up.lock for 180 s"
if node_usable; then
  say "reusing running cluster (node $NODE is $(node_state))"
  exit 0
fi

# 2. Packages.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 ||
   ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
  [ "${LS_SLURM_NO_INSTALL:-0}" = 1 ] && skip "slurm-wlm/munge not installed and LS_SLURM_NO_INSTALL=1"
  command -v apt-get >/dev/null 2>&1 || skip "slurm-wlm/munge not installed and no apt-get"
  say "installing slurm-wlm munge"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq slurm-wlm munge; } >&2 ||
    skip "apt-get install slurm-wlm munge failed"
fi

# 3. munge: key (the package normally creates it) and daemon.
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key >&2 || skip "mungekey failed"
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  munged --force >&2 9>&- || { logs_tail; skip "munged does not start"; }
  for _ in $(seq 1 20); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.25
  done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || { logs_tail; skip "munged started but munge -n | unmunge fails"; }
fi

# 4. slurm.conf from this machine. A slurm.conf we did not write is left alone.
if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
  skip "$CONF exists and was not written by this script; refusing to overwrite it (the cluster it describes does not answer: node $NODE state '$(node_state)')"
fi
CPUS=$(nproc)
MEM_MB=$(free -m | awk '/^Mem:/ {print $2}')
# A cgroup limit (containers) can be lower than what free reports.
for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
  if [ -r "$f" ]; then
    lim=$(cat "$f")
    if [ "$lim" != max ] && [ "$lim" -gt 0 ] 2>/dev/null; then
      lim_mb=$((lim / 1024 / 1024))
      [ "$lim_mb" -lt "$MEM_MB" ] && MEM_MB=$lim_mb
    fi
  fi
done
# Headroom: slurmd marks the node invalid if RealMemory exceeds what it finds.
REAL_MB=$((MEM_MB * 9 / 10))
[ "$REAL_MB" -ge 100 ] || skip "too little memory ($MEM_MB MB)"

# Containers may not resolve their own host name; then address the node as localhost.
CTLHOST=$NODE
NODEADDR=
if ! getent hosts "$NODE" >/dev/null 2>&1; then
  say "host name $NODE does not resolve; using 127.0.0.1 as its address"
  CTLHOST="$NODE(127.0.0.1)"
  NODEADDR=" NodeAddr=127.0.0.1"
fi

NEWCONF=$(mktemp)
cat >"$NEWCONF" <<EOF
$MARKER
# One-node test cluster on $NODE: $CPUS CPUs, $REAL_MB MB.
ClusterName=local
SlurmctldHost=$CTLHOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
# Seconds between SIGTERM and SIGKILL when a job ends or is cancelled (checkpoint time).
KillWait=30
NodeName=$NODE$NODEADDR CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if ! cmp -s "$NEWCONF" "$CONF" 2>/dev/null; then
  say "writing $CONF ($CPUS CPUs, $REAL_MB MB)"
  cp "$NEWCONF" "$CONF"
  chmod 0644 "$CONF"
  conf_changed=1
else
  conf_changed=0
fi
rm -f "$NEWCONF"

# 5. Daemons. A daemon is running if the pid in its pid file is alive and is that daemon.
running() { # name pidfile
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$1" ]
}
if running slurmctld /run/slurmctld.pid; then
  [ "$conf_changed" = 1 ] && { say "reconfiguring slurmctld"; scontrol reconfigure >&2 || true; }
else
  say "starting slurmctld"
  slurmctld >&2 9>&- || { logs_tail; skip "slurmctld does not start"; }
fi
if running slurmd /run/slurmd.pid; then
  :
else
  say "starting slurmd"
  slurmd >&2 9>&- || { logs_tail; skip "slurmd does not start"; }
fi

# 6. Wait (bounded) for the node to be idle; resume it once if it came up down/drained.
resumed=0
deadline=$((SECONDS + WAIT))
while [ "$SECONDS" -lt "$deadline" ]; do
  node_usable && { say "node $NODE is $(node_state); cluster up"; exit 0; }
  st=$(node_state)
  case "$st" in
    down*|drain*|drained*|fail*|inval*)
      if [ "$resumed" = 0 ]; then
        say "node $NODE is '$st'; asking slurmctld to resume it"
        scontrol update nodename="$NODE" state=resume >&2 || true
        resumed=1
      fi ;;
  esac
  sleep 1
done
logs_tail
scontrol show node "$NODE" >&2 2>/dev/null || true
skip "node $NODE not idle after ${WAIT}s (state '$(node_state)')"
