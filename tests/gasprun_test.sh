#!/usr/bin/env bash
# Every example and the randomized DRF program at 2 and 4 ranks under gasprun.
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
for np in 2 4; do
  for prog in "examples/hello" "examples/counter 100" "examples/jacobi2d 128 20" \
              "examples/shared_tree 20000" "examples/ledger 50" "tests/drf_random 6" "tests/fault_probe threads" "tests/fault_probe memory" "tests/fault_probe selective" \
              "tests/fault_probe falseshare" "tests/fault_probe hot" \
              "tests/fault_probe allreduce"; do
    set -- $prog
    b=$(bin "$1"); shift
    log="$TMP/$(basename "$b")-$np.log"
    run_job "$log" 240 "$GASPRUN" -np "$np" "$b" "$@"
    if [ "$RC" = 0 ] && grep -q verified "$log" && ! grep -qE 'MISMATCH|FAILED' "$log"; then
      ok "gasprun -np $np $prog"
    else
      bad "gasprun -np $np $prog (rc=$RC)"; tail -n 20 "$log" | sed 's/^/    | /'
    fi
  done
done
# Negative control: without the selective Acquire the reader must see the
# stale cached copy (proves the selective test can fail).
run_job "$TMP/noacq.log" 120 env FAULT_PROBE_SKIP_ACQUIRE=1 "$GASPRUN" -np 2 "$(bin tests/fault_probe)" selective
[ "$RC" != 0 ] && grep -q "1536 bad values" "$TMP/noacq.log" && ok "without Acquire(range) the stale copy is seen" \
  || { bad "negative control: rc=$RC"; tail -5 "$TMP/noacq.log"; }
# More ranks than cores: adaptive waits stop spinning (logged at info),
# unless GASP_SPIN_US is set.
over=$(( $(nproc) + 1 ))
run_job "$TMP/over.log" 120 env GASP_LOG_LEVEL=info "$GASPRUN" -np "$over" "$(bin examples/hello)"
[ "$RC" = 0 ] && [ "$(grep -c "ranks on this host share .* waits block at once" "$TMP/over.log")" = "$over" ] \
  && ok "$over ranks on $(nproc) cores: every rank's waits block at once" \
  || { bad "oversubscribed spin (rc=$RC)"; tail -5 "$TMP/over.log"; }
run_job "$TMP/over-set.log" 120 env GASP_LOG_LEVEL=info GASP_SPIN_US=50 "$GASPRUN" -np "$over" "$(bin examples/hello)"
[ "$RC" = 0 ] && ! grep -q "waits block at once" "$TMP/over-set.log" \
  && ok "an explicit GASP_SPIN_US is kept when oversubscribed" \
  || { bad "explicit GASP_SPIN_US (rc=$RC)"; tail -5 "$TMP/over-set.log"; }
# GASP_STATS=1 prints each rank's counters at Finalize, with the rank prefix.
run_job "$TMP/stats.log" 120 env GASP_STATS=1 "$GASPRUN" -np 2 "$(bin examples/jacobi2d)" 64 4
expect_in "$TMP/stats.log" '^\[gasp r1/2 [^]]+\] stats read_faults +[1-9]' "GASP_STATS=1 prints per-rank counters"
# GASP_LOG_FILE with %r writes one file per rank.
run_job "$TMP/logfile.log" 120 env GASP_LOG_LEVEL=info GASP_LOG_FILE="$TMP/rank-%r.log" "$GASPRUN" -np 2 "$(bin examples/hello)"
expect_in "$TMP/rank-1.log" 'gasp r1/2 .*initialized: 2 ranks' "GASP_LOG_FILE=rank-%r.log names the file by rank"
# The job secret's memfd goes to the ranks only: the name server gasprun
# starts must not inherit it (gasprun itself holds it: the control).
"$GASPRUN" -np 2 "$(bin examples/jacobi2d)" 256 400 >"$TMP/secretfd.log" 2>&1 &
job=$!
ns=""
for _ in $(seq 100); do ns=$(pgrep -P "$job" -x gasp_nameserver) && break; sleep 0.05; done
if [ -z "$ns" ]; then
  bad "secret memfd: no name server found under gasprun"
else
  ls -l "/proc/$job/fd" 2>/dev/null | grep -q "memfd:gasp-job-secret" &&
    ok "control: gasprun holds the job secret's memfd" || bad "control: gasprun has no secret memfd"
  ls -l "/proc/$ns/fd" 2>/dev/null | grep -q "memfd:gasp-job-secret" &&
    bad "the name server inherited the job secret's memfd" ||
    ok "the name server does not inherit the job secret"
fi
wait "$job" || bad "secret memfd job: rc=$?"
finish
