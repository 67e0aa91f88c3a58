#!/usr/bin/env bash
# The CPU-only configuration, after launch/dev/setup.sh: dae_dist as a CPU-only LibTorch builds
# it (-DDAE_WITH_CUDA=OFF: no CUDA plugin, no NCCL) in build-cpu/, with its unit and 2-rank tests.
# The CUDA build's tests cannot show that the code without DAE_WITH_CUDA still compiles.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DAE_CPU_BUILD=${DAE_CPU_BUILD:-$DAE_ROOT/build-cpu}
cmake -S "$DAE_ROOT" --preset cpu-only -B "$DAE_CPU_BUILD" -DDAE_PYTHON="$DAE_VENV/bin/python" \
  > "$DAE_CPU_BUILD.cmake.log" 2>&1 || { cat "$DAE_CPU_BUILD.cmake.log"; exit 1; }
cmake --build "$DAE_CPU_BUILD" --target dae_dist dae_unit_tests dae_mpi_tests
[ ! -e "$DAE_CPU_BUILD/libdae_cuda.so" ] || { echo "cpu_only_build: libdae_cuda.so was built" >&2; exit 1; }
cd "$DAE_CPU_BUILD" && ctest --output-on-failure -R '^(unit|mpi_np2)$'
