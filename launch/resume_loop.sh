#!/usr/bin/env bash
# For machines without Slurm: runs dae_dist with --resume auto and starts it again whenever it
# stops for preemption (exit code $DAE_EXIT_PREEMPTED, dae_dist --print-exit-codes' preempted:
# checkpoint written), up to DAE_MAX_RESTARTS times.
# Usage: launch/resume_loop.sh [dae_dist options...]   e.g. --config configs/mnist.ini
# SIGUSR1 to mpirun (or any rank) stops the job at the next step with a checkpoint, and the loop
# starts it again: that is how a preemption looks. SIGTERM, SIGINT or Ctrl-C to this script (or
# to mpirun) stop it the same way, and then the loop ends with 75 instead of restarting.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/job_control.sh"

ranks=${DAE_RANKS:-4}
max_restarts=${DAE_MAX_RESTARTS:-10}
resume=(--resume auto)
dae_has_option resume "$@" && resume=()
for ((attempt = 0; ; attempt++)); do
  # shellcheck disable=SC2046
  dae_launch mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none -- "$@" "${resume[@]}"
  [ "$DAE_RC" -eq "$DAE_EXIT_PREEMPTED" ] || exit "$DAE_RC"
  if [ -n "$DAE_STOP_SIGNAL" ] && [ "$DAE_STOP_SIGNAL" != USR1 ]; then
    echo "resume_loop: stopped by SIG$DAE_STOP_SIGNAL with a checkpoint; not restarting (run me again to continue)"
    exit "$DAE_RC"
  fi
  if [ "$attempt" -ge "$max_restarts" ]; then
    echo "resume_loop: stopped for preemption $((attempt + 1)) times, giving up (DAE_MAX_RESTARTS=$max_restarts)" >&2
    exit "$DAE_RC"
  fi
  echo "resume_loop: stopped with a checkpoint (exit $DAE_RC); restart $((attempt + 1))/$max_restarts"
done
