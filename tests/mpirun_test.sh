#!/usr/bin/env bash
# The examples under Open MPI's real mpirun: rank, size and the endpoint
# exchange come from PMIx (no MPI library is linked into gasp).
source "$(dirname "$0")/lib.sh"
if ! command -v mpirun >/dev/null; then
  bad "mpirun not installed (tools/setup installs openmpi-bin)"; finish; exit 1
fi
for np in 2 4; do
  for prog in "examples/jacobi2d 128 20" "examples/counter 100" "tests/drf_random 4"; do
    set -- $prog
    b=$(bin "$1"); shift
    log="$TMP/mpirun-$(basename "$b")-$np.log"
    run_job "$log" 240 mpirun --oversubscribe -np "$np" -x GASP_LOG_LEVEL=info -x GASP_TIMEOUT "$b" "$@"
    if [ "$RC" = 0 ] && grep -q verified "$log" && grep -q 'boot=pmix' "$log"; then
      ok "mpirun -np $np $prog (PMIx bootstrap)"
    else
      bad "mpirun -np $np $prog (rc=$RC)"; tail -n 20 "$log" | sed 's/^/    | /'
    fi
  done
done

# Listeners bind where the peers are, never every interface (unless
# GASP_TCP_ADDR=0.0.0.0 says so).
b=$(bin examples/jacobi2d)
mpirun --oversubscribe -np 2 -x GASP_TIMEOUT "$b" 512 1500 >"$TMP/bind.log" 2>&1 &
job=$!
addrs=$(watch_listeners jacobi2d 3)
wait "$job"
expect_own_address "$addrs" 2 "mpirun: the ranks"

# A rank stopped (SIGSTOP) under mpirun: the others name it (host:pid).
GASP_TIMEOUT=60s stop_and_continue "$TMP/stop.log" mpirun --oversubscribe -np 3 -x GASP_TIMEOUT
finish
