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

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" = 0 ]
}

export GASP_TIMEOUT=${GASP_TIMEOUT:-30s}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI prints help texts for missing network devices; keep runs quiet.
export OMPI_MCA_btl=self,tcp OMPI_MCA_pml=ob1 OMPI_MCA_btl_base_warn_component_unused=0
