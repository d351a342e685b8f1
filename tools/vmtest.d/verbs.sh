#!/bin/bash
# Guest side of "tools/vmtest verbs": the transport conformance suite and the
# end-to-end programs on the verbs backend, two ranks each on its own rxe
# device. $GASP_VM_BIN is the host's bazel-bin (shared read-only).
# Last line: "N passed, N failed".
set -u
B=$GASP_VM_BIN
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "VERBS PASS: $*"; }
bad() { fail=$((fail + 1)); echo "VERBS FAIL: $*"; }
T=$(mktemp -d)

echo "== transport conformance suite, verbs backend"
if timeout 300 "$B/transport/conformance_test" --gtest_filter='*verbs*:Verbs*' >"$T/conf.log" 2>&1; then
  ok "conformance suite on verbs ($(grep -o '[0-9]* tests\?, listed below\|\[  PASSED  \] [0-9]* test' "$T/conf.log" | head -1))"
else
  bad "conformance suite on verbs"; tail -n 30 "$T/conf.log"
fi
grep -E '^\[  (PASSED|SKIPPED|FAILED) ' "$T/conf.log"

# The runtime on verbs: rank 0 on rxe0, rank 1 on rxe1 (GASP_NET_DEVICES
# spreads local ranks over the list). Registration pins the range: keep it
# small in the 2 GiB guest.
export GASP_TRANSPORT=verbs GASP_NET_DEVICES=rxe0:1,rxe1:1 GASP_SIZE=256M GASP_HEAP_SIZE=16M \
       GASP_LOG_LEVEL=info GASP_TIMEOUT=60s
run() {  # run NAME CMD...
  local name=$1; shift
  if timeout 300 "$B/tools/gasprun" -np 2 "$@" >"$T/run.log" 2>&1 && grep -q verified "$T/run.log" \
     && grep -q 'transport=verbs' "$T/run.log" && ! grep -qE 'MISMATCH|FAILED' "$T/run.log"; then
    ok "$name on verbs"
  else
    bad "$name on verbs"; tail -n 25 "$T/run.log"
  fi
  grep -E 'verbs.*(device|rxe)' "$T/run.log" | head -2
}
run "hello" "$B/examples/hello"
run "counter" "$B/examples/counter" 50
run "jacobi2d" "$B/examples/jacobi2d" 128 10
run "shared_tree" "$B/examples/shared_tree" 20000
run "ledger" "$B/examples/ledger" 50
run "dictionary (services: data and function shipping)" "$B/examples/dictionary" 50
run "drf_random" "$B/tests/drf_random" 4
run "lock_counters (2 threads per rank, one page)" "$B/tests/lock_counters" 300 2
run "drf_threads (4 threads per rank, sequential model)" "$B/tests/drf_threads" 3 4 1 40
run "selective release/acquire" "$B/tests/fault_probe" selective
run "first_touch (claims at a directory over verbs atomics)" "$B/tests/first_touch"
DRF_FIRST_TOUCH=1 run "drf_threads on first-touch arrays" "$B/tests/drf_threads" 3 4 2 40

echo "== page-cache registration: fetches into registered chunks skip the bounce copy"
if GASP_STATS=1 timeout 300 "$B/tools/gasprun" -np 2 "$B/examples/jacobi2d" 128 10 >"$T/creg.log" 2>&1 \
   && grep -q verified "$T/creg.log" \
   && [ "$(grep -oE 'cache_chunks_registered +[0-9]+' "$T/creg.log" | awk '{s += $2} END {print s + 0}')" -gt 0 ]; then
  ok "cache chunks registered ($(grep -oE 'cache_chunks_registered +[0-9]+' "$T/creg.log" | tr -s ' ' | paste -sd' '))"
else
  bad "cache registration"; grep -E 'cache_chunks|verified|fatal' "$T/creg.log" | head
fi
if GASP_STATS=1 GASP_CACHE_REG_CHUNK=0 timeout 300 "$B/tools/gasprun" -np 2 "$B/examples/jacobi2d" 128 10 >"$T/creg0.log" 2>&1 \
   && grep -q verified "$T/creg0.log" \
   && [ "$(grep -oE 'cache_chunks_registered +[0-9]+' "$T/creg0.log" | awk '{s += $2} END {print s + 0}')" = 0 ]; then
  ok "GASP_CACHE_REG_CHUNK=0: no chunk registered, still verified"
else
  bad "GASP_CACHE_REG_CHUNK=0"; grep -E 'cache_chunks|verified|fatal' "$T/creg0.log" | head
fi

echo "== protection domains on verbs: per-domain registrations, keys only for grantees"
dom() {  # dom MODE EXPECT-LINE...
  local mode=$1; shift
  if timeout 300 "$B/tools/gasprun" -np 2 "$B/tests/domain_probe" "$mode" >"$T/dom.log" 2>&1 \
     && [ "$(grep -c "^PASS $mode" "$T/dom.log")" = 2 ] && grep -q 'transport=verbs' "$T/dom.log"; then
    local missing=""
    for line in "$@"; do grep -qE "$line" "$T/dom.log" || missing="$missing [$line]"; done
    if [ -z "$missing" ]; then ok "domain_probe $mode on verbs"; else bad "domain_probe $mode: missing$missing"; tail -n 25 "$T/dom.log"; fi
  else
    bad "domain_probe $mode on verbs"; tail -n 25 "$T/dom.log"
  fi
  grep -E '^rank [0-9]:' "$T/dom.log"
}
dom remote "rank 1: granted read: DSM reads ok, WRITE and FETCH_ADD refused by the target" \
  "rank 1: not granted secret: READ, WRITE, FETCH_ADD refused" "rank 0: all 2560 words of both domains intact"
dom coherence "2 ranks x 4 threads x 50 gated writes all home"

echo "== a rank killed mid-run on verbs"
start=$(date +%s)
GASP_TIMEOUT=20s timeout 120 "$B/tools/gasprun" -np 2 "$B/tests/fault_probe" kill 1 >"$T/kill.log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
if [ $rc != 0 ] && grep -qE 'rank 1 .*(killed|signal 9|lost|died|unreachable)' "$T/kill.log" && [ $took -le 30 ]; then
  ok "killed rank: job ends (rc $rc, ${took}s) naming rank 1"
else
  bad "killed rank: rc $rc after ${took}s"; tail -n 20 "$T/kill.log"
fi
rm -rf "$T"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
