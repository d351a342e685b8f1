#!/usr/bin/env bash
# Installs gasp into a prefix (docs/install.md). Run through tools/install
# or `bazel run -c opt //:install -- --prefix=DIR`. Uninstall: delete DIR
# (or the files listed in DIR/share/gasp/manifest).
set -euo pipefail
shopt -s nullglob
usage() { echo "usage: install --prefix=DIR" >&2; exit 2; }
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix=*) prefix=${1#--prefix=} ;;
    --prefix) shift; [ $# -gt 0 ] || usage; prefix=$1 ;;
    -h|--help) usage ;;
    *) echo "install: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
[ -n "$prefix" ] || { echo "install: --prefix=DIR is required" >&2; usage; }
# bazel run starts us in the runfiles tree: relative prefixes are relative
# to where the user typed the command.
case "$prefix" in /*) ;; *) prefix="${BUILD_WORKING_DIRECTORY:-$PWD}/$prefix" ;; esac

r="${RUNFILES_DIR:-$0.runfiles}/gasp"
[ -f "$r/install/libgasp.a" ] || { echo "install: no build outputs under $r (build //install:install first)" >&2; exit 1; }
version=$(cat "$r/install/VERSION")
major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}
flags=$(cat "$r/install/libgasp.link_flags")

mkdir -p "$prefix"/{bin,lib/pkgconfig,lib/cmake/gasp,include/gasp,share/gasp,share/doc/gasp}
prefix=$(cd "$prefix" && pwd)
manifest="$prefix/share/gasp/manifest"
: > "$manifest"
put() {  # put MODE SRC DEST
  install -m "$1" "$2" "$3"
  echo "$3" >> "$manifest"
}
subst() {  # subst TEMPLATE > OUT: fills @PREFIX@ and friends
  local cmake_libs
  cmake_libs=$(printf '"%s" ' $flags)
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" \
      -e "s|@MINOR@|$minor|g" -e "s|@LIBS_PRIVATE@|$flags|g" \
      -e "s|@LIBS_PRIVATE_CMAKE@|$cmake_libs|g" "$1"
}

# Libraries: the real file, its soname and the development symlink.
put 0755 "$r/install/libgasp.so.$major.$minor" "$prefix/lib/libgasp.so.$major.$minor"
ln -sf "libgasp.so.$major.$minor" "$prefix/lib/libgasp.so.$major"
ln -sf "libgasp.so.$major" "$prefix/lib/libgasp.so"
echo "$prefix/lib/libgasp.so.$major" >> "$manifest"; echo "$prefix/lib/libgasp.so" >> "$manifest"
put 0644 "$r/install/libgasp.a" "$prefix/lib/libgasp.a"

# Headers, the options .proto services import, and the Fortran module source.
for h in gasp.h gasp_c.h status.h version.h service.h gasp.f90; do
  put 0644 "$r/include/gasp/$h" "$prefix/include/gasp/$h"
done
put 0644 "$r/rpcgen/gasp/options.proto" "$prefix/include/gasp/options.proto"
options_pb_h=$(find -L "$r/rpcgen" -path '*/gasp/options.pb.h' | head -n 1)
put 0644 "$options_pb_h" "$prefix/include/gasp/options.pb.h"

# Tools. gasprun finds gasp_nameserver beside itself.
put 0755 "$r/tools/gasprun" "$prefix/bin/gasprun"
put 0755 "$r/tools/gasp_info" "$prefix/bin/gasp_info"
put 0755 "$r/nameserver/gasp_nameserver" "$prefix/bin/gasp_nameserver"
put 0755 "$r/rpcgen/protoc-gen-gasp" "$prefix/bin/protoc-gen-gasp"
put 0755 "$r/tools/gasp_stats" "$prefix/bin/gasp_stats"
tmp=$(mktemp)
subst "$r/install/gaspcxx.in" > "$tmp"
put 0755 "$tmp" "$prefix/bin/gaspcxx"
ln -sf gaspcxx "$prefix/bin/gaspcc"; echo "$prefix/bin/gaspcc" >> "$manifest"

# pkg-config and CMake packages.
subst "$r/install/gasp.pc.in" > "$tmp"; put 0644 "$tmp" "$prefix/lib/pkgconfig/gasp.pc"
subst "$r/install/gasp-service.pc.in" > "$tmp"; put 0644 "$tmp" "$prefix/lib/pkgconfig/gasp-service.pc"
subst "$r/install/gaspConfig.cmake.in" > "$tmp"; put 0644 "$tmp" "$prefix/lib/cmake/gasp/gaspConfig.cmake"
subst "$r/install/gaspConfigVersion.cmake.in" > "$tmp"
put 0644 "$tmp" "$prefix/lib/cmake/gasp/gaspConfigVersion.cmake"
rm -f "$tmp"

# Debugging aids, docs and examples.
for f in "$r"/install/share/*; do put 0644 "$f" "$prefix/share/gasp/$(basename "$f")"; done
for f in "$r"/README.md "$r"/docs/*.md; do put 0644 "$f" "$prefix/share/doc/gasp/$(basename "$f")"; done
mkdir -p "$prefix/share/gasp/examples/examples" "$prefix/share/gasp/examples/fortran"
for f in hello.cc counter.cc counter_c.c dictionary.cc dictionary.proto; do
  put 0644 "$r/examples/$f" "$prefix/share/gasp/examples/examples/$f"
done
put 0644 "$r/examples/fortran/stencil.f90" "$prefix/share/gasp/examples/fortran/stencil.f90"
for f in CMakeLists.txt Makefile; do
  put 0644 "$r/examples/outside/$f" "$prefix/share/gasp/examples/$f"
done
echo "$manifest" >> "$manifest"
echo "gasp $version installed in $prefix ($(wc -l < "$manifest") files; manifest: $manifest)"
echo "  C++:    $prefix/bin/gaspcxx app.cc -o app    |  pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig"
echo "  CMake:  -DCMAKE_PREFIX_PATH=$prefix, find_package(gasp), gasp::gasp"
echo "  run:    $prefix/bin/gasprun -np 4 ./app"
