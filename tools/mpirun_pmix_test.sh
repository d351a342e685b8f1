#!/bin/bash
# Real Open MPI mpirun: ranks bootstrap through PMIx (method pmix), with no
# MPI library in the program; gasprun -H execs mpirun.
source "${TEST_SRCDIR}/gasp/tools/testlib.sh"

# By name: Open MPI takes an absolute argv[0] as an installation prefix
# (and refuses /bin/mpirun, whose prefix would be "/").
MPIRUN=mpirun
if ! command -v mpirun >/dev/null; then
  # Only where Open MPI cannot exist; on this project's machines it is installed.
  echo "SKIP: mpirun (Open MPI) is not installed"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# ASan builds: libpmix leaks a few bytes inside PMIx_Init (not ours). The
# slow unwinder sees through libpmix (no frame pointers), so that the
# suppression can stay narrow (frames under PMIx_Init only).
export LSAN_OPTIONS="suppressions=${TEST_SRCDIR}/gasp/boot/pmix_lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"

echo "== mpirun --oversubscribe -np 4: PMIx bootstrap"
run 0 "$MPIRUN" --oversubscribe -np 4 "$PROBE" --expect-method=pmix --expect-size=4 --marker="$MARKER"
expect_in "$OUT" "^boot_probe rank [0-3]/4 local [0-3]/4 method pmix hint ''$" 4
for r in 0 1 2 3; do expect_in "$OUT" "^boot_probe rank $r: OK"; done
expect_no_orphans

echo "== gasprun -H execs mpirun (printed at GASP_LOG_LEVEL=info)"
run 0 env GASP_LOG_LEVEL=info "$GASPRUN" -np 2 -H localhost:2 --timeout 30 "$PROBE" \
  --expect-method=pmix --expect-size=2 --marker="$MARKER"
expect_in "$ERR" "gasprun: exec .*mpirun -np 2 -H localhost:2 -x GASP_TIMEOUT=30 .*boot_probe"
for r in 0 1; do expect_in "$OUT" "^boot_probe rank $r: OK"; done
expect_no_orphans

echo "== gasprun passes -N, --map-by, --bind-to and --oversubscribe to mpirun"
run 0 env GASP_LOG_LEVEL=info "$GASPRUN" -np 3 -H localhost:2 -N 3 --map-by slot --bind-to none \
  --oversubscribe --timeout 30 "$PROBE" --expect-method=pmix --expect-size=3 --marker="$MARKER"
expect_in "$ERR" "gasprun: exec .*mpirun -np 3 -H localhost:2 --npernode 3 --map-by slot --bind-to none --oversubscribe "
for r in 0 1 2; do expect_in "$OUT" "^boot_probe rank $r: OK"; done
expect_no_orphans

echo "== a rank that never reaches the fence: the others fail at GASP_TIMEOUT=3s"
run_status() {
  local start end
  start=$(date +%s)
  timeout -k 5 120 "$@" >"$OUT" 2>"$ERR"
  STATUS=$?
  end=$(date +%s)
  ELAPSED=$((end - start))
}
GASP_TIMEOUT=3s run_status "$MPIRUN" --oversubscribe -np 3 -x GASP_TIMEOUT "$PROBE" --die-rank=1 \
  --die-how=stall --marker="$MARKER"
[ "$STATUS" != 0 ] && [ "$STATUS" != 124 ] || fail "mpirun exited $STATUS"
expect_in "$ERR" "the PMIx fence of rank [02] of 3 did not complete within GASP_TIMEOUT=3s"
[ "$ELAPSED" -lt 30 ] || fail "took ${ELAPSED}s"
expect_no_orphans

echo "== a rank killed under mpirun: the job ends, nothing survives"
export GASP_TIMEOUT=20s
run_status "$MPIRUN" --oversubscribe -np 3 "$PROBE" --die-rank=1 --die-how=sigkill --marker="$MARKER"
[ "$STATUS" != 0 ] && [ "$STATUS" != 124 ] || fail "mpirun exited $STATUS"
expect_no_orphans

echo "PASS"
