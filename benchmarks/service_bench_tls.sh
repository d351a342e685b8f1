#!/usr/bin/env bash
# service_bench with and without mutual TLS, one after the other on this
# machine (docs/benchmarks.md, "Services"): what TLS costs a shipped call.
#   benchmarks/service_bench_tls.sh [iterations]
# Makes throw-away certificates with openssl, starts a TLS name server on
# loopback, and runs the ranks with GASP_NS_CA/CERT/KEY; then the same run
# with gasprun's own insecure name server.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-300}
OUT=/tmp/gasp-bench-
bazel build -c opt --symlink_prefix=$OUT //tools:gasprun //benchmarks:service_bench \
  //nameserver:gasp_nameserver >/dev/null
B=${OUT}bin
T=$(mktemp -d)
trap 'kill "${NSPID:-}" 2>/dev/null || true; rm -rf "$T"' EXIT
bash nameserver/testing/make_test_certs.sh "$T/certs" >/dev/null 2>&1
"$B/nameserver/gasp_nameserver" --listen 127.0.0.1:0 --ca "$T/certs/ca.crt" \
  --cert "$T/certs/server.crt" --key "$T/certs/server.key" --port-file "$T/port" >"$T/ns.log" 2>&1 &
NSPID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { echo "the TLS name server did not start:"; cat "$T/ns.log"; exit 1; }
echo "## mutual TLS (GASP_NS_CA/CERT/KEY)"
GASP_NAMESERVER="127.0.0.1:$(cat "$T/port")" GASP_NS_CA="$T/certs/ca.crt" \
  GASP_NS_CERT="$T/certs/ranks.crt" GASP_NS_KEY="$T/certs/ranks.key" \
  "$B/tools/gasprun" --no-nameserver -np 2 "$B/benchmarks/service_bench" "$ITERS"
echo
echo "## no TLS (gasprun's loopback name server)"
"$B/tools/gasprun" -np 2 "$B/benchmarks/service_bench" "$ITERS"
