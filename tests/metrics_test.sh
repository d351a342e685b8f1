#!/usr/bin/env bash
# Per-rank metrics: GASP_STATS_FILE dumps of a 4-rank job, their periodic
# rewrites (GASP_STATS_INTERVAL), the Init-time checks of both settings, and
# tools/gasp_stats (table, --plot, errors) on the files.
source "$(dirname "$0")/lib.sh"
GASPRUN=$(bin tools/gasprun)
STATS=$(bin tools/gasp_stats)
PY=python3

# 4 ranks of examples/counter: one final dump per rank.
run_job "$TMP/counter.log" 240 env GASP_STATS_FILE="$TMP/s.%r.json" GASP_STATS_INTERVAL=200ms \
  "$GASPRUN" -np 4 "$(bin examples/counter)" 100
[ "$RC" = 0 ] && grep -q verified "$TMP/counter.log" && ok "counter -np 4 with GASP_STATS_FILE" ||
  { bad "counter with GASP_STATS_FILE: rc=$RC"; tail -n 20 "$TMP/counter.log"; }
[ "$(ls "$TMP"/s.*.json | wc -l)" = 4 ] && ok "one file per rank" || bad "files: $(ls "$TMP")"
ls "$TMP" | grep -q '\.tmp\.' && bad "temporary files left: $(ls "$TMP")" || ok "no temporary file left"
# Each file: JSON of its rank; the counters every rank of counter must have.
if $PY - "$TMP" >"$TMP/check.log" 2>&1 <<'EOF'
import json, sys
for r in range(4):
    d = json.load(open(f"{sys.argv[1]}/s.{r}.json"))
    c = d["counters"]
    assert (d["rank"], d["size"], d["final"]) == (r, 4, True), d
    assert d["pid"] > 0 and d["host"] and d["elapsed_s"] > 0, d
    assert list(c)[0] == "read_faults" and "rpcs_refused" in c, list(c)
    assert c["lock_acquires"] >= 100 and c["atomics"] >= 100, c
    assert c["barriers"] >= 1 and c["remote_ops"] > 0, c
EOF
then ok "each file is its rank's JSON with lock_acquires, atomics, barriers, remote_ops counted"
else bad "file contents"; cat "$TMP/check.log"; fi

# The table: a row per rank and totals that add the files up.
"$STATS" "$TMP"/s.*.json --counters lock_acquires,remote_ops >"$TMP/table.txt" 2>"$TMP/table.err"
RC=$?
cat "$TMP/table.txt"
want=$($PY -c 'import json,sys; print(sum(json.load(open(f))["counters"]["lock_acquires"] for f in sys.argv[1:]))' "$TMP"/s.*.json)
[ "$RC" = 0 ] && [ "$(grep -cE '^[0-3] ' "$TMP/table.txt")" = 4 ] && [ ! -s "$TMP/table.err" ] &&
  grep -qE "^total +$want " "$TMP/table.txt" && ok "gasp_stats: 4 rank rows, total lock_acquires $want" ||
  { bad "gasp_stats table: rc=$RC, want total $want"; cat "$TMP/table.err"; }
"$STATS" "$TMP"/s.*.json | head -1 | grep -qE '^rank +host +remote_ops +read_faults +write_faults +pages_fetched +lock_wait_ns +barrier_wait_ns +read_fault_ns$' &&
  ok "gasp_stats: default columns" || bad "gasp_stats default columns: $("$STATS" "$TMP"/s.*.json | head -1)"

