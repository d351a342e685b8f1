#!/usr/bin/env bash
# Smoke test of rtt_bench: 2 ranks, 20 iterations; every row of the table is
# printed with a number (the figures themselves are for docs/benchmarks.md).
set -uo pipefail
b="${TEST_SRCDIR:-$(dirname "$0")/../bazel-bin}/gasp"
gasprun=$b/tools/gasprun bench=$b/benchmarks/rtt_bench
[ -x "$gasprun" ] || { gasprun=bazel-bin/tools/gasprun; bench=bazel-bin/benchmarks/rtt_bench; }
out=$(GASP_TIMEOUT=30s timeout -k 5 120 "$gasprun" -np 2 "$bench" 20 2>&1)
rc=$?
echo "$out"
fail=0
[ "$rc" = 0 ] || { echo "FAIL: rtt_bench exited $rc"; fail=1; }
for row in "16 B -> 8 B" "16 B -> 4 KiB" "16 B + 4 KiB -> 8 B" "16 B + 4 KiB -> 4 KiB"; do
  re=${row//+/\\+}
  echo "$out" | grep -qE "^ $re +[0-9.]+ +[0-9.]+$" || { echo "FAIL: no bare row '$row'"; fail=1; }
done
for row in "READ 8 B" "READ 4 KiB" "WRITE 8 B" "WRITE 4 KiB" COMPARE_SWAP FETCH_ADD \
           "message 8 B echo" "message 4 KiB echo"; do
  echo "$out" | grep -qE "^ $row +[0-9.]+ +[0-9.]+x +[0-9.]+x$" || { echo "FAIL: no gasp row '$row'"; fail=1; }
done
[ "$fail" = 0 ] && echo "PASS: rtt_bench prints every row"
exit $fail
