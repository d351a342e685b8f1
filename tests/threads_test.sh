#!/usr/bin/env bash
# Several application threads per rank, several ranks on this host (more
# threads than cores): lock-protected counters that share a page homed
# elsewhere, the fairness and FIFO order of contended locks, and the
# randomized data-race-free stress against its sequential model, on several
# seeds. The soak version is tools/soak.
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
LC=$(bin tests/lock_counters)
DT=$(bin tests/drf_threads)
LF=$(bin tests/lock_fairness)
FT=$(bin tests/first_touch)

for np in 2 4; do
  for th in 2 4; do
    run_job "$TMP/lc-$np-$th.log" 240 "$GASPRUN" -np "$np" "$LC" 500 "$th"
    if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/lc-$np-$th.log")" = "$np" ]; then
      ok "lock_counters: $np ranks x $th threads x 500 increments, none lost"
    else
      bad "lock_counters $np x $th (rc=$RC)"; tail -n 15 "$TMP/lc-$np-$th.log" | sed 's/^/    | /'
    fi
  done
done

# Fairness and FIFO order of global locks (tests/lock_fairness.cc): one
# lock, then three, hammered by every thread; exact counters, hand-offs in
# queue order, no thread starved. Once with GASP_WAIT_MODE=block (waiters
# nap from the start).
for cfg in "4 4 100" "2 4 100" "8 2 50"; do
  set -- $cfg
  run_job "$TMP/lf-$1-$2.log" 240 "$GASPRUN" -np "$1" "$LF" "$3" "$2" 3
  if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/lf-$1-$2.log")" = "$1" ]; then
    ok "lock_fairness: $1 ranks x $2 threads x $3 acquisitions: exact, FIFO, nobody starved"
    grep -m1 '^rank 0: ' "$TMP/lf-$1-$2.log" | cut -c1-400 | sed 's/^/    | /'
  else
    bad "lock_fairness $1 x $2 (rc=$RC)"; tail -n 15 "$TMP/lf-$1-$2.log" | sed 's/^/    | /'
  fi
done
run_job "$TMP/lf-block.log" 240 env GASP_WAIT_MODE=block "$GASPRUN" -np 4 -x GASP_WAIT_MODE "$LF" 50 4 3
if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/lf-block.log")" = 4 ]; then
  ok "lock_fairness: GASP_WAIT_MODE=block, 4 ranks x 4 threads: exact, FIFO, nobody starved"
else
  bad "lock_fairness block (rc=$RC)"; tail -n 15 "$TMP/lf-block.log" | sed 's/^/    | /'
fi

for seed in 1 2 3; do
  run_job "$TMP/dt-$seed.log" 400 "$GASPRUN" -np 4 "$DT" 4 4 "$seed" 60
  if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/dt-$seed.log")" = 4 ]; then
    ok "drf_threads: 4 ranks x 4 threads, seed $seed, matches the sequential model"
  else
    bad "drf_threads seed $seed (rc=$RC)"; tail -n 15 "$TMP/dt-$seed.log" | sed 's/^/    | /'
  fi
done
run_job "$TMP/dt-2x8.log" 400 "$GASPRUN" -np 2 "$DT" 3 8 11 20
if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/dt-2x8.log")" = 2 ]; then
  ok "drf_threads: 2 ranks x 8 threads matches the model"
else
  bad "drf_threads 2x8 (rc=$RC)"; tail -n 15 "$TMP/dt-2x8.log" | sed 's/^/    | /'
fi

# First-touch placement (homes decided at run time), then the stress with
# every array first-touch.
for np in 2 4; do
  run_job "$TMP/ft-$np.log" 240 "$GASPRUN" -np "$np" "$FT"
  if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/ft-$np.log")" = "$np" ]; then
    ok "first_touch: $np ranks x 2 threads: homes follow the writers, zero copies, racing claims"
  else
    bad "first_touch $np (rc=$RC)"; tail -n 15 "$TMP/ft-$np.log" | sed 's/^/    | /'
  fi
done
run_job "$TMP/dt-ft.log" 400 env DRF_FIRST_TOUCH=1 "$GASPRUN" -np 4 "$DT" 4 4 5 60
if [ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/dt-ft.log")" = 4 ]; then
  ok "drf_threads: 4 ranks x 4 threads on first-touch arrays matches the model"
else
  bad "drf_threads first touch (rc=$RC)"; tail -n 15 "$TMP/dt-ft.log" | sed 's/^/    | /'
fi
finish
