#!/usr/bin/env bash
# Smoke test of the application kernels: each at tiny sizes on 2 and 4 ranks must
# exit 0 and print "verified" (serial, OpenMP and gasp results agree).
#   bazel test -c opt //benchmarks/apps:apps_smoke
#   benchmarks/apps/apps_smoke.sh        # by hand, after benchmarks/apps/run.sh built
set -uo pipefail

# A built binary: the runfiles (bazel test), then the trees run.sh and a
# plain `bazel build` leave.
bin() {
  local p=$1
  for c in "${TEST_SRCDIR:-}/gasp/$p" "${RUNFILES_DIR:-}/gasp/$p" "$(dirname "$0")/../../$p" \
           "/tmp/gasp-apps-bin/$p" "bazel-bin/$p"; do
    [ -x "$c" ] && [ -f "$c" ] && { echo "$c"; return; }
  done
  echo "missing binary $p" >&2
  exit 1
}

export GASP_TIMEOUT=${GASP_TIMEOUT:-30s}
TMP=${TEST_TMPDIR:-$(mktemp -d)}
GASPRUN=$(bin tools/gasprun)
PASSES=0
FAILS=0
for np in 2 4; do
  for spec in "ep 200000" "cg 3000 2" "mg 20 6" "ft 64 5"; do
    set -- $spec
    kernel=$1
    shift
    log="$TMP/$kernel-$np.log"
    timeout -k 5 120 "$GASPRUN" -np "$np" "$(bin "benchmarks/apps/$kernel")" "$@" >"$log" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && grep -qE "^$kernel .* verified$" "$log" && ! grep -q MISMATCH "$log"; then
      PASSES=$((PASSES + 1))
      echo "PASS: $spec at $np ranks"
    else
      FAILS=$((FAILS + 1))
      echo "FAIL: $spec at $np ranks (rc=$rc)"
      tail -n 20 "$log" | sed 's/^/    | /'
    fi
  done
done
echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
