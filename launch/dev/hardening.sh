#!/usr/bin/env bash
# The hardening checks (fuzz/README.md), after launch/dev/setup.sh: a clang build with
# AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer targets in build-san/, its
# tests (unit, 2-rank, faults, fuzz replays), then every fuzz target for DAE_FUZZ_SECONDS (45) s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DAE_SAN_BUILD=${DAE_SAN_BUILD:-$DAE_ROOT/build-san}
# The `asan` preset (CMakePresets.json): clang, RelWithDebInfo, DAE_FUZZ=ON (implies DAE_SANITIZE).
cmake -S "$DAE_ROOT" --preset asan -B "$DAE_SAN_BUILD" -DDAE_PYTHON="$DAE_VENV/bin/python" \
  > "$DAE_SAN_BUILD.cmake.log" 2>&1 || { cat "$DAE_SAN_BUILD.cmake.log"; exit 1; }
cmake --build "$DAE_SAN_BUILD"

status=0
# mpi_np4 and cli are left to the ordinary build: under ASan with full allocation stacks they
# take several times as long and test nothing the 2-rank suite and `faults` do not.
(cd "$DAE_SAN_BUILD" && ctest --output-on-failure -R '^(unit|mpi_np2|faults|fuzz_replay_.*)$') ||
  status=1
bash "$DAE_ROOT/fuzz/run_fuzzers.sh" "$DAE_SAN_BUILD" "${DAE_FUZZ_SECONDS:-45}" || status=1
exit $status
