#!/bin/bash
# Guest side of "tools/vmtest pkeys": the protect/ suite with the pkeys (MPK)
# backend (TCG -cpu max emulates PKU), plus the mprotect cases for
# comparison, and a short gate benchmark (TCG timings are not hardware's).
# $GASP_VM_BIN is the host's bazel-vm-bin. Last line: "N passed, N failed".
set -u
B=$GASP_VM_BIN
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "PKEYS PASS: $*"; }
bad() { fail=$((fail + 1)); echo "PKEYS FAIL: $*"; }
T=$(mktemp -d)

echo "== cpu: $(grep -o -w -E 'pku|ospke' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "== protect_test (all cases; the pkeys ones must run, not skip)"
timeout 300 "$B/protect/protect_test" --gtest_color=no >"$T/t.log" 2>&1
rc=$?
grep -E '^\[ *(OK|FAILED|SKIPPED) *\] [A-Za-z]' "$T/t.log" | grep -v 'listed below' | sort -u
grep -E 'PKU probe|auto ->|40 domains' "$T/t.log"
# (no process substitution: the guest has no /dev/fd)
names() { grep -E "^\[ *$1 *\] .*\(" "$T/t.log" | sed -E "s/^\[ *$1 *\] ([^ ]+).*/\1/" >"$T/$1.names"; }
names OK; names FAILED; names SKIPPED
while read -r name; do ok "$name"; done <"$T/OK.names"
while read -r name; do bad "$name"; done <"$T/FAILED.names"
while read -r name; do bad "$name skipped in the guest"; done <"$T/SKIPPED.names"
if [ $rc != 0 ] && ! grep -qE '^\[ *FAILED' "$T/t.log"; then bad "protect_test exited $rc"; tail -n 30 "$T/t.log"; fi
if grep -qE '^\[ *FAILED' "$T/t.log"; then grep -B3 -A12 -E 'Failure' "$T/t.log" | head -80; fi

echo "== protection domains in the runtime with GASP_PROTECT=pkeys (2 ranks, tcp)"
export GASP_PROTECT=pkeys GASP_TRANSPORT=tcp GASP_SIZE=1G GASP_HEAP_SIZE=16M GASP_TIMEOUT=60s
dom() {  # dom MODE EXPECT-LINE...
  local mode=$1; shift
  if timeout 300 "$B/tools/gasprun" -np 2 "$B/tests/domain_probe" "$mode" >"$T/dom.log" 2>&1 \
     && [ "$(grep -c "^PASS $mode" "$T/dom.log")" = 2 ]; then
    local missing=""
    for line in "$@"; do grep -qE "$line" "$T/dom.log" || missing="$missing [$line]"; done
    if [ -z "$missing" ]; then ok "domain_probe $mode (pkeys)"; else bad "domain_probe $mode: missing$missing"; tail -n 25 "$T/dom.log"; fi
  else
    bad "domain_probe $mode (pkeys)"; tail -n 25 "$T/dom.log"
  fi
  grep -E '^rank [0-9]:|protection violation' "$T/dom.log"
}
dom stray "protection violation: write to 0x[0-9a-f]+ in domain 1 \(server\) by thread [0-9]+, pkey [0-9]+ \[SEGV_PKUERR\]" \
  "stray write outside the gate killed its process \(SIGSEGV\), data intact \[pkeys\]"
dom coherence "2 ranks x 4 threads x 50 gated writes all home \[pkeys\]"
dom remote "rank 0: all 2560 words of both domains intact"

echo "== ERIM's code scan at Init: what can write PKRU besides gasp's gate"
if GASP_PKEYS_STRICT=1 GASP_LOG_LEVEL=info timeout 120 "$B/tools/gasprun" -np 2 "$B/examples/hello" \
     >"$T/scan.log" 2>&1 && grep -q "pkeys code scan: .*pkey_set" "$T/scan.log" &&
   ! grep -q "outside gasp's gate" "$T/scan.log"; then
  ok "GASP_PKEYS_STRICT=1: hello starts; only the C library's and loader's sequences found"
else
  bad "code scan at Init"; tail -n 20 "$T/scan.log"
fi
grep -m1 "pkeys code scan" "$T/scan.log"
if timeout 60 "$B/protect/code_scan_test" >"$T/cs.log" 2>&1; then
  ok "code_scan_test (a planted WRPKRU found, gasp's gate not reported)"
else
  bad "code_scan_test"; tail -n 20 "$T/cs.log"
fi
unset GASP_PROTECT GASP_TRANSPORT GASP_SIZE GASP_HEAP_SIZE GASP_TIMEOUT

echo "== gate_benchmark (TCG: correctness smoke, not hardware timings)"
if timeout 300 "$B/protect/gate_benchmark" --benchmark_min_time=0.2 >"$T/b.log" 2>&1; then
  cat "$T/b.log"
  if grep -q 'BM_GatePkeys' "$T/b.log" && ! grep -q 'BM_GatePkeys.*ERROR' "$T/b.log"; then
    ok "gate_benchmark pkeys rows"
  else
    bad "gate_benchmark pkeys rows"
  fi
else
  bad "gate_benchmark"; tail -n 20 "$T/b.log"
fi
echo "== stub_benchmark with GASP_PROTECT=pkeys (TCG: ratios only)"
if GASP_PROTECT=pkeys timeout 300 "$B/benchmarks/stub_benchmark" --benchmark_min_time=0.2 >"$T/s.log" 2>&1; then
  cat "$T/s.log"
  if grep -q 'protection backend: pkeys' "$T/s.log" && grep -q 'BM_UntrustedStub.*pkeys' "$T/s.log"; then
    ok "stub_benchmark on pkeys"
  else
    bad "stub_benchmark on pkeys"
  fi
else
  bad "stub_benchmark"; tail -n 20 "$T/s.log"
fi
rm -rf "$T"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
