#!/bin/bash
# boot_probe under gasprun: bootstrap method "gasprun", allgathers, rank
# records, barrier and finalize on every rank.
source "${TEST_SRCDIR}/gasp/tools/testlib.sh"

for np in 1 2 4; do
  echo "== gasprun -np $np"
  run 0 "$GASPRUN" -np "$np" --timeout 60 "$PROBE" --expect-size="$np" --expect-method=gasprun \
    --marker="$MARKER"
  expect_in "$OUT" "^boot_probe rank [0-9]+/$np local [0-9]+/$np method gasprun hint '127\.0\.0\.1'$" "$np"
  expect_in "$OUT" "^boot_probe rank [0-9]+: OK" "$np"
  for r in $(seq 0 $((np - 1))); do expect_in "$OUT" "^boot_probe rank $r: OK"; done
  expect_no_orphans
done

echo "== gasprun -np 4 --tag-output"
run 0 "$GASPRUN" -np 4 --tag-output "$PROBE" --rounds=5
for r in 0 1 2 3; do expect_in "$OUT" "^\[$r\] boot_probe rank $r: OK \(5 allgathers"; done

echo "PASS"
