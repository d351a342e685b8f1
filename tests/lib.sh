# Shared helpers of the multi-process shell tests. Source it.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

# Locate a built binary in the runfiles (bazel test) or bazel-bin (by hand).
bin() {
  local p=$1
  for c in "${TEST_SRCDIR:-}/gasp/$p" "${RUNFILES_DIR:-}/gasp/$p" "$(dirname "$0")/../$p" "bazel-bin/$p"; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  echo "missing binary $p" >&2
  exit 1
}

TMP=${TEST_TMPDIR:-$(mktemp -d)}
FAILS=0
PASSES=0
ok()   { PASSES=$((PASSES + 1)); echo "PASS: $*"; }
bad()  { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }

# expect_in FILE PATTERN DESCRIPTION
expect_in() { if grep -qE "$2" "$1"; then ok "$3"; else bad "$3 (no /$2/ in output)"; sed 's/^/    | /' "$1" | tail -n 30; fi; }

# run_job LOG TIMEOUT CMD... ; sets RC
run_job() {
  local log=$1 t=$2; shift 2
  timeout -k 5 "$t" "$@" >"$log" 2>&1
  RC=$?
}

# watch_listeners NAME SECONDS: the listening addresses of processes named
# NAME, sampled every 0.1 s for SECONDS (one per line, sorted, unique).
watch_listeners() {
  local name=$1 n=$(( $2 * 10 ))
  for _ in $(seq "$n"); do
    ss -ltnpH 2>/dev/null | grep "((\"$name\"" | awk '{print $4}'
    sleep 0.1
  done | sort -u
}

# expect_own_address ADDRS MIN WHAT: at least MIN listeners were seen, and
# none on every interface (0.0.0.0, *, [::]).
expect_own_address() {
  echo "$1" | sed 's/^/    listening: /'
  if [ "$(echo "$1" | grep -c .)" -ge "$2" ] && ! echo "$1" | grep -qE '^(0\.0\.0\.0|\*|\[::\]):'; then
    ok "$3 listen on the rank's own address, not on every interface"
  else
    bad "$3: a listener on every interface, or fewer than $2 seen"
  fi
}

# wait_stopped_named NAME: prints the pid of a process NAME once it is
# stopped (state T), within 20 s; nothing when none is. Any process of that
# name: ranks started by mpirun or srun are not our children.
wait_stopped_named() {
  local p
  for _ in $(seq 200); do
    for p in $(pgrep -x "$1" || true); do
      [ "$(ps -o stat= -p "$p" | cut -c1)" = T ] && { echo "$p"; return; }
    done
    sleep 0.1
  done
}

# run_stopped LOG MODE LAUNCHER...: runs `LAUNCHER... fault_probe MODE` in
# the background (a mode in which the last rank stops itself), continues the
# stopped rank after 13 s and waits; sets STOPPED (its pid) and RC.
run_stopped() {
  local log=$1 mode=$2; shift 2
  "$@" "$(bin tests/fault_probe)" "$mode" >"$log" 2>&1 &
  local job=$!
  STOPPED=$(wait_stopped_named fault_probe)
  if [ -n "$STOPPED" ]; then
    sleep 13
    kill -CONT "$STOPPED"
  fi
  wait "$job"; RC=$?
}

# stop_and_continue LOG LAUNCHER...: `fault_probe stop` on 3 ranks (the last
# stops before a barrier); checks that the others named it while they
# waited and that the job completes once it is continued.
stop_and_continue() {
  local log=$1
  run_stopped "$log" stop "${@:2}"
  expect_in "$log" "still waiting at barrier #[0-9]+ for 1[0-9]s: rank 2 \\([^)]*:$STOPPED\\) does not answer" \
    "$2: a stopped rank is named by the ranks waiting for it"
  [ "$RC" = 0 ] && [ "$(grep -c verified "$log")" = 3 ] &&
    ok "$2: the job completes once the stopped rank is continued" || { bad "$2 stop/continue: rc=$RC"; tail -n 20 "$log"; }
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" = 0 ]
}

export GASP_TIMEOUT=${GASP_TIMEOUT:-30s}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI prints help texts for missing network devices; keep runs quiet.
export OMPI_MCA_btl=self,tcp OMPI_MCA_pml=ob1 OMPI_MCA_btl_base_warn_component_unused=0
