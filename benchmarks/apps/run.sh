#!/usr/bin/env bash
# Builds the NPB-style application kernels (-c opt) and runs each at 1, 2 and
# 4 ranks under gasprun; prints a markdown table, then each run's detail
# lines. Exits non-zero if a run fails or a result is not verified.
#
#   benchmarks/apps/run.sh                      # defaults of every kernel
#   RANKS="2 4" KERNELS="cg ft" benchmarks/apps/run.sh
#   CG_ARGS="200000 10" FT_ARGS="2048 20" benchmarks/apps/run.sh
#   APPS_STATS=1 benchmarks/apps/run.sh         # rank 0's gasp counters in the details
#
# Speedups are serial time / version time (above 1: faster than serial).
# With more ranks than cores (4 on a 2-core machine) ranks share cores.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=/tmp/gasp-apps-   # a private symlink prefix: other builds do not swap it
B=${OUT}bin
RANKS=${RANKS:-"1 2 4"}
KERNELS=${KERNELS:-"ep cg mg ft"}
TIMEOUT=${TIMEOUT:-300}
LOGS=$(mktemp -d /tmp/gasp-apps-run.XXXXXX)

if ! bazel build -c opt --symlink_prefix=$OUT //benchmarks/apps:all //tools:gasprun \
    >"$LOGS/build.log" 2>&1; then
  tail -n 40 "$LOGS/build.log"
  echo "build failed (log: $LOGS/build.log)" >&2
  exit 1
fi

# Value of key=... in a result line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s|^$1=||p" | head -n 1; }

kernel_args() {
  case $1 in
    ep) echo "${EP_ARGS:-}" ;;
    cg) echo "${CG_ARGS:-}" ;;
    mg) echo "${MG_ARGS:-}" ;;
    ft) echo "${FT_ARGS:-}" ;;
  esac
}

echo "## gasp application kernels: $(nproc) cores, $(uname -r), $(date -u +%F)"
echo
echo "| kernel | ranks | serial s | omp s | gasp s | gasp/serial | omp/serial | verified |"
echo "|---|---|---|---|---|---|---|---|"
FAILED=0
for k in $KERNELS; do
  for np in $RANKS; do
    log="$LOGS/$k-$np.log"
    # shellcheck disable=SC2046  # the arguments are meant to be split
    timeout -k 5 "$TIMEOUT" "$B/tools/gasprun" -np "$np" "$B/benchmarks/apps/$k" \
      $(kernel_args "$k") >"$log" 2>&1
    rc=$?
    line=$(grep -E "^$k .* ranks=" "$log" | tail -n 1)
    if [ -z "$line" ]; then
      echo "| $k | $np | - | - | - | - | - | FAILED (rc=$rc) |"
      FAILED=1
      continue
    fi
    verdict=${line##* }
    if [ "$rc" != 0 ] || [ "$verdict" != verified ]; then
      FAILED=1
      [ "$verdict" = verified ] && verdict="verified, rc=$rc"
    fi
    echo "| $k | $np | $(field serial_s "$line") | $(field omp_s "$line") |" \
         "$(field gasp_s "$line") | $(field gasp/serial "$line") |" \
         "$(field omp/serial "$line") | $verdict |"
  done
done
echo
echo "## details (logs: $LOGS)"
echo
echo '```'
for k in $KERNELS; do
  for np in $RANKS; do
    log="$LOGS/$k-$np.log"
    if grep -qE "^$k .* verified$" "$log"; then
      # With APPS_STATS=1 (or GASP_STATS=1) the counters too.
      if [ "${APPS_STATS:-0}" = 1 ] || [ "${GASP_STATS:-0}" = 1 ]; then cat "$log"; else grep -hE "^$k " "$log"; fi
    else
      echo "--- $k at $np ranks (last lines of $log)"
      tail -n 15 "$log"
    fi
  done
done
echo '```'
exit "$FAILED"
