#!/usr/bin/env bash
# The public headers include the C++ standard library and each other only:
# a program never has to match the Abseil (or anything else) gasp was built
# with. Preprocesses each header and lists every file it pulls in.
set -euo pipefail
# Under bazel test the headers are in the runfiles; run by hand, beside the script.
if [ -n "${TEST_SRCDIR:-}" ]; then dir=$TEST_SRCDIR/gasp/include; else dir=$(dirname "$0"); fi
[ -f "$dir/gasp/gasp.h" ] || { echo "FAIL: no gasp/gasp.h under $dir"; exit 1; }
fail=0
for h in gasp/gasp.h gasp/gasp_c.h gasp/status.h gasp/version.h; do
  if ! g++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -x c++ -I "$dir" "$dir/$h"; then
    echo "FAIL: $h does not compile on its own"; fail=1; continue
  fi
  # -H prints every included file; keep the ones outside this include dir.
  deps=$(g++ -std=c++17 -H -fsyntax-only -x c++ -I "$dir" "$dir/$h" 2>&1 >/dev/null |
    sed -n 's/^\.\+ //p' | { grep -v "^$dir/gasp/" || true; } | sort -u)
  bad=$(echo "$deps" | grep -vE '^/usr/(lib/gcc/[^/]+/[0-9]+/include|include/(c\+\+|x86_64-linux-gnu|asm-generic|linux)/|include/[a-z0-9_-]+\.h$)' || true)
  n=$(echo "$deps" | grep -c . || true)
  if [ -n "$bad" ]; then
    echo "FAIL: $h includes files outside the standard library:"; echo "$bad"; fail=1
  else
    echo "ok: $h pulls in $n standard files and nothing else"
  fi
done
# The service API: standard C++ and protobuf (its messages carry the calls).
if g++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -x c++ -I "$dir" "$dir/gasp/service.h"; then
  other=$(g++ -std=c++17 -H -fsyntax-only -x c++ -I "$dir" "$dir/gasp/service.h" 2>&1 >/dev/null |
    sed -n 's/^\.\+ //p' | { grep -v "^$dir/gasp/" || true; } | sort -u |
    grep -vE '^/usr/(lib/gcc/[^/]+/[0-9]+/include|include/(c\+\+|x86_64-linux-gnu|asm-generic|linux|google/protobuf)/|include/[a-z0-9_-]+\.h$)' || true)
  if [ -z "$other" ]; then echo "ok: gasp/service.h pulls in the standard library and protobuf only"
  else echo "FAIL: gasp/service.h includes:"; echo "$other"; fail=1; fi
else
  echo "FAIL: gasp/service.h does not compile on its own"; fail=1
fi

# The C API also compiles as C (C99, warnings are errors).
if gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -x c -I "$dir" "$dir/gasp/gasp_c.h"; then
  echo "ok: gasp/gasp_c.h compiles as C99"
else
  echo "FAIL: gasp/gasp_c.h does not compile as C99"; fail=1
fi
exit $fail
