#!/bin/bash
# The tcp bootstrap without gasprun: GASP_COORDINATOR set, rank 0 hosts the
# coordinator; ranks started by hand. A rank that never arrives is named,
# within GASP_TIMEOUT.
source "${TEST_SRCDIR}/gasp/tools/testlib.sh"

# start_rank RANK NRANKS PORT OUTFILE [extra args]: one rank in the background.
start_rank() {
  local rank="$1" n="$2" port="$3" out="$4"
  shift 4
  GASP_RANK="$rank" GASP_NRANKS="$n" GASP_COORDINATOR="127.0.0.1:$port" \
    timeout -k 5 60 "$PROBE" --marker="$MARKER" "$@" >"$out" 2>&1 &
}

echo "== two ranks by hand, rank 1 first (it retries until rank 0 listens)"
PORT=$(free_port)
start_rank 1 2 "$PORT" "$TMPDIR/r1.txt" --expect-method=tcp --expect-size=2
P1=$!
sleep 0.3
start_rank 0 2 "$PORT" "$TMPDIR/r0.txt" --expect-method=tcp --expect-size=2
P0=$!
wait "$P0" || { cat "$TMPDIR/r0.txt" "$TMPDIR/r1.txt"; fail "rank 0 failed"; }
wait "$P1" || { cat "$TMPDIR/r0.txt" "$TMPDIR/r1.txt"; fail "rank 1 failed"; }
# No local ranks from GASP_RANK alone: derived from host names (one host).
expect_in "$TMPDIR/r0.txt" "^boot_probe rank 0/2 local 0/2 method tcp hint '127\.0\.0\.1'$"
expect_in "$TMPDIR/r1.txt" "^boot_probe rank 1/2 local 1/2 method tcp"
expect_in "$TMPDIR/r0.txt" "^boot_probe rank 0: OK"
expect_in "$TMPDIR/r1.txt" "^boot_probe rank 1: OK"

echo "== Slurm-style variables (no local ranks: derived from host names), 3 ranks"
PORT=$(free_port)
PIDS=()
for r in 2 1 0; do
  SLURM_PROCID=$r SLURM_NTASKS=3 GASP_COORDINATOR="127.0.0.1:$PORT" \
    timeout -k 5 60 "$PROBE" --marker="$MARKER" --expect-method=tcp >"$TMPDIR/s$r.txt" 2>&1 &
  PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p" || { cat "$TMPDIR"/s?.txt; fail "a slurm-style rank failed"; }; done
for r in 0 1 2; do expect_in "$TMPDIR/s$r.txt" "^boot_probe rank $r/3 local $r/3 method tcp"; done

echo "== rank 1 never arrives: rank 0 names it within GASP_TIMEOUT=2s"
PORT=$(free_port)
export GASP_TIMEOUT=2s
run 1 env GASP_RANK=0 GASP_NRANKS=2 GASP_COORDINATOR="127.0.0.1:$PORT" "$PROBE" --marker="$MARKER"
expect_in "$ERR" "rank 1 of 2 never arrived at the coordinator 127\.0\.0\.1:$PORT within GASP_TIMEOUT=2s"
[ "$ELAPSED" -le 6 ] || fail "rank 0 took ${ELAPSED}s to give up (GASP_TIMEOUT=2s)"

echo "== rank 0 never arrives: rank 1 gives up within GASP_TIMEOUT=2s naming GASP_COORDINATOR"
run 1 env GASP_RANK=1 GASP_NRANKS=2 GASP_COORDINATOR="127.0.0.1:$PORT" "$PROBE" --marker="$MARKER"
expect_in "$ERR" "rank 1 could not connect to .*the coordinator at GASP_COORDINATOR=127\.0\.0\.1:$PORT .*within GASP_TIMEOUT=2s"
expect_in "$ERR" "rank 0 hosts the coordinator"
[ "$ELAPSED" -le 6 ] || fail "rank 1 took ${ELAPSED}s to give up"
unset GASP_TIMEOUT

echo "== the port is taken: rank 0 says so, naming GASP_COORDINATOR"
PORT=$(free_port)
start_rank 0 2 "$PORT" "$TMPDIR/holder.txt"
HOLDER=$!
sleep 0.5
run 1 env GASP_RANK=0 GASP_NRANKS=2 GASP_COORDINATOR="127.0.0.1:$PORT" "$PROBE"
expect_in "$ERR" "rank 0 cannot host the coordinator at GASP_COORDINATOR=127\.0\.0\.1:$PORT: .*in use"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

echo "== several ranks and no rendezvous: a clear error"
run 1 env PMI_RANK=0 PMI_SIZE=2 "$PROBE"
expect_in "$ERR" "2 ranks but no rendezvous: launch with gasprun, with PMIx \(mpirun / srun --mpi=pmix\), or set GASP_COORDINATOR=host:port"

echo "== malformed launcher variables name the variable"
run 1 env OMPI_COMM_WORLD_RANK=one OMPI_COMM_WORLD_SIZE=2 "$PROBE"
expect_in "$ERR" "OMPI_COMM_WORLD_RANK='one'"

expect_no_orphans
echo "PASS"
