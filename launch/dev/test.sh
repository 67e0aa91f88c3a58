#!/usr/bin/env bash
# The test suite, from nothing: install, build, run every test (unit, multi-rank, end to end;
# `presets`: the release preset configures alone from a bare environment; `install`: cmake
# --install as an unprivileged user and the installed programs run; and as root the cluster
# suite: a real Slurm on two network-namespace hosts, tests/cluster),
# then the CPU-only build's tests (launch/dev/cpu_only_build.sh), the sanitizer build's tests and
# the bounded fuzz runs (launch/dev/hardening.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

"$DAE_ROOT/launch/dev/setup.sh"
status=0
(cd "$DAE_BUILD" && ctest --output-on-failure "$@") || status=1
# The CPU-only configuration (DAE_WITH_CUDA=OFF) builds and passes its unit and 2-rank tests.
"$DAE_ROOT/launch/dev/cpu_only_build.sh" || status=1
# Then the sanitizer build's tests and the bounded fuzzing runs (DAE_HARDENING=0 skips them).
if [ "${DAE_HARDENING:-1}" != 0 ]; then
  "$DAE_ROOT/launch/dev/hardening.sh" || status=1
fi
exit $status
