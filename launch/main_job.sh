#!/usr/bin/env bash
# The main job, from nothing: install, build, get data, train with 4 ranks.
# Usage: launch/main_job.sh [CONFIG] [extra dae_dist options...]   (default configs/mnist.ini)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

config=${1:-configs/mnist.ini}
shift || true
# Relative to where the user stands, before we change to the repository root.
[ -f "$config" ] && config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
ranks=${DAE_RANKS:-4}
cd "$DAE_ROOT"
"$DAE_ROOT/launch/dev/setup.sh"
[ -f "${DAE_DATA:-data/mnist.h5}" ] || "$DAE_ROOT/launch/get_data.sh" ${DAE_IDX_DIR:+"$DAE_IDX_DIR"}

echo "main_job: mpirun -np $ranks build/dae_dist --config $config $*"
# shellcheck disable=SC2046
mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none \
  "$DAE_BUILD/dae_dist" --config "$config" "$@"
