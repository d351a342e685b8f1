#!/bin/bash
# Guest side of "tools/vmtest bench": perftest's ib_read_lat / ib_write_lat
# and gasp's own READ / WRITE / page fetch on the same rxe pair, side by side
# in one guest run. rxe under TCG is slow: only the ratios mean anything.
set -u
B=$GASP_VM_BIN
T=$(mktemp -d)
G="-x ${VMTEST_GID_INDEX:-1} -F -n 1000"
perf() {  # perf TOOL SIZE -> t_typical in us
  timeout 120 $1 -d rxe1 $G -s $2 >/dev/null 2>&1 & local s=$!
  sleep 1
  timeout 120 $1 -d rxe0 $G -s $2 127.0.0.1 >"$T/p.log" 2>&1
  wait $s
  awk -v n="$2" '$1 == n && NF >= 6 {print $5}' "$T/p.log" | head -1
}
export GASP_TRANSPORT=verbs GASP_NET_DEVICES=rxe0:1,rxe1:1 GASP_SIZE=256M GASP_HEAP_SIZE=16M
ITERS=${GASP_BENCH_ITERS:-500}
gread() {  # gread MODE -> gasp's median us for BENCH_ONLY=MODE (read8 | read4k)
  BENCH_ONLY=$1 timeout 300 "$B/tools/gasprun" -np 2 "$B/benchmarks/gasp_bench" 1000 2>/dev/null |
    awk '$1 == "only" {print $(NF-3)}'
}
mid3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }  # median of three
# READ: the rxe guest drifts by several percent between runs, so each READ
# row is three perftest runs interleaved with three gasp runs (1000
# iterations each), and the table shows the median of each three.
declare -A P
declare -A PR GR
for s in 8 4096; do
  m=read8; [ $s = 4096 ] && m=read4k
  for k in 1 2 3; do
    PR[$s]+="$(perf ib_read_lat $s) "
    GR[$s]+="$(gread $m) "
  done
  P[read$s]=$(mid3 ${PR[$s]})
done
for s in 8 4096; do P[write$s]=$(perf ib_write_lat $s); done
timeout 600 "$B/tools/gasprun" -np 2 "$B/benchmarks/gasp_bench" "$ITERS" >"$T/g.log" 2>&1
cat "$T/g.log"
med() { grep -E "^ $1 +$2 " "$T/g.log" | awk '{print $(NF-3)}' | head -1; }
g_r8=$(mid3 ${GR[8]}); g_r4=$(mid3 ${GR[4096]}); g_w8=$(med "raw WRITE" 8); g_w4=$(med "raw WRITE" 4096)
g_r4_run=$(med "raw READ" 4096)  # this run's, for the summed floor below
trap_us=$(grep -E 'fault trap \(' "$T/g.log" | awk '{print $(NF-3)}')
loop_floor=$(grep -E 'fault trap \+ raw READ, one loop' "$T/g.log" | awk '{print $(NF-3)}')
fetch=$(grep -E 'page fetch by fault, after acquire' "$T/g.log" | awk '{print $(NF-3)}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "| operation | perftest t_typical us | gasp median us | gasp / perftest |"
echo "|---|---|---|---|"
echo "| READ 8 B | ${P[read8]} | $g_r8 | $(ratio "$g_r8" "${P[read8]}") |"
echo "| READ 4 KiB | ${P[read4096]} | $g_r4 | $(ratio "$g_r4" "${P[read4096]}") |"
echo "| WRITE 8 B | ${P[write8]} | $g_w8 | $(ratio "$g_w8" "${P[write8]}") |"
echo "| WRITE 4 KiB | ${P[write4096]} | $g_w4 | $(ratio "$g_w4" "${P[write4096]}") |"
echo "(READ rows: medians of three interleaved runs each; perftest 8 B: ${PR[8]}; gasp 8 B: ${GR[8]};"
echo " perftest 4 KiB: ${PR[4096]}; gasp 4 KiB: ${GR[4096]})"
floor=$(awk -v a="$trap_us" -v b="$g_r4_run" 'BEGIN {print a + b}')
# The floor of a fetch: a bare trap and a raw 4 KiB READ back to back in one
# loop (the same syscalls as a fetch, none of its logic); and, for
# reference, the sum of the two rows' separate medians.
echo "| page fetch (after acquire) vs trap + READ 4 KiB in one loop | $loop_floor | $fetch | $(ratio "$fetch" "$loop_floor") |"
echo "| same fetch vs trap and READ medians summed | $floor | $fetch | $(ratio "$fetch" "$floor") |"
# The same fetch with cache registration off (every fetch through a bounce
# buffer), in the same guest run: what GASP_CACHE_REG_CHUNK buys.
GASP_CACHE_REG_CHUNK=0 \
  timeout 600 "$B/tools/gasprun" -np 2 "$B/benchmarks/gasp_bench" "$ITERS" >"$T/g0.log" 2>&1
fetch0=$(grep -E 'page fetch by fault, after acquire' "$T/g0.log" | awk '{print $(NF-3)}')
floor0=$(grep -E 'fault trap \+ raw READ, one loop' "$T/g0.log" | awk '{print $(NF-3)}')
echo "| same, GASP_CACHE_REG_CHUNK=0 (bounce copy) | $floor0 | $fetch0 | $(ratio "$fetch0" "$floor0") |"
rm -rf "$T"
