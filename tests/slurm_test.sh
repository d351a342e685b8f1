#!/usr/bin/env bash
# The examples under a real single-node Slurm started here (slurmctld +
# slurmd, auth/none, private state dir), launched with
# `srun --mpi=pmix -K -O -n 4`: PMIx bootstrap through Slurm's pmix plugin.
source "$(dirname "$0")/lib.sh"
for b in slurmctld slurmd srun sinfo; do
  command -v $b >/dev/null || { bad "$b not installed (tools/setup installs slurm)"; finish; exit 1; }
done
# Short path: Slurm and PMIx put sockets under it.
SD=$(mktemp -d /tmp/gasp-slurm.XXXXXX)
export SLURM_CONF=$SD/slurm.conf
HOST=$(hostname -s)
MEM=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 1024 ))
mkdir -p "$SD/state" "$SD/spool" "$SD/run" "$SD/log"
cat > "$SLURM_CONF" <<CONF
ClusterName=gasptest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${GASP_TEST_SLURM_PORT:-16817}
SlurmdPort=$(( ${GASP_TEST_SLURM_PORT:-16817} + 1 ))
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$SD/state
SlurmdSpoolDir=$SD/spool
SlurmctldPidFile=$SD/run/slurmctld.pid
SlurmdPidFile=$SD/run/slurmd.pid
SlurmctldLogFile=$SD/log/slurmctld.log
SlurmdLogFile=$SD/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MessageTimeout=10
KillWait=5
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
cleanup() {
  for d in slurmd slurmctld; do
    [ -s "$SD/run/$d.pid" ] && kill "$(cat "$SD/run/$d.pid")" 2>/dev/null
  done
  sleep 0.5
  pkill -f "slurmstepd.*$SD" 2>/dev/null
  rm -rf "$SD"
}
trap cleanup EXIT
slurmctld -f "$SLURM_CONF" && slurmd -f "$SLURM_CONF" -N "$HOST" || { bad "slurm daemons did not start"; cat "$SD"/log/*; finish; exit 1; }
for i in $(seq 1 200); do
  st=$(sinfo -h -N -o %T 2>/dev/null | head -n1)
  [ "$st" = idle ] && break
  sleep 0.1
done
[ "$st" = idle ] && ok "private Slurm up (node $HOST idle)" || { bad "node not idle: '$st'"; tail "$SD"/log/*; finish; exit 1; }
cd /tmp
for prog in "examples/jacobi2d 128 20" "examples/counter 100"; do
  set -- $prog
  b=$(bin "$1"); shift
  log="$TMP/srun-$(basename "$b").log"
  run_job "$log" 240 env GASP_LOG_LEVEL=info srun --mpi=pmix -K -O -n 4 "$b" "$@"
  if [ "$RC" = 0 ] && grep -q verified "$log" && grep -q 'boot=pmix' "$log"; then
    ok "srun --mpi=pmix -K -O -n 4 $prog"
  else
    bad "srun --mpi=pmix -n 4 $prog (rc=$RC)"; tail -n 20 "$log" | sed 's/^/    | /'
  fi
done

# A rank stopped (SIGSTOP) under srun: the others name it (host:pid).
GASP_TIMEOUT=60s stop_and_continue "$TMP/stop.log" srun --mpi=pmix -K -O -n 3
finish
