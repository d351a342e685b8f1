#!/usr/bin/env bash
# Protection domains end to end on this machine (tcp transport; the
# protection backend auto-selected: mprotect here, pkeys in the guest via
# tools/vmtest pkeys, verbs remote keys via tools/vmtest verbs).
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
PROBE=$(bin tests/domain_probe)
export GASP_TRANSPORT=tcp

# 1. Remote protection: granted read / not granted, checked by the target.
run_job "$TMP/remote.log" 120 "$GASPRUN" -np 3 "$PROBE" remote
[ "$RC" = 0 ] && ok "remote: job passes" || bad "remote: rc=$RC"
expect_in "$TMP/remote.log" "rank 1: granted read: DSM reads ok, WRITE and FETCH_ADD refused" "remote: read-only grantee cannot write"
expect_in "$TMP/remote.log" "rank 2: not granted server: READ, WRITE, FETCH_ADD refused" "remote: non-grantee of server refused"
expect_in "$TMP/remote.log" "rank 1: not granted secret: READ, WRITE, FETCH_ADD refused" "remote: non-grantee of secret refused"
expect_in "$TMP/remote.log" "rank 0: all 2560 words of both domains intact" "remote: data unchanged"

# 2. A stray write by untrusted code: reported, fatal, data intact.
run_job "$TMP/stray.log" 120 "$GASPRUN" -np 2 "$PROBE" stray
[ "$RC" = 0 ] && ok "stray: job passes" || bad "stray: rc=$RC"
expect_in "$TMP/stray.log" "protection violation: write to 0x[0-9a-f]+ in domain 1 \(server\) by thread [0-9]+" \
  "stray: violation reported with address, domain and thread"
expect_in "$TMP/stray.log" "stray write outside the gate killed its process \(SIGSEGV\), data intact" "stray: data intact"

# 3. Domains and release consistency: gated writes from 4 threads per rank.
run_job "$TMP/coh.log" 120 "$GASPRUN" -np 3 "$PROBE" coherence
[ "$RC" = 0 ] && ok "coherence: job passes" || bad "coherence: rc=$RC"
expect_in "$TMP/coh.log" "3 ranks x 4 threads x 50 gated writes all home" "coherence: every gated write reached the home"

# 4. Bad setting.
run_job "$TMP/badprot.log" 30 env GASP_PROTECT=keys "$GASPRUN" -np 1 "$PROBE" stray
[ "$RC" != 0 ] && ok "GASP_PROTECT=keys: non-zero exit" || bad "GASP_PROTECT=keys: rc=0"
expect_in "$TMP/badprot.log" "GASP_PROTECT=keys is not valid" "GASP_PROTECT=keys: message names the setting"
if ! grep -q pku /proc/cpuinfo; then
  run_job "$TMP/nopku.log" 30 env GASP_PROTECT=pkeys "$GASPRUN" -np 1 "$PROBE" stray
  [ "$RC" != 0 ] && ok "GASP_PROTECT=pkeys without PKU: refused" || bad "GASP_PROTECT=pkeys without PKU: rc=0"
  expect_in "$TMP/nopku.log" "GASP_PROTECT=pkeys: .*PKU.*set GASP_PROTECT=auto or mprotect" "GASP_PROTECT=pkeys without PKU: says why and what to set"
fi
finish
