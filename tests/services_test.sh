#!/usr/bin/env bash
# Services end to end: gasprun starts the name server; rank 0 publishes,
# ranks 1 (trusted) and 2 (untrusted) bind and call along every path.
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
PROBE=$(bin tests/service_probe)
DICT=$(bin examples/dictionary)

run_job "$TMP/paths.log" 120 "$GASPRUN" -np 3 "$PROBE" paths
[ "$RC" = 0 ] && [ "$(grep -c '^PASS paths' "$TMP/paths.log")" = 3 ] && ok "paths: all 3 ranks pass" || { bad "paths: rc=$RC"; tail -20 "$TMP/paths.log"; }
expect_in "$TMP/paths.log" "rank 1: WhereData ran on rank 1, WhereFunction on rank 0 \(trusted client\)" "trusted client: data shipping runs here, function shipping at the home"
expect_in "$TMP/paths.log" "rank 2: WhereData ran on rank 2, WhereFunction on rank 0 \(untrusted client\)" "untrusted client: data shipping through a gate here"
expect_in "$TMP/paths.log" "rank 0: WhereData ran on rank 0, WhereFunction on rank 0 \(home client\)" "home: direct calls"

run_job "$TMP/refs.log" 120 "$GASPRUN" -np 3 "$PROBE" refs
[ "$RC" = 0 ] && [ "$(grep -c '^PASS refs' "$TMP/refs.log")" = 3 ] && ok "refs: all 3 ranks pass" || { bad "refs: rc=$RC"; tail -20 "$TMP/refs.log"; }
expect_in "$TMP/refs.log" "rank 1: Fill wrote 8192 words through a reference at rank 0 \(16 pages bundled\)" "call by reference: the callee's writes are seen, 16 pages bundled"

# Shipped again and again with random changes, copies dropped or made
# stale at the receiver in between: every byte checked, both directions.
run_job "$TMP/ship.log" 120 "$GASPRUN" -np 3 "$PROBE" ship
[ "$RC" = 0 ] && [ "$(grep -c '^PASS ship' "$TMP/ship.log")" = 3 ] && ok "ship: all 3 ranks pass" || { bad "ship: rc=$RC"; tail -20 "$TMP/ship.log"; }
expect_in "$TMP/ship.log" "rank 1: 30/30 echoes and 30/30 churned regions right, every byte; sent [0-9]+ pages in full and [1-9][0-9]* as diffs" "ship: every byte right at the receiver, pages sent as diffs"
expect_in "$TMP/ship.log" "rank 0: sent [1-9][0-9]* pages as diffs; [1-9][0-9]* diffs received did not apply" "ship: diffs both ways; stale or missing copies dropped, not patched"

# Write notices ride in calls instead of the notice log: the caller's
# writes outside the references reach a third rank through a lock the
# callee frees, the callee's reach the caller's next acquire, and more runs
# than a call carries (one page per home write fault) go to the log.
run_job "$TMP/notices.log" 120 env GASP_HOME_OPEN_PAGES=1 "$GASPRUN" -np 3 "$PROBE" notices
[ "$RC" = 0 ] && [ "$(grep -c '^PASS notices' "$TMP/notices.log")" = 3 ] && ok "notices: all 3 ranks pass" || { bad "notices: rc=$RC"; tail -20 "$TMP/notices.log"; }
expect_in "$TMP/notices.log" "rank 2: the caller's writes read through the callee's lock: 512/512 words" "notices: carried by the call, relayed by the callee's lock"
expect_in "$TMP/notices.log" "rank 1: the call carried [1-9][0-9]* pages of notices and published none; the callee's writes read after an acquire \(77, 78\); [0-9]+ pages in 1074 runs went to the log instead" "notices: none published for a call, the reply's applied, too many go to the log"

run_job "$TMP/bad.log" 120 "$GASPRUN" -np 3 "$PROBE" bad
[ "$RC" = 0 ] && [ "$(grep -c '^PASS bad' "$TMP/bad.log")" = 3 ] && ok "bad input: all 3 ranks pass" || { bad "bad input: rc=$RC"; tail -20 "$TMP/bad.log"; }
expect_in "$TMP/bad.log" "unknown service, 3 bad GlobalRefs, truncated and forged bundles, a garbage request and 3 malformed notice lists all refused; nothing ran" "bad input refused with its code"
expect_in "$TMP/bad.log" "the secret domain is intact \(512 words\)" "bad input: nothing changed"

run_job "$TMP/nons.log" 60 env GASP_TIMEOUT=5s GASP_NAMESERVER=127.0.0.1:1 "$GASPRUN" -np 2 "$PROBE" nons
[ "$RC" = 0 ] && ok "no name server: Bind fails UNAVAILABLE, bounded" || { bad "no name server: rc=$RC"; tail -20 "$TMP/nons.log"; }
expect_in "$TMP/nons.log" "Bind with the name server gone: UNAVAILABLE" "no name server: the code is UNAVAILABLE"

# Without mutual TLS, calls carry a credential made with the job secret:
# hand-made calls without one, with another job's secret, made for another
# rank, and a replay are refused; the proper call runs.
run_job "$TMP/creds.log" 120 "$GASPRUN" -np 3 "$PROBE" creds
[ "$RC" = 0 ] && [ "$(grep -c '^PASS creds' "$TMP/creds.log")" = 3 ] && ok "credentials: all 3 ranks pass" || { bad "credentials: rc=$RC"; tail -20 "$TMP/creds.log"; }
expect_in "$TMP/creds.log" "no credential, another job's secret, a call made for rank 2 and a replay all refused UNAUTHENTICATED \(512 and 512 words untouched\); the proper call ran \(512 filled\)" "credentials: outsiders and replays refused, data unchanged"

