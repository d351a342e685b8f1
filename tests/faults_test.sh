#!/usr/bin/env bash
# Bad input and dead peers: each case must end quickly with a clear message
# and a non-zero status, leaving no process behind.
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
PROBE=$(bin tests/fault_probe)
HELLO=$(bin examples/hello)

# 1. A load inside the range but outside any allocation.
run_job "$TMP/unalloc.log" 60 "$GASPRUN" -np 2 "$PROBE" unallocated
[ "$RC" != 0 ] && ok "unallocated load: job exits non-zero ($RC)" || bad "unallocated load: rc=0"
expect_in "$TMP/unalloc.log" "load of address 0x[0-9a-f]+: inside the global range .* outside any allocation" \
  "unallocated load: message names the address"

# 1b. Mismatched collective calls stop the job, naming both calls.
run_job "$TMP/mm-alloc.log" 60 "$GASPRUN" -np 2 "$PROBE" mismatch-alloc
[ "$RC" != 0 ] && ok "mismatched CoAlloc: job exits non-zero ($RC)" || bad "mismatched CoAlloc: rc=0"
expect_in "$TMP/mm-alloc.log" "rank 1 \([^)]*\) called CoAlloc\(4096 bytes, block\) where this rank \(rank 0\) called CoAlloc\(8192 bytes, block\) \(collective #[0-9]+\)|rank 0 \([^)]*\) called CoAlloc\(8192 bytes, block\) where this rank \(rank 1\) called CoAlloc\(4096 bytes, block\) \(collective #[0-9]+\)" \
  "mismatched CoAlloc: message names both calls"
! grep -q "should not happen" "$TMP/mm-alloc.log" && ok "mismatched CoAlloc: no rank went on" || bad "a rank returned from a mismatched CoAlloc"
run_job "$TMP/mm-ar.log" 60 "$GASPRUN" -np 2 "$PROBE" mismatch-allreduce
[ "$RC" != 0 ] && ok "mismatched Allreduce: job exits non-zero ($RC)" || bad "mismatched Allreduce: rc=0"
expect_in "$TMP/mm-ar.log" "called Allreduce\(n=(1|2), sum\) where this rank \(rank [01]\) called Allreduce\(n=(2|1), sum\)" \
  "mismatched Allreduce: message names both calls"
! grep -q "should not happen" "$TMP/mm-ar.log" && ok "mismatched Allreduce: no rank went on" || bad "a rank returned from a mismatched Allreduce"
run_job "$TMP/mm-fin.log" 60 "$GASPRUN" -np 2 "$PROBE" barrier-finalize
[ "$RC" != 0 ] && ok "Barrier against Finalize: job exits non-zero ($RC)" || bad "Barrier against Finalize: rc=0"
expect_in "$TMP/mm-fin.log" "called (Finalize\(\) where this rank \(rank 0\) called Barrier\(\)|Barrier\(\) where this rank \(rank 1\) called Finalize\(\))" \
  "Barrier against Finalize: message names both calls"
run_job "$TMP/mm-grant.log" 60 "$GASPRUN" -np 2 "$PROBE" mismatch-grant
[ "$RC" != 0 ] && ok "mismatched CoGrant: job exits non-zero ($RC)" || bad "mismatched CoGrant: rc=0"
expect_in "$TMP/mm-grant.log" "collective mismatch: .*called Barrier\(\) where this rank \(rank [01]\) called Barrier\(\) \(collective #[0-9]+; an earlier collective call differed\)" \
  "mismatched CoGrant: caught at the next barrier"

# 1c. An overflow past a collective array: silent without guard pages (the
#     negative control), a fault naming the array with GASP_GUARD_PAGES=4 (2 pages past the end).
run_job "$TMP/ovf0.log" 60 "$GASPRUN" -np 2 "$PROBE" overflow
[ "$RC" = 0 ] && grep -q "landed silently" "$TMP/ovf0.log" && ok "overflow without guard pages lands in the next array" \
  || { bad "overflow negative control (rc=$RC)"; tail -5 "$TMP/ovf0.log"; }
run_job "$TMP/ovf1.log" 60 env GASP_GUARD_PAGES=4 "$GASPRUN" -np 2 "$PROBE" overflow
[ "$RC" != 0 ] && ! grep -q "landed silently" "$TMP/ovf1.log" && ok "GASP_GUARD_PAGES=4: the overflow faults" \
  || { bad "GASP_GUARD_PAGES=4: rc=$RC"; tail -5 "$TMP/ovf1.log"; }
expect_in "$TMP/ovf1.log" "store of address 0x[0-9a-f]+: .*outside any allocation .*; 8192 bytes past the end of the collective allocation of 4096 bytes at 0x[0-9a-f]+ \(collective call #[0-9]+\)" \
  "GASP_GUARD_PAGES=4: the message names the array overrun"

# 2. A rank killed with SIGKILL mid-run.
export GASP_TIMEOUT=10s
start=$(date +%s)
run_job "$TMP/kill.log" 60 "$GASPRUN" -np 4 "$PROBE" kill 2
took=$(( $(date +%s) - start ))
[ "$RC" = 137 ] && ok "killed rank: gasprun exits 137 (the rank's status)" || bad "killed rank: gasprun rc=$RC"
[ "$took" -le 12 ] && ok "killed rank: job ended in ${took}s (< GASP_TIMEOUT+2)" || bad "killed rank: took ${took}s"
expect_in "$TMP/kill.log" "rank 2 .*(killed|signal 9|lost|died)" "killed rank: survivors name rank 2"
sleep 1
if pgrep -f "$PROBE kill" >/dev/null; then bad "killed rank: orphan processes remain: $(pgrep -af "$PROBE kill")"; pkill -9 -f "$PROBE kill"; else ok "killed rank: no orphans"; fi

