#!/usr/bin/env bash
# The test suite, from nothing: install, build, run every test (unit, multi-rank, end to end).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DAE_ROOT/launch/setup.sh"
cd "$DAE_BUILD"
ctest --output-on-failure "$@"
