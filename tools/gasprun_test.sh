#!/bin/bash
# gasprun itself: usage errors, exit statuses, environment, --tag-output,
# -x, signal forwarding, clean-up of descendants.
source "${TEST_SRCDIR}/gasp/tools/testlib.sh"

echo "== usage errors exit 2 and print the usage"
run 2 "$GASPRUN"
expect_in "$ERR" "usage: gasprun -np N"
run 2 "$GASPRUN" -np 0 true
expect_in "$ERR" "expected a number of ranks"
run 2 "$GASPRUN" -np 2
expect_in "$ERR" "no program given"
run 2 "$GASPRUN" --bogus -np 2 true
expect_in "$ERR" "unknown option '--bogus'"
run 2 "$GASPRUN" -np 2 --timeout soon true
expect_in "$ERR" "--timeout soon"
run 2 "$GASPRUN" true
expect_in "$ERR" "-np N is required"
run 0 "$GASPRUN" --help
expect_in "$OUT" "usage: gasprun"

echo "== a missing program is exit 127"
run 127 "$GASPRUN" -np 2 ./no-such-program-here
expect_in "$ERR" "cannot run './no-such-program-here'"

echo "== launcher variables and -x"
run 0 "$GASPRUN" -np 2 -x FOO=bar -x GASP_TIMEOUT=7s sh -c \
  'echo "r=$GASP_RANK n=$GASP_NRANKS lr=$GASP_LOCAL_RANK ln=$GASP_LOCAL_NRANKS l=$GASP_LAUNCHER c=$GASP_COORDINATOR j=$GASP_JOB_ID foo=$FOO t=$GASP_TIMEOUT"'
expect_in "$OUT" "^r=0 n=2 lr=0 ln=2 l=gasprun c=127\.0\.0\.1:[0-9]+ j=gasprun-[^ ]+ foo=bar t=7s$"
expect_in "$OUT" "^r=1 n=2 lr=1 ln=2 l=gasprun c=127\.0\.0\.1:[0-9]+ j=gasprun-[^ ]+ foo=bar t=7s$"

echo "== --tag-output prefixes every line, stdout and stderr apart"
run 0 "$GASPRUN" -np 2 --tag-output sh -c \
  'echo "out $GASP_RANK"; echo "err $GASP_RANK" >&2; echo "two"; printf "no newline $GASP_RANK"'
expect_in "$OUT" "^\[0\] out 0$"
expect_in "$OUT" "^\[1\] out 1$"
expect_in "$OUT" "^\[[01]\] two$" 2
expect_in "$OUT" "^\[1\] no newline 1$"
expect_in "$ERR" "^\[0\] err 0$"
expect_in "$ERR" "^\[1\] err 1$"
expect_not_in "$OUT" "err"

echo "== the first failing rank's status wins; the others are stopped"
SLEEP="3${$}.5"  # a unique sleep duration, to find leftovers
run 5 "$GASPRUN" -np 3 sh -c "if [ \$GASP_RANK = 1 ]; then exit 5; fi; sleep $SLEEP" "$MARKER"
expect_in "$ERR" "gasprun: rank 1 \([^)]*:[0-9]+\) exited with status 5; stopping the other 2 ranks"
[ "$ELAPSED" -lt 15 ] || fail "took ${ELAPSED}s: the other ranks were not stopped"
expect_no_orphans
pgrep -f "sleep $SLEEP" >/dev/null && fail "a descendant of a rank (sleep $SLEEP) survived"

echo "== a rank killed by a signal gives 128+signal"
run 137 "$GASPRUN" -np 2 sh -c 'if [ $GASP_RANK = 0 ]; then kill -9 $$; fi; sleep 5'
expect_in "$ERR" "rank 0 \([^)]*\) was killed by signal 9"

echo "== SIGTERM to gasprun is forwarded to the ranks"
"$GASPRUN" -np 2 sh -c 'trap "exit 7" TERM; echo up; sleep 100 & wait' "$MARKER" >"$OUT" 2>"$ERR" &
GPID=$!
for i in $(seq 1 100); do
  [ "$(grep -c up "$OUT")" = 2 ] && break
  sleep 0.1
done
[ "$(grep -c up "$OUT")" = 2 ] || fail "ranks did not start"
kill -TERM "$GPID"
wait "$GPID"
STATUS=$?
[ "$STATUS" = 7 ] || fail "gasprun exited $STATUS after SIGTERM, expected 7 (the ranks' trap)"
expect_no_orphans

echo "== a name server for the ranks, stopped with the job"
run 0 "$GASPRUN" -np 2 "$NSPROBE"
expect_in "$OUT" "^ns_probe rank 0: 127\.0\.0\.1:[0-9]+ owner uid:[0-9]+ trusted 1 stub FUNCTION_SHIPPING services [12]$"
expect_in "$OUT" "^ns_probe rank 1: 127\.0\.0\.1:[0-9]+ owner uid:[0-9]+ trusted 1 stub FUNCTION_SHIPPING services [12]$"
[ "$(awk '{print $4}' "$OUT" | sort -u | wc -l)" = 1 ] || fail "the ranks got different name servers"
NS_PORT=$(awk '{print $4}' "$OUT" | head -1 | cut -d: -f2)
if (exec 3<>"/dev/tcp/127.0.0.1/$NS_PORT") 2>/dev/null; then
  fail "the name server on port $NS_PORT still listens after the job"
fi
expect_not_in "$ERR" "warning"

echo "== GASP_NAMESERVER given (environment or -x) or --no-nameserver: none started"
GASP_NAMESERVER=192.0.2.1:7474 run 0 "$GASPRUN" -np 1 sh -c 'echo "ns=$GASP_NAMESERVER"'
expect_in "$OUT" "^ns=192\.0\.2\.1:7474$"
run 0 "$GASPRUN" -np 1 -x GASP_NAMESERVER=192.0.2.2:7474 sh -c 'echo "ns=$GASP_NAMESERVER"'
expect_in "$OUT" "^ns=192\.0\.2\.2:7474$"
run 0 "$GASPRUN" -np 1 --no-nameserver sh -c 'echo "ns=${GASP_NAMESERVER-unset}"'
expect_in "$OUT" "^ns=unset$"
run 3 "$GASPRUN" -np 1 --no-nameserver "$NSPROBE"
expect_in "$ERR" "no name server: GASP_NAMESERVER is empty"

echo "== no gasp_nameserver binary: a warning, and the job runs without one"
mkdir -p "$TMPDIR/lonely"
cp "$GASPRUN" "$TMPDIR/lonely/gasprun"
PATH=/usr/bin:/bin run 0 "$TMPDIR/lonely/gasprun" -np 2 sh -c 'echo "ns=${GASP_NAMESERVER-unset}"'
expect_in "$OUT" "^ns=unset$" 2
expect_in "$ERR" "gasprun: warning: no gasp_nameserver next to gasprun or in PATH"

echo "== --version, and placement options of a local run"
run 0 "$GASPRUN" --version
expect_in "$OUT" "^gasprun \(gasp\) [0-9]+\.[0-9]+\.[0-9]+$"
run 0 "$GASPRUN" -np 2 --oversubscribe -N 2 true
run 0 "$GASPRUN" -np 2 --bind-to core true
expect_in "$ERR" "--map-by/--bind-to apply when handing over"
run 2 "$GASPRUN" -np 4 -N 2 true
expect_in "$ERR" "-N 2 with -np 4 on one host"

echo "== all ranks exit 0: gasprun exits 0"
run 0 "$GASPRUN" -np 3 true

echo "PASS"