# --plot: a PNG (needs python3-matplotlib; tools/setup installs it).
rm -f "$TMP/job.png"
"$STATS" "$TMP"/s.*.json --plot "$TMP/job.png" >/dev/null 2>"$TMP/plot.err"
RC=$?
if [ "$RC" = 0 ] && [ "$(head -c 8 "$TMP/job.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
  ok "gasp_stats --plot writes a PNG"
else
  bad "gasp_stats --plot (rc=$RC; python3-matplotlib installed? tools/setup installs it):"
  sed 's/^/    | /' "$TMP/plot.err"
fi
# Without matplotlib --plot fails saying what to install (the table still prints).
mkdir -p "$TMP/nompl/matplotlib"
echo 'raise ImportError("No module named matplotlib (test)")' >"$TMP/nompl/matplotlib/__init__.py"
PYTHONPATH="$TMP/nompl" "$STATS" "$TMP"/s.*.json --plot "$TMP/x.png" >"$TMP/nompl.out" 2>"$TMP/nompl.err"
RC=$?
[ "$RC" = 1 ] && grep -q "apt-get install python3-matplotlib" "$TMP/nompl.err" && grep -q '^total' "$TMP/nompl.out" &&
  ok "gasp_stats --plot without matplotlib: exit 1 naming python3-matplotlib" ||
  { bad "no-matplotlib error: rc=$RC"; cat "$TMP/nompl.err"; }

# Bad input: the file is named, exit 2; missing and duplicated ranks warn.
echo '{"rank": 1, "counters": ' >"$TMP/broken.json"
echo '[1, 2]' >"$TMP/array.json"
for f in "$TMP/none.json" "$TMP/broken.json" "$TMP/array.json"; do
  "$STATS" "$f" >/dev/null 2>"$TMP/err.txt"
  RC=$?
  [ "$RC" = 2 ] && grep -qF "gasp_stats: $f: " "$TMP/err.txt" && ok "gasp_stats $(basename "$f"): exit 2 naming it" ||
    { bad "gasp_stats $(basename "$f"): rc=$RC"; cat "$TMP/err.txt"; }
done
"$STATS" "$TMP"/s.[012].json "$TMP/s.1.json" >"$TMP/dup.out" 2>"$TMP/dup.err"
RC=$?
[ "$RC" = 0 ] && grep -q "rank 1 is in both" "$TMP/dup.err" && grep -q "no file for rank 3 of 4" "$TMP/dup.err" &&
  [ "$(grep -cE '^[0-3] ' "$TMP/dup.out")" = 3 ] && ok "gasp_stats warns of duplicated and missing ranks" ||
  { bad "duplicate/missing ranks: rc=$RC"; cat "$TMP/dup.err"; }
"$STATS" "$TMP"/s.*.json --counters lock_acquires,no_such >/dev/null 2>"$TMP/err.txt"
[ $? = 2 ] && grep -q "no counter no_such" "$TMP/err.txt" && ok "gasp_stats: unknown counter is exit 2" ||
  { bad "unknown counter"; cat "$TMP/err.txt"; }
"$STATS" --help | grep -q -- "--plot OUT.png" && ok "gasp_stats --help" || bad "gasp_stats --help"

# Periodic dumps: each rank of stats_probe reads its own file during the run
# and needs a second "final":false dump; the final dump counts them all.
rm -f "$TMP"/p.*.json
run_job "$TMP/probe.log" 240 env GASP_STATS_FILE="$TMP/p.%r.json" GASP_STATS_INTERVAL=100ms \
  "$GASPRUN" -np 4 "$(bin tests/stats_probe)"
[ "$RC" = 0 ] && grep -q "stats probe: verified" "$TMP/probe.log" &&
  $PY -c 'import json,sys; sys.exit(0 if all(json.load(open(f))["final"] and json.load(open(f))["dump"] >= 3 for f in sys.argv[1:]) and len(sys.argv) == 5 else 1)' "$TMP"/p.*.json &&
  ok "GASP_STATS_INTERVAL=100ms: files rewritten during the run, final dump numbered >= 3" ||
  { bad "periodic dumps: rc=$RC"; tail -n 20 "$TMP/probe.log"; cat "$TMP"/p.*.json; }
# Control: without the interval nothing is rewritten, and the probe says so.
run_job "$TMP/probe0.log" 120 env GASP_STATS_FILE="$TMP/q.%r.json" "$GASPRUN" -np 2 "$(bin tests/stats_probe)" 2
[ "$RC" != 0 ] && grep -q "FAILED: not every rank saw" "$TMP/probe0.log" &&
  ok "control: without GASP_STATS_INTERVAL the probe sees no periodic dump" ||
  { bad "control: rc=$RC"; tail -n 5 "$TMP/probe0.log"; }

# Init refuses what cannot work, naming the settings.
run_job "$TMP/nor.log" 120 env GASP_STATS_FILE="$TMP/all.json" "$GASPRUN" -np 2 "$(bin examples/hello)"
expect_in "$TMP/nor.log" "GASP_STATS_FILE=.*/all.json has no %r: the 2 ranks would overwrite" \
  "a pattern without %r at 2 ranks is an Init error"
[ "$RC" != 0 ] || bad "the job without %r succeeded"
run_job "$TMP/nodir.log" 120 env GASP_STATS_FILE="$TMP/nodir/s.%r.json" "$GASPRUN" -np 2 "$(bin examples/hello)"
expect_in "$TMP/nodir.log" "GASP_STATS_FILE=.*: directory '.*/nodir' does not exist" \
  "a missing directory is an Init error naming GASP_STATS_FILE"
run_job "$TMP/nofile.log" 120 env GASP_STATS_INTERVAL=1s "$GASPRUN" -np 2 "$(bin examples/hello)"
expect_in "$TMP/nofile.log" "GASP_STATS_INTERVAL=1s needs GASP_STATS_FILE" \
  "GASP_STATS_INTERVAL without GASP_STATS_FILE is an Init error naming both"
finish
