#!/usr/bin/env bash
# Every example and the randomized DRF program at 2 and 4 ranks under gasprun.
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
for np in 2 4; do
  for prog in "examples/hello" "examples/counter 100" "examples/jacobi2d 128 20" \
              "examples/shared_tree 20000" "tests/drf_random 6" "tests/fault_probe threads" "tests/fault_probe memory"; do
    set -- $prog
    b=$(bin "$1"); shift
    log="$TMP/$(basename "$b")-$np.log"
    run_job "$log" 240 "$GASPRUN" -np "$np" "$b" "$@"
    if [ "$RC" = 0 ] && grep -q verified "$log" && ! grep -qE 'MISMATCH|FAILED' "$log"; then
      ok "gasprun -np $np $prog"
    else
      bad "gasprun -np $np $prog (rc=$RC)"; tail -n 20 "$log" | sed 's/^/    | /'
    fi
  done
done
finish
