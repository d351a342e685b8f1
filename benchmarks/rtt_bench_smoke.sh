#!/usr/bin/env bash
# Smoke test of rtt_bench (2 ranks), barrier_bench and lock_bench (2 and 4
# ranks), 20 iterations: every row of the tables is printed with a number
# (the figures themselves are for docs/benchmarks.md).
set -uo pipefail
b="${TEST_SRCDIR:-$(dirname "$0")/../bazel-bin}/gasp"
gasprun=$b/tools/gasprun bench=$b/benchmarks/rtt_bench
[ -x "$gasprun" ] || { gasprun=bazel-bin/tools/gasprun; bench=bazel-bin/benchmarks/rtt_bench; }
out=$(GASP_TIMEOUT=30s timeout -k 5 120 "$gasprun" -np 2 "$bench" 20 2>&1)
rc=$?
echo "$out"
fail=0
[ "$rc" = 0 ] || { echo "FAIL: rtt_bench exited $rc"; fail=1; }
for row in "16 B -> 8 B" "16 B -> 4 KiB" "16 B + 4 KiB -> 8 B" "16 B + 4 KiB -> 4 KiB" \
           "16+8 B -> 8 B, 2nd conn"; do
  re=${row//+/\\+}
  grep -qE "^ $re +[0-9.]+ +[0-9.]+$" <<<"$out" || { echo "FAIL: no bare row '$row'"; fail=1; }
done
for row in "READ 8 B" "READ 4 KiB" "WRITE 8 B" "WRITE 4 KiB" COMPARE_SWAP FETCH_ADD \
           "message 8 B echo" "message 4 KiB echo"; do
  grep -qE "^ $row +[0-9.]+ +[0-9.]+x +[0-9.]+x$" <<<"$out" || { echo "FAIL: no gasp row '$row'"; fail=1; }
done
grep -qE "^   / bare echo on 2 conns +[0-9.]+x +[0-9.]+x$" <<<"$out" ||
  { echo "FAIL: no row '/ bare echo on 2 conns'"; fail=1; }
# barrier_bench at 2 and 4 ranks.
for np in 2 4; do
  out=$(GASP_TIMEOUT=30s timeout -k 5 120 "$gasprun" -np $np "${bench%rtt_bench}barrier_bench" 20 2>&1)
  rc=$?
  echo "$out"
  [ "$rc" = 0 ] || { echo "FAIL: barrier_bench -np $np exited $rc"; fail=1; }
  for row in "message echo rank 0 <-> 1 \(rtt\) +[0-9.]+" "barrier, nothing written +[0-9.]+ +[0-9.]+" \
             "barrier, one dirty page per rank +[0-9.]+ +[0-9.]+"; do
    grep -qE "^ $row$" <<<"$out" || { echo "FAIL: barrier_bench -np $np: no row /$row/"; fail=1; }
  done
done
# lock_bench at 2 and 4 ranks: both lock kinds in every row.
for np in 2 4; do
  out=$(GASP_TIMEOUT=30s timeout -k 5 120 "$gasprun" -np $np "${bench%rtt_bench}lock_bench" 20 10 2>&1)
  rc=$?
  echo "$out"
  [ "$rc" = 0 ] || { echo "FAIL: lock_bench -np $np exited $rc"; fail=1; }
  for row in "COMPARE_SWAP, one alone \(median\) +[0-9.]+" "round trip \(rtt\): two back to back / 2 +[0-9.]+" \
             "uncontended lock\+unlock( +[0-9.]+){2}" "contended hand-off( +[0-9.]+){2}" "  / rtt( +[0-9.]+){2}" \
             "  / one COMPARE_SWAP alone( +[0-9.]+){2}" "  failed COMPARE_SWAPs per acquisition( +[0-9.]+){2}" \
             "max wait / mean wait( +[0-9.]+){2}" "slowest thread / fastest \(mean wait\)( +[0-9.]+){2}"; do
    grep -qE "^ $row$" <<<"$out" || { echo "FAIL: lock_bench -np $np: no row /$row/"; fail=1; }
  done
done
[ "$fail" = 0 ] && echo "PASS: rtt_bench, barrier_bench and lock_bench print every row"
exit $fail
