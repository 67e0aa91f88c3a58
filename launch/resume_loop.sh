#!/usr/bin/env bash
# For machines without Slurm: runs dae_dist with --resume auto and starts it again whenever it
# stops for preemption (exit code 75, checkpoint written), up to DAE_MAX_RESTARTS times.
# Usage: launch/resume_loop.sh [dae_dist options...]   e.g. --config configs/mnist.ini
# Send SIGUSR1 to mpirun (or any rank) to stop at the next step with a checkpoint.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ranks=${DAE_RANKS:-4}
max_restarts=${DAE_MAX_RESTARTS:-10}
for ((attempt = 0; ; attempt++)); do
  # shellcheck disable=SC2046
  mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none \
    "$DAE_BUILD/dae_dist" "$@" --resume auto
  rc=$?
  [ "$rc" -eq 75 ] || exit "$rc"
  if [ "$attempt" -ge "$max_restarts" ]; then
    echo "resume_loop: stopped for preemption $((attempt + 1)) times, giving up (DAE_MAX_RESTARTS=$max_restarts)" >&2
    exit 75
  fi
  echo "resume_loop: stopped with a checkpoint (exit 75); restart $((attempt + 1))/$max_restarts"
done
