#!/usr/bin/env bash
# Runs every gasp benchmark on this machine and prints the tables recorded in
# docs/benchmarks.md. Usage: benchmarks/run.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-2000}
# A private symlink prefix keeps other builds from swapping the binaries.
OUT=/tmp/gasp-bench-
bazel build -c opt --symlink_prefix=$OUT //tools:gasprun //benchmarks:all //examples:jacobi2d \
  //transport:tcp_transport_benchmark >/dev/null
B=${OUT}bin
echo "## machine: $(nproc) cores, $(uname -r), $(date -u +%F)"
echo
echo "## gasp_bench, 2 ranks (rank 0 reads pages homed at rank 1)"
"$B/tools/gasprun" -np 2 "$B/benchmarks/gasp_bench" "$ITERS"
for np in 4 8; do
  echo
  echo "## barrier, $np ranks on $(nproc) cores"
  "$B/tools/gasprun" -np $np "$B/benchmarks/gasp_bench" 400 | grep -E 'operation|barrier'
done
echo
echo "## jacobi2d 1024x1024, 100 iterations"
for np in 1 2 4; do
  "$B/tools/gasprun" -np $np "$B/examples/jacobi2d" 1024 100 | grep jacobi2d
done
echo
echo "## diff of a 4 KiB page (Google Benchmark)"
"$B/benchmarks/diff_benchmark" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true 2>/dev/null | grep -E 'median|Benchmark'
echo
echo "## tcp transport, two transports in one process over loopback (Google Benchmark)"
"$B/transport/tcp_transport_benchmark" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true 2>/dev/null | grep -E 'median|Benchmark'