# 3. A rank that never arrives at the rendezvous.
PORT=$((20000 + RANDOM % 20000))
start=$(date +%s)
run_job "$TMP/never.log" 60 env GASP_COORDINATOR=127.0.0.1:$PORT GASP_BOOT=tcp PMI_RANK=0 PMI_SIZE=2 GASP_TIMEOUT=3s "$HELLO"
took=$(( $(date +%s) - start ))
[ "$RC" != 0 ] && [ "$took" -le 10 ] && ok "missing rank: rank 0 gives up after ${took}s" || bad "missing rank: rc=$RC after ${took}s"
expect_in "$TMP/never.log" "rank 1" "missing rank: error names rank 1"

# 4. Malformed settings stop Init with the variable named.
run_job "$TMP/badsize.log" 30 env GASP_SIZE=lots "$GASPRUN" -np 2 "$HELLO"
[ "$RC" != 0 ] && ok "GASP_SIZE=lots: non-zero exit" || bad "GASP_SIZE=lots: rc=0"
expect_in "$TMP/badsize.log" "GASP_SIZE=lots is not valid" "GASP_SIZE=lots: message names the setting"
run_job "$TMP/badto.log" 30 env GASP_TIMEOUT=-1s "$GASPRUN" -np 2 "$HELLO"
expect_in "$TMP/badto.log" "GASP_TIMEOUT=-1s is not valid" "GASP_TIMEOUT=-1s: message names the setting"
# A stopped rank is named by the others while they wait (after
# GASP_TIMEOUT/6, at least 10 s), not their dissemination partner; once it
# is continued the job completes.
GASP_TIMEOUT=60s stop_and_continue "$TMP/stop.log" "$GASPRUN" -np 3

# The same for a lock whose holder is stopped: the waiters queue behind it
# (or behind a waiter that queued behind it) and say it does not answer.
GASP_TIMEOUT=60s run_stopped "$TMP/lockstop.log" lockstop "$GASPRUN" -np 3
expect_in "$TMP/lockstop.log" "still waiting for global lock 0x[0-9a-f]+ for 1[0-9]s: queued behind rank 2 \\([^)]*:$STOPPED\\), which does not answer" \
  "a stopped lock holder is named by the rank queued behind it"
expect_in "$TMP/lockstop.log" "still waiting for global lock 0x[0-9a-f]+ for 1[0-9]s: queued behind rank [01] \\([^)]*\\) thread [0-9]+, which waits too; rank 2 \\([^)]*:$STOPPED\\) \\(2 ahead\\) does not answer" \
  "a stopped lock holder is named by the rank queued second"
[ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/lockstop.log")" = 3 ] &&
  ok "the lock is handed on once its holder is continued" || { bad "lockstop: rc=$RC"; tail -n 20 "$TMP/lockstop.log"; }

# A lock holder killed: the ranks queued for the lock end at once (not at
# GASP_TIMEOUT), naming it.
start=$(date +%s)
GASP_TIMEOUT=30s run_job "$TMP/lockkill.log" 60 "$GASPRUN" -np 3 "$PROBE" lockkill
took=$(( $(date +%s) - start ))
[ "$RC" != 0 ] && [ "$took" -le 10 ] && ! grep -q FAILED "$TMP/lockkill.log" &&
  ok "killed lock holder: the job ends in ${took}s (GASP_TIMEOUT=30s)" ||
  { bad "killed lock holder: rc=$RC after ${took}s"; tail -n 20 "$TMP/lockkill.log"; }
# Whichever comes first names it: the waiter's own transport ("lost rank
# 2 (...") or gasprun's notice of the death ("rank 2 (...) was killed").
expect_in "$TMP/lockkill.log" "gasp r[01]/3 .*fatal: (lost rank 2 \\(|rank 2 \\(.*killed)" \
  "killed lock holder: the waiters name it"

# A rank stopped and never continued: gasprun says so at once, the others
# give up at GASP_TIMEOUT naming it, and gasprun blames it (not the first
# survivor to exit).
start=$(date +%s)
GASP_TIMEOUT=12s "$GASPRUN" -np 3 "$PROBE" stop >"$TMP/stopped.log" 2>&1 &
job=$!
stopped=$(wait_stopped_named fault_probe)
wait "$job"; RC=$?
took=$(( $(date +%s) - start ))
[ "$RC" != 0 ] && [ "$took" -le 40 ] && ok "stopped for good: the job ends (rc $RC, ${took}s)" || bad "stopped for good: rc=$RC after ${took}s"
expect_in "$TMP/stopped.log" "gasprun: rank 2 \\([^)]*:$stopped\\) is stopped \\(signal 19" "stopped for good: gasprun says so at once"
expect_in "$TMP/stopped.log" "gasprun: rank 2 \\([^)]*:$stopped\\) was stopped \\(signal 19, [^)]*\\) and never continued" "stopped for good: gasprun blames the stopped rank"
expect_in "$TMP/stopped.log" "E .*barrier.*rank 2 \\([^)]*:$stopped\\) does not answer" "stopped for good: the survivors' errors name it"
finish
