#!/usr/bin/env bash
# The presets (ctest `presets`): `cmake --preset release` configures on its own, from an empty
# build directory and a bare environment (nothing from launch/dev/setup.sh: no DAE_* variables, no
# -D), finding LibTorch the way CMakeLists.txt does (DAE_PYTHON's default, .venv/bin/python).
# Configure only; -B moves the preset's build/ to a temporary directory.
#   bash tests/check_presets.sh SOURCE_DIR
set -euo pipefail
source_dir=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dae_presets.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! env -i PATH=/usr/bin:/bin HOME="$tmp" cmake -S "$source_dir" --preset release -B "$tmp/build" \
    > configure.log 2>&1; then
  cat configure.log
  echo "presets: cmake --preset release failed"
  exit 1
fi
grep -q "^CMAKE_BUILD_TYPE:STRING=Release$" build/CMakeCache.txt
grep -q "^CMAKE_GENERATOR:INTERNAL=Ninja$" build/CMakeCache.txt
echo "presets: release configured in $tmp/build ($(grep -m1 'LibTorch ' configure.log))"
