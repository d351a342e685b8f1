# Helpers for the sh_tests of tools/ (sourced). Binaries come from the
# runfiles tree: $TEST_SRCDIR/gasp/...
set -u

GASPRUN="${TEST_SRCDIR}/gasp/tools/gasprun"
PROBE="${TEST_SRCDIR}/gasp/boot/boot_probe"
NSPROBE="${TEST_SRCDIR}/gasp/nameserver/ns_probe"
export TMPDIR="${TEST_TMPDIR:-/tmp}"
OUT="${TMPDIR}/out.txt"
ERR="${TMPDIR}/err.txt"
# A unique string in the ranks' command lines, for pgrep.
MARKER="gasp-test-marker-$$-${RANDOM}${RANDOM}"

# No launcher variables from the environment the test runs in.
unset GASP_RANK GASP_NRANKS GASP_LOCAL_RANK GASP_LOCAL_NRANKS GASP_LAUNCHER GASP_JOB_ID \
  GASP_COORDINATOR GASP_BOOT GASP_NAMESERVER GASP_NS_CA GASP_NS_CERT GASP_NS_KEY OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE SLURM_PROCID \
  SLURM_NTASKS PMI_RANK PMI_SIZE PMIX_NAMESPACE PMIX_RANK 2>/dev/null || true

fail() {
  echo "FAIL: $*" >&2
  for f in "$OUT" "$ERR"; do
    if [ -f "$f" ]; then
      echo "---- $(basename "$f")" >&2
      cat "$f" >&2
    fi
  done
  # Leave nothing behind even when failing.
  pkill -KILL -f "$MARKER" 2>/dev/null || true
  exit 1
}

# run EXPECTED_STATUS cmd...: runs with a 120 s safety timeout, stdout to
# $OUT, stderr to $ERR; fails unless the exit status is EXPECTED_STATUS.
# Sets ELAPSED (seconds, integer) and STATUS.
run() {
  local expected="$1"
  shift
  local start end
  start=$(date +%s%N)
  timeout -k 5 120 "$@" >"$OUT" 2>"$ERR"
  STATUS=$?
  end=$(date +%s%N)
  ELAPSED=$(( (end - start) / 1000000000 ))
  if [ "$STATUS" = 124 ]; then fail "timed out (120 s): $*"; fi
  if [ "$STATUS" != "$expected" ]; then fail "exit status $STATUS, expected $expected: $*"; fi
}

# expect_in FILE REGEX [COUNT]: at least COUNT (default 1) matching lines.
expect_in() {
  local file="$1" regex="$2" want="${3:-1}" n
  n=$(grep -cE -- "$regex" "$file")
  if [ "$n" -lt "$want" ]; then fail "expected $want line(s) matching '$regex' in $(basename "$file"), got $n"; fi
}

expect_not_in() {
  if grep -qE -- "$2" "$1"; then fail "unexpected line matching '$2' in $(basename "$1")"; fi
}

# No process whose command line has $MARKER may be left (zombies have no
# command line, so a slow reaper does not count).
expect_no_orphans() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pgrep -f "$MARKER" >/dev/null || return 0
    sleep 0.2
  done
  pgrep -af "$MARKER" >&2
  fail "processes with marker $MARKER survived"
}

# A TCP port of 127.0.0.1 that was free a moment ago.
free_port() {
  "$PROBE" --free-port
}
