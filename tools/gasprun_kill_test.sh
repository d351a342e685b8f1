#!/bin/bash
# A rank dies under gasprun: the other ranks hear about it from the
# coordinator, name the dead rank and exit non-zero on their own; gasprun
# exits with the dead rank's status; nothing is left running.
source "${TEST_SRCDIR}/gasp/tools/testlib.sh"
export GASP_LOG_LEVEL=info  # gasprun then logs every rank's exit status

echo "== rank 1 of 3 is killed with SIGKILL"
run 137 "$GASPRUN" -np 3 --tag-output "$PROBE" --die-rank=1 --die-how=sigkill --marker="$MARKER"
expect_in "$ERR" "gasprun: rank 1 \([^)]*:[0-9]+\) was killed by signal 9 \(Killed\)"
for r in 0 2; do
  # Each survivor prints the failure, naming rank 1 and how it died ...
  expect_in "$ERR" "^\[$r\] .*job failure: rank 1 \([^)]*\) was killed by signal 9"
  # ... and exits non-zero by itself, before gasprun's grace period ends.
  expect_in "$ERR" "gasprun: rank $r \([^)]*\) exited with status 1"
done
[ "$ELAPSED" -lt 20 ] || fail "took ${ELAPSED}s"
expect_no_orphans

echo "== rank 1 exits with status 3"
run 3 "$GASPRUN" -np 2 "$PROBE" --die-rank=1 --die-how=exit3 --marker="$MARKER"
expect_in "$ERR" "gasprun: rank 1 \([^)]*\) exited with status 3"
expect_in "$ERR" "job failure: rank 1 \([^)]*\) exited with status 3"
expect_no_orphans

echo "== rank 2 of 3 calls Abort(3)"
run 3 "$GASPRUN" -np 3 --tag-output "$PROBE" --die-rank=2 --die-how=abort --marker="$MARKER"
expect_in "$ERR" "^\[2\] .*abort \(exit code 3\): boot_probe rank 2 aborts on purpose"
# gasprun names the aborting rank as the cause, whichever rank it reaps first.
expect_in "$ERR" "^gasprun: rank 2 \([^)]*\) (aborted the job \(exit code 3\)|exited with status 3)"
for r in 0 1; do
  expect_in "$ERR" "^\[$r\] .*rank 2 \([^)]*\) aborted the job \(exit code 3\): boot_probe rank 2 aborts on purpose"
done
expect_no_orphans

echo "PASS"