# Two jobs on one (insecure, loopback) name server: job B binds job A's
# service and calls it; A refuses (B's secret is not A's) and runs nothing.
NS=$(bin nameserver/gasp_nameserver)
rm -f "$TMP/ns2.port" "$TMP/done"
"$NS" --listen 127.0.0.1:0 --insecure --port-file "$TMP/ns2.port" >"$TMP/ns2.log" 2>&1 &
NS2=$!
for _ in $(seq 100); do [ -s "$TMP/ns2.port" ] && break; sleep 0.1; done
if [ -s "$TMP/ns2.port" ]; then
  export GASP_NAMESERVER="127.0.0.1:$(cat "$TMP/ns2.port")"
  PROBE_DONE_FILE="$TMP/done" timeout -k 5 120 "$GASPRUN" -np 2 "$PROBE" serve >"$TMP/jobA.log" 2>&1 &
  JOBA=$!
  for _ in $(seq 300); do grep -q "rank 0: serving" "$TMP/jobA.log" && break; sleep 0.1; done
  run_job "$TMP/jobB.log" 60 "$GASPRUN" -np 2 "$PROBE" outsider
  touch "$TMP/done"
  wait "$JOBA"; RCA=$?
  unset GASP_NAMESERVER
  [ "$RC" = 0 ] && ok "another job: its calls fail UNAUTHENTICATED" || { bad "another job: rc=$RC"; tail -20 "$TMP/jobB.log"; }
  expect_in "$TMP/jobB.log" "of another job: WhereFunction and Fill refused: UNAUTHENTICATED" "another job: the caller sees UNAUTHENTICATED"
  [ "$RCA" = 0 ] && ok "another job: the serving job finishes cleanly" || { bad "serving job: rc=$RCA"; tail -20 "$TMP/jobA.log"; }
  expect_in "$TMP/jobA.log" "rank 0: refused [0-9]+ calls from another job; data intact \(512 words\)" "another job: refused, data intact"
else
  bad "another job: the name server did not start"; cat "$TMP/ns2.log"
fi
kill "$NS2" 2>/dev/null; wait "$NS2" 2>/dev/null

# Mutual TLS: a name server with certificates (made by openssl now), and
# ranks that use theirs for the name server and for function shipping.
CERTS=$TMP/certs
for c in "${TEST_SRCDIR:-}/gasp" "${RUNFILES_DIR:-}/gasp" "$(dirname "$0")/.." .; do
  [ -r "$c/nameserver/testing/make_test_certs.sh" ] && { MKCERTS=$c/nameserver/testing/make_test_certs.sh; break; }
done
if bash "${MKCERTS:-missing}" "$CERTS" >"$TMP/certs.log" 2>&1; then
  rm -f "$TMP/ns.port"
  "$NS" --listen 127.0.0.1:0 --ca "$CERTS/ca.crt" --cert "$CERTS/server.crt" --key "$CERTS/server.key" \
    --port-file "$TMP/ns.port" >"$TMP/ns.log" 2>&1 &
  NSPID=$!
  for _ in $(seq 100); do [ -s "$TMP/ns.port" ] && break; sleep 0.1; done
  if [ -s "$TMP/ns.port" ]; then
    run_job "$TMP/tls.log" 120 env GASP_NAMESERVER="127.0.0.1:$(cat "$TMP/ns.port")" \
      GASP_NS_CA="$CERTS/ca.crt" GASP_NS_CERT="$CERTS/ranks.crt" GASP_NS_KEY="$CERTS/ranks.key" \
      PROBE_ROGUE_CERT="$CERTS/mallory.crt" PROBE_ROGUE_KEY="$CERTS/mallory.key" \
      "$GASPRUN" --no-nameserver -np 2 "$PROBE" tls
    [ "$RC" = 0 ] && [ "$(grep -c '^PASS tls' "$TMP/tls.log")" = 2 ] && ok "mutual TLS: both ranks pass" || { bad "mutual TLS: rc=$RC"; tail -20 "$TMP/tls.log"; }
    expect_in "$TMP/tls.log" "rank 1: WhereFunction shipped to rank 0 over mutual TLS" "mutual TLS: function shipping works"
    expect_in "$TMP/tls.log" "plaintext and this job's id without its credential all refused \(512 words untouched\); the proper call ran \(512 filled\)" "mutual TLS: outsiders, false principals, false callees and false job ids refused"
  else
    bad "mutual TLS: the name server did not start"; cat "$TMP/ns.log"
  fi
  kill "$NSPID" 2>/dev/null; wait "$NSPID" 2>/dev/null
else
  bad "mutual TLS: making the certificates failed"; cat "$TMP/certs.log"
fi

run_job "$TMP/dict.log" 180 "$GASPRUN" -np 3 "$DICT"
[ "$RC" = 0 ] && grep -q "verified" "$TMP/dict.log" && ok "examples/dictionary under gasprun -np 3" || { bad "dictionary: rc=$RC"; tail -20 "$TMP/dict.log"; }
expect_in "$TMP/dict.log" "InsertTree passed a 1000-node tree by reference in one call" "dictionary: a whole tree by reference"
# The function-shipping servers listen where the peers are, not on every
# interface (GASP_TCP_ADDR=0.0.0.0 would ask for that). On the tcp
# transport, whose listeners are counted too (shm's are unix sockets).
GASP_TRANSPORT=tcp "$GASPRUN" -np 3 "$DICT" 2000 >"$TMP/dict-bind.log" 2>&1 &
job=$!
addrs=$(watch_listeners dictionary 4)
wait "$job"
expect_own_address "$addrs" 4 "dictionary: the function-shipping server and the transports"
finish
