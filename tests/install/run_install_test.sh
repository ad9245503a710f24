#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then configures, builds and runs a consumer project
# against it with find_package(mpaio CONFIG REQUIRED). Removes the temporary directory in every case.
#
# usage: run_install_test.sh BUILD_DIR CONSUMER_SOURCE CMAKE GENERATOR CXX_COMPILER BUILD_TYPE CXX_FLAGS LINKER_FLAGS
# CXX_FLAGS / LINKER_FLAGS are the build tree's own (the sanitizer flags in an asan tree), so that the
# consumer links against the installed library the way it was compiled.
set -euo pipefail
if [[ $# -ne 8 ]]; then
  echo "usage: $0 BUILD_DIR CONSUMER_SOURCE CMAKE GENERATOR CXX_COMPILER BUILD_TYPE CXX_FLAGS LINKER_FLAGS" >&2
  exit 64
fi
build_dir=$1 consumer=$2 cmake=$3 generator=$4 cxx=$5 build_type=$6 cxx_flags=$7 linker_flags=$8

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpaio-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== cmake --install $build_dir --prefix $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
for f in include/mpaio/mpaio.hpp include/mpaio/shared_array.hpp; do
  [[ -f $prefix/$f ]] || { echo "not installed: $f"; exit 1; }
done
config=$(find "$prefix" -name mpaioConfig.cmake -print -quit)
[[ -n $config ]] || { echo "mpaioConfig.cmake not installed"; exit 1; }
[[ -f $(dirname "$config")/mpaioConfigVersion.cmake ]] || { echo "mpaioConfigVersion.cmake not installed"; exit 1; }

echo "== configure the consumer against $prefix"
"$cmake" -S "$consumer" -B "$tmp/build" -G "$generator" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
  -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_CXX_FLAGS="$cxx_flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$linker_flags"
# It must have found the installed copy, not a build tree or a system one.
found=$(sed -n 's/^mpaio_DIR:PATH=//p' "$tmp/build/CMakeCache.txt")
[[ $found == "$prefix"/* ]] || { echo "found mpaio in $found, not under $prefix"; exit 1; }

echo "== build"
"$cmake" --build "$tmp/build"

echo "== run"
"$tmp/build/mpaio_consumer"
