#!/usr/bin/env bash
# Two ranks as two hosts: each in its own network namespace with its own
# address, joined by a veth pair (then four ranks on two hosts through
# tools/netns_hosts). TCP rendezvous at rank 0's address (rank 0
# hosts the coordinator), the tcp transport between the two addresses.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  bad "needs root and iproute2 to create network namespaces"; finish; exit 1
fi
A=gaspA$$ B=gaspB$$
cleanup() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; }
trap cleanup EXIT
ip netns add "$A" && ip netns add "$B" || { bad "ip netns add failed"; finish; exit 1; }
ip link add vA$$ type veth peer name vB$$
ip link set vA$$ netns "$A"; ip link set vB$$ netns "$B"
ip -n "$A" addr add 10.231.0.1/24 dev vA$$; ip -n "$B" addr add 10.231.0.2/24 dev vB$$
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set vA$$ up; ip -n "$B" link set vB$$ up
# Each namespace sees only its own address: the job can only work across the veth.
ip -n "$A" -4 addr show | grep -q 10.231.0.1 && ! ip -n "$A" -4 addr show | grep -q 10.231.0.2 \
  && ok "namespaces have separate addresses" || bad "namespace addresses"
for prog in "examples/jacobi2d 128 20" "examples/shared_tree 20000"; do
  set -- $prog
  b=$(bin "$1"); shift
  COORD=10.231.0.1:$((20000 + RANDOM % 20000))
  common=(env GASP_COORDINATOR=$COORD GASP_BOOT=tcp PMI_SIZE=2 GASP_LOG_LEVEL=info)
  ip netns exec "$A" "${common[@]}" PMI_RANK=0 timeout 120 "$b" "$@" >"$TMP/a.log" 2>&1 & pa=$!
  ip netns exec "$B" "${common[@]}" PMI_RANK=1 timeout 120 "$b" "$@" >"$TMP/b.log" 2>&1; rb=$?
  wait $pa; ra=$?
  if [ $ra = 0 ] && [ $rb = 0 ] && grep -q verified "$TMP/a.log"; then
    ok "two namespaces: $prog"
    expect_in "$TMP/b.log" "10\.231\.0\.2" "rank 1 advertised its own namespace address"
  else
    bad "two namespaces: $prog (rc $ra/$rb)"; tail -n 15 "$TMP/a.log" "$TMP/b.log" | sed 's/^/    | /'
  fi
done

# tools/netns_hosts: 4 ranks on 2 namespace hosts (2 ranks per host), with
# several threads per rank: lock hand-offs and the data-race-free stress
# across hosts, checked as in threads_test.
HOSTS=$(bin tools/netns_hosts)
run_job "$TMP/h-lc.log" 240 "$HOSTS" -np 4 "$(bin tests/lock_counters)" 300 3
if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/h-lc.log")" = 4 ]; then
  ok "netns_hosts: lock_counters, 4 ranks x 3 threads on 2 hosts, none lost"
else
  bad "netns_hosts lock_counters (rc=$RC)"; tail -n 15 "$TMP/h-lc.log" | sed 's/^/    | /'
fi
run_job "$TMP/h-dt.log" 400 env GASP_LOG_LEVEL=info "$HOSTS" -np 4 "$(bin tests/drf_threads)" 4 3 7 30
if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/h-dt.log")" = 4 ]; then
  ok "netns_hosts: drf_threads, 4 ranks x 3 threads on 2 hosts, matches the model"
else
  bad "netns_hosts drf_threads (rc=$RC)"; tail -n 15 "$TMP/h-dt.log" | sed 's/^/    | /'
fi
expect_in "$TMP/h-dt.log" "10\.231\.0\.2" "ranks 2 and 3 advertised the second host's address"
finish
