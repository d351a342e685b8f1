#!/usr/bin/env bash
# Uses gasp only through an install (docs/install.md): installs into a fresh
# prefix, copies the installed examples outside the source tree, builds them
# three ways (CMake find_package, make + pkg-config, gaspcxx/gaspcc) plus the
# C, Fortran and service examples, and runs each at 4 ranks with the
# installed gasprun and with mpirun. Also checks the library's exports and
# soname, the version, and gaspcxx --showme.
source "$(dirname "$0")/lib.sh"
for t in cmake make gfortran pkg-config protoc mpirun nm; do
  command -v "$t" >/dev/null || { bad "$t not installed (tools/setup installs it)"; finish; exit 1; }
done
installer=$(bin install/install)
prefix=$TMP/prefix
work=$TMP/outside   # not under the source tree: nothing but the prefix is used
if RUNFILES_DIR="${TEST_SRCDIR:-$installer.runfiles}" "$installer" --prefix="$prefix" >"$TMP/install.log" 2>&1; then
  ok "install into $prefix ($(wc -l < "$prefix/share/gasp/manifest") files)"
else
  bad "install"; tail -n 20 "$TMP/install.log" | sed 's/^/    | /'; finish; exit 1
fi

# The library: soname, symlinks, and only the public API exported.
soname=$(objdump -p "$prefix/lib/libgasp.so.1.0" | awk '/SONAME/ {print $2}')
[ "$soname" = libgasp.so.1 ] && [ "$(readlink "$prefix/lib/libgasp.so")" = libgasp.so.1 ] &&
  [ "$(readlink "$prefix/lib/libgasp.so.1")" = libgasp.so.1.0 ] &&
  ok "libgasp.so.1.0, soname $soname, symlinks" || bad "soname/symlinks (soname '$soname')"
# Into a file first: grep -q closing a pipe early fails the pipeline (pipefail).
nm -D --defined-only "$prefix/lib/libgasp.so.1.0" | c++filt > "$TMP/exports.txt"
leaked=$(awk '{ $1 = ""; $2 = ""; print }' "$TMP/exports.txt" |
  sed 's/^ *//; s/@@GASP_1$//' | grep -vE '^(GASP_1$|gasp_[a-z_]+$|gasp::|descriptor_table_gasp_2foptions_2eproto$|(typeinfo|typeinfo name|vtable) for gasp::|(void )?google::protobuf::.*gasp::(GlobalRef|InvocationKind))' || true)
n=$(nm -D --defined-only "$prefix/lib/libgasp.so.1.0" | grep -c GASP_1)
if [ -z "$leaked" ] && grep -q 'gasp::Init(' "$TMP/exports.txt"; then
  ok "libgasp.so exports the public API only ($n symbols)"
else
  bad "libgasp.so exports non-API symbols:"; echo "$leaked" | head -n 20 | sed 's/^/    | /'
fi
internal=$(grep -E 'gasp::(StatAdd|consistency|transport|boot|rt)::?|absl::' "$TMP/exports.txt" || true)
[ -z "$internal" ] && ok "no gasp internals or Abseil symbols exported" || { bad "internals exported"; echo "$internal" | head | sed 's/^/    | /'; }

# Tools from the prefix.
v=$("$prefix/bin/gasprun" --version 2>&1 | head -n 1)
grep -q '1\.0\.0' <<<"$v" && ok "gasprun --version: $v" || bad "gasprun --version: '$v'"
show=$("$prefix/bin/gaspcxx" --showme -O2 app.cc)
grep -q -- "-I$prefix/include .*app.cc .*-lgasp" <<<"$show" && ok "gaspcxx --showme: $show" || bad "gaspcxx --showme: $show"
[ "$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion gasp)" = 1.0.0 ] &&
  ok "pkg-config --modversion gasp" || bad "pkg-config --modversion gasp"

