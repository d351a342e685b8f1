#!/usr/bin/env bash
# The recipes of docs/debugging.md, each with a planted bug
# (tests/planted_bug.cc: DSM work with many page faults, then a load from a
# never-allocated global address in PlantedBugReadPastTheArray).
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
BUG=$(bin tests/planted_bug)
export GASP_TRANSPORT=tcp

# 1. The fault report: address, pc and a symbolized backtrace from the
#    faulting frame; the job still ends non-zero.
run_job "$TMP/report.log" 60 "$GASPRUN" -np 2 "$BUG" 3
[ "$RC" != 0 ] && ok "fault report: job exits non-zero ($RC)" || bad "fault report: rc=0"
expect_in "$TMP/report.log" \
  "fault report: load outside any allocation: address 0x[0-9a-f]+, pc 0x[0-9a-f]+ in .*PlantedBugReadPastTheArray" \
  "fault report: names address, pc and the faulting function"
expect_in "$TMP/report.log" "  #0 0x[0-9a-f]+ in .*PlantedBugReadPastTheArray" \
  "fault report: backtrace starts at the faulting frame"
expect_in "$TMP/report.log" "  #1 0x[0-9a-f]+ in main" "fault report: backtrace reaches main"
expect_in "$TMP/report.log" "load of address 0x[0-9a-f]+: inside the global range .* outside any allocation" \
  "fault report: then gasp's verdict, as before"

# 1b. A store into a domain this thread was not granted: the same report
#     after protect's verdict.
run_job "$TMP/stray.log" 60 "$GASPRUN" -np 2 "$(bin tests/domain_probe)" stray
expect_in "$TMP/stray.log" \
  "fault report: protection violation: address 0x[0-9a-f]+, pc 0x[0-9a-f]+ in .*Stray" \
  "fault report: an ungranted domain's store names the faulting function"

# 2. gdb in batch mode on the last rank, with gasp.gdb: it lets the DSM's
#    SIGSEGVs through and stops exactly once, at gasp_fault_breakpoint.
run_job "$TMP/gdb.log" 180 "$GASPRUN" -np 2 --gdb-batch 1 "$BUG" 3
faults=$(sed -n 's/^rank 1: 3 rounds done, checksum -\?[0-9]*, \([0-9]*\) read faults$/\1/p' "$TMP/gdb.log")
[ "${faults:-0}" -ge 10 ] && ok "gdb: rank 1 took $faults DSM read faults under gdb" \
  || { bad "gdb: rank 1 did no DSM work (${faults:-no count})"; tail -n 30 "$TMP/gdb.log"; }
stops=$(grep -cE "(^| )Breakpoint 1, .*gasp_fault_breakpoint" "$TMP/gdb.log")
[ "$stops" = 1 ] && ok "gdb: stopped once, at gasp_fault_breakpoint" \
  || { bad "gdb: $stops stops at gasp_fault_breakpoint"; tail -n 30 "$TMP/gdb.log"; }
! grep -q "received signal SIGSEGV" "$TMP/gdb.log" && ok "gdb: did not stop at any DSM fault" \
  || bad "gdb: stopped at a SIGSEGV"
expect_in "$TMP/gdb.log" "^#0 .*gasp_fault_breakpoint" "gdb: bt starts at the breakpoint"
expect_in "$TMP/gdb.log" "<signal handler called>" "gdb: bt crosses the signal frame"
expect_in "$TMP/gdb.log" "^#[0-9]+ .*PlantedBugReadPastTheArray" "gdb: bt shows the planted function"
# 2b. A correct program under --gdb-batch: the job succeeds, and the rank's
#     exit status is the program's, not gdb's.
run_job "$TMP/gdb-ok.log" 120 "$GASPRUN" -np 2 --gdb-batch 1 "$(bin examples/hello)"
[ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/gdb-ok.log")" = 2 ] &&
  ok "gdb: a correct rank under --gdb-batch exits 0" ||
  { bad "gdb: a correct program under --gdb-batch: rc=$RC"; tail -n 20 "$TMP/gdb-ok.log"; }
run_job "$TMP/gdb-rc.log" 120 "$GASPRUN" -np 1 --gdb-batch 0 sh -c 'exit 7'
[ "$RC" = 7 ] && ok "gdb: --gdb-batch passes the program's exit status (7)" ||
  bad "gdb: --gdb-batch exit status $RC, expected 7"

# 2c. Interactive --gdb through a terminal (script(1) provides the pty):
#     gdb reads the user's commands from it and stops once, at the bug.
if command -v script >/dev/null; then
  printf 'run\nbt 3\nquit\ny\n' | run_job "$TMP/gdb-tty.log" 120 \
    script -qec "'$GASPRUN' -np 2 --gdb 1 '$BUG' 3" /dev/null
  hits=$(grep -c "hit Breakpoint 1" "$TMP/gdb-tty.log")
  if [ "$hits" = 1 ] && grep -q "gasp_fault_breakpoint" "$TMP/gdb-tty.log" &&
     grep -q "(gdb) bt 3" "$TMP/gdb-tty.log"; then
    ok "gdb: interactive --gdb on a terminal stops once, at the bug, and takes commands"
  else
    bad "gdb: interactive --gdb ($hits stops)"; tail -n 30 "$TMP/gdb-tty.log"
  fi
else
  bad "script(1) not installed (util-linux)"
fi

# 3. valgrind (memcheck) on 2 ranks of hello with gasp.supp and the
#    default GASP_SIZE (gasp picks 32G under valgrind): clean, no leaks.
SUPP=$(dirname "$(bin tests/planted_bug)")/../install/share/gasp.supp
[ -f "$SUPP" ] || SUPP="${TEST_SRCDIR:-.}/gasp/install/share/gasp.supp"
run_job "$TMP/vg.log" 600 "$GASPRUN" -np 2 valgrind --leak-check=full --error-exitcode=9 \
  --suppressions="$SUPP" "$(bin examples/hello)"
[ "$RC" = 0 ] && [ "$(grep -c verified "$TMP/vg.log")" = 2 ] && ok "valgrind: 2 ranks of hello, clean" \
  || { bad "valgrind: rc=$RC"; tail -n 30 "$TMP/vg.log"; }
expect_in "$TMP/vg.log" "ERROR SUMMARY: 0 errors" "valgrind: no errors"
finish