mkdir -p "$work"
build() {  # build NAME DIR CMD...: runs a build in DIR, logging
  local name=$1 dir=$2; shift 2
  rm -rf "$dir"; mkdir -p "$dir"; cp -r "$prefix/share/gasp/examples/." "$dir/"
  if (cd "$dir" && "$@") >"$TMP/build-$name.log" 2>&1; then
    ok "$name build"
  else
    bad "$name build"; tail -n 30 "$TMP/build-$name.log" | sed 's/^/    | /'
  fi
}
build cmake "$work/cmake" sh -c "cmake -S . -B build -DCMAKE_PREFIX_PATH='$prefix' && cmake --build build -j 2"
build make "$work/make" env PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make -j 2
# The static recipe of docs/install.md.
build static "$work/static" sh -c "export PKG_CONFIG_PATH='$prefix/lib/pkgconfig';
  g++ -std=c++17 \$(pkg-config --cflags gasp) examples/counter.cc -o counter '$prefix/lib/libgasp.a' \
    \$(pkg-config --static --libs-only-other --libs-only-l gasp | sed 's/-lgasp//')"
if [ -x "$work/static/counter" ] && ! ldd "$work/static/counter" | grep -q libgasp; then
  ok "the static recipe links no libgasp.so"
else
  bad "the static recipe: no binary, or it needs libgasp.so"
fi
build gaspcxx "$work/wrap" sh -c "'$prefix/bin/gaspcxx' -O2 examples/counter.cc -o counter &&
  '$prefix/bin/gaspcc' -O2 examples/counter_c.c -o counter_c &&
  '$prefix/bin/gaspcxx' -c -O2 examples/hello.cc -o hello.o && '$prefix/bin/gaspcxx' hello.o -o hello"

# run NAME CMD...: a 4-rank job must print "verified" and exit 0.
run() {
  local name=$1; shift
  local log="$TMP/run-${name//[ \/]/_}.log"
  run_job "$log" 240 "$@"
  if [ "$RC" = 0 ] && grep -q verified "$log"; then
    ok "$name"
  else
    bad "$name (rc=$RC)"; tail -n 15 "$log" | sed 's/^/    | /'
  fi
}
gasprun=$prefix/bin/gasprun
mpirun=(mpirun --oversubscribe -np 4 -x GASP_TIMEOUT)
for p in cmake/build/counter cmake/build/counter_static cmake/build/counter_c cmake/build/stencil \
         cmake/build/dictionary make/counter make/counter_c make/stencil make/dictionary \
         static/counter wrap/counter wrap/counter_c wrap/hello; do
  [ -x "$work/$p" ] || { bad "$p was not built"; continue; }
  arg=50; case "$p" in *dictionary) arg=100 ;; *stencil|*hello) arg= ;; esac
  run "gasprun -np 4 $p" "$gasprun" -np 4 "$work/$p" $arg
  # The name server a service needs comes from gasprun; under mpirun the
  # dictionary gets one from the prefix (examples/dictionary.cc docs).
  case "$p" in *dictionary) continue ;; esac
  run "mpirun -np 4 $p" "${mpirun[@]}" "$work/$p" $arg
done
# A service under mpirun: the installed name server, started by hand.
ns_log=$TMP/ns.log
rm -f "$TMP/ns.port"
"$prefix/bin/gasp_nameserver" --insecure --listen 127.0.0.1:0 --port-file "$TMP/ns.port" >"$ns_log" 2>&1 &
ns=$!
for _ in $(seq 100); do [ -s "$TMP/ns.port" ] && break; sleep 0.1; done
addr=
[ -s "$TMP/ns.port" ] && addr=127.0.0.1:$(cat "$TMP/ns.port")
if [ -n "$addr" ]; then
  GASP_NAMESERVER=$addr run "mpirun -np 4 make/dictionary (installed gasp_nameserver)" \
    "${mpirun[@]}" -x GASP_NAMESERVER "$work/make/dictionary" 100
else
  bad "installed gasp_nameserver did not start"; sed 's/^/    | /' "$ns_log"
fi
kill "$ns" 2>/dev/null; wait "$ns" 2>/dev/null
finish
