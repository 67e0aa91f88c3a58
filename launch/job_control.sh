# Sourced by launch/resume_loop.sh and slurm/train_*.sbatch: the preemption exit code, and one
# launch of the job (mpirun or srun) that passes stop signals to the ranks and ends with an exit
# code that says what happened, whichever process the stop signal reached.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# dae_dist's "checkpoint written, run me again" exit code (EX_TEMPFAIL), read from its one
# definition, so that no script can drift from the binary's dae::kExitPreempted.
DAE_EXIT_PREEMPTED=$(sed -n 's/^inline constexpr int kExitPreempted = \([0-9]\{1,3\}\);.*/\1/p' \
  "$DAE_ROOT/include/dae/core/signals.hpp")
if [ -z "$DAE_EXIT_PREEMPTED" ]; then
  echo "job_control: cannot read kExitPreempted from $DAE_ROOT/include/dae/core/signals.hpp" >&2
  exit 1
fi
# Rank 0's line when a stop signal made it write a checkpoint (src/train/trainer.cpp).
DAE_STOP_LINE='^stop signal: checkpoint .* written at step [0-9]*'

# dae_has_option NAME ARGS...: whether ARGS hold --NAME, as `--NAME VALUE` or `--NAME=VALUE`.
# The scripts add an option of their own only when the user's don't name it: dae_dist refuses an
# option given twice.
dae_has_option() {
  local name=$1 arg
  shift
  for arg in "$@"; do
    case $arg in "--$name" | "--$name="*) return 0 ;; esac
  done
  return 1
}

_dae_stop() {
  _dae_signals=$((_dae_signals + 1))
  DAE_STOP_SIGNAL=${DAE_STOP_SIGNAL:-$1}
  # When the first stop arrived, less 0.1 s: file times tick in steps of a few ms, and a
  # checkpoint written just after the signal must still count as newer.
  if [ ! -e "$_dae_out.signal" ]; then
    local ns
    ns=$(($(date +%s%N) - 100000000))
    touch -d "@${ns:0:${#ns}-9}.${ns:${#ns}-9}" "$_dae_out.signal"
  fi
  # Always SIGUSR1, whatever arrived: mpirun and srun forward it to every rank and keep running,
  # whereas a SIGTERM or SIGINT makes mpirun tear the job down and exit 1 itself.
  [ -n "$_dae_launcher" ] && kill -USR1 "$_dae_launcher" 2>/dev/null
  return 0
}

# dae_launch LAUNCHER [ARGS...]: runs one launch of the job to its end. Sets DAE_RC (its exit
# code, corrected below), DAE_STOP_SIGNAL (USR1, TERM or INT if one reached this shell, else
# empty) and DAE_CHECKPOINT (what rank 0 said when a stop made it write a checkpoint, else empty).
dae_launch() {
  local out fifo tee_pid status seen i run_dir newest
  DAE_RC= DAE_STOP_SIGNAL= DAE_CHECKPOINT=
  _dae_signals=0 _dae_launcher=
  out=$(mktemp "${TMPDIR:-/tmp}/dae_launch.XXXXXX")
  _dae_out=$out
  # Set before the launch, so that an early signal cannot kill this shell.
  trap '_dae_stop USR1' USR1
  trap '_dae_stop TERM' TERM
  trap '_dae_stop INT' INT
  fifo=$out.fifo
  mkfifo "$fifo"
  # The job's output also goes to a file, to find rank 0's stop line after the end. tee ignores
  # TERM and INT: scancel and Ctrl-C signal every process of the job, and tee must stay to copy
  # the ranks' last lines.
  (trap '' TERM INT USR1 && exec tee "$out" < "$fifo") &
  tee_pid=$!
  echo "job_control: running $*"
  "$@" > "$fifo" 2>&1 &
  _dae_launcher=$!
  [ -n "$DAE_STOP_SIGNAL" ] && kill -USR1 "$_dae_launcher" 2>/dev/null
  # `wait` returns early (status > 128) when one of our traps ran: then wait again. Bash keeps
  # the status of an ended job, so asking again after the end returns it.
  while :; do
    seen=$_dae_signals
    wait "$_dae_launcher"
    status=$?
    [ "$status" -gt 128 ] && [ "$_dae_signals" != "$seen" ] && continue
    break
  done
  DAE_RC=$status
  _dae_launcher=
  # tee ends when the last rank closed its output; a rank that outlived its launcher (killed
  # with SIGKILL) must not keep us here.
  for ((i = 0; i < 100; i++)); do kill -0 "$tee_pid" 2>/dev/null || break; sleep 0.1; done
  kill "$tee_pid" 2>/dev/null
  wait "$tee_pid" 2>/dev/null
  DAE_CHECKPOINT=$(grep -m1 "$DAE_STOP_LINE" "$out")
  # A SIGTERM or SIGINT sent to mpirun itself (scancel signals every process of the job, Ctrl-C
  # the whole process group) makes mpirun exit 1, and it may stop copying the ranks' output
  # before rank 0's stop line, although the ranks wrote the checkpoint and exited with 75. Then
  # the proof is the checkpoint itself: one written in the run directory (from the effective
  # configuration rank 0 printed at the start) after the stop signal reached this shell.
  run_dir=$(sed -n 's/^  run-dir  *//p' "$out" | head -n1)
  if [ -z "$DAE_CHECKPOINT" ] && [ -e "$out.signal" ] && [ -n "$run_dir" ]; then
    newest=$(find "$run_dir/checkpoints" -maxdepth 1 -name 'ckpt_*.h5' -newer "$out.signal" \
      2> /dev/null | sort | tail -n1)
    [ -n "$newest" ] && DAE_CHECKPOINT="checkpoint $newest written after the stop signal"
  fi
  rm -f "$out" "$fifo" "$out.signal"
  trap - USR1 TERM INT

  if [ "$DAE_RC" != 0 ] && [ "$DAE_RC" != "$DAE_EXIT_PREEMPTED" ] && [ -n "$DAE_CHECKPOINT" ]; then
    echo "job_control: the launcher exited with $DAE_RC, but the ranks stopped at a checkpoint" \
      "(the stop signal reached $1 itself): exit $DAE_EXIT_PREEMPTED"
    DAE_RC=$DAE_EXIT_PREEMPTED
  fi
  if [ "$DAE_RC" = "$DAE_EXIT_PREEMPTED" ]; then
    echo "job_control: exit $DAE_RC = stopped on request after writing a checkpoint (${DAE_CHECKPOINT:-no stop line seen})."
    case $1 in
      mpirun) echo "job_control: mpirun's lines above (\"...the job has been aborted\", \"mpirun" \
                "detected that one or more processes exited with non-zero status\") report this" \
                "planned exit, not a failure." ;;
      srun) echo "job_control: srun's lines above (\"error: ...: Exited with exit code $DAE_RC\")" \
              "report this planned exit, not a failure." ;;
    esac
  fi
  return 0
}

# dae_slurm_train mpirun|srun [CONFIG] [DAE_DIST OPTIONS...]: the body of slurm/train_*.sbatch.
# Sizes the job from what Slurm gave it (SLURM_NTASKS, SLURM_CPUS_PER_TASK, the GPUs it sees),
# launches it, and puts it back in the queue when it stopped for preemption. DAE_DEVICE, when
# set (the GPU scripts: cuda), is passed as --device unless the options name one.
dae_slurm_train() {
  local launcher=$1 config=configs/mnist.ini
  shift
  if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then config=$1; shift; fi
  local threads=${SLURM_CPUS_PER_TASK:-1} ranks=${SLURM_NTASKS:-1} extra=()
  dae_has_option config "$@" || extra+=(--config "$config")
  dae_has_option threads "$@" || extra+=(--threads "$threads")
  # auto: fresh on the first start, the newest valid checkpoint after a requeue or resubmission.
  dae_has_option resume "$@" || extra+=(--resume auto)
  [ -n "${DAE_DEVICE:-}" ] && ! dae_has_option device "$@" && extra+=(--device "$DAE_DEVICE")
  export OMP_NUM_THREADS=$threads  # LibTorch's threads per rank: the cores Slurm gave each task

  echo "job_control: job ${SLURM_JOB_ID:-?} (start $((${SLURM_RESTART_COUNT:-0} + 1))) on" \
    "${SLURM_JOB_NODELIST:-$(hostname)}: $ranks ranks, $threads CPUs each," \
    "GPUs ${CUDA_VISIBLE_DEVICES:-none visible}"
  case $launcher in
    # mpirun starts every rank on this node (Open MPI reads the allocation from Slurm).
    # --bind-to none: each rank's threads may use all of its cores.
    # shellcheck disable=SC2046
    mpirun) dae_launch mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none \
              "$DAE_BUILD/dae_dist" "${extra[@]}" "$@" ;;
    # srun starts the tasks on every node and wires them up through PMIx (SLURM_MPI_TYPE, e.g.
    # pmi2, where a cluster lacks it). --kill-on-bad-exit: when one node's ranks die, the others
    # are killed at once instead of waiting in the all-reduce until the time limit. No
    # --cpu-bind: the cluster's default, which also works where tasks have no CPU affinity.
    # --kill-on-bad-exit also ends the step once the first rank exits 75; harmless: a rank exits
    # only after rank 0's checkpoint is complete (the save ends with an all-reduce).
    srun) dae_launch srun --mpi="${SLURM_MPI_TYPE:-pmix}" --kill-on-bad-exit=1 \
            "$DAE_BUILD/dae_dist" "${extra[@]}" "$@" ;;
    *) echo "job_control: unknown launcher $launcher" >&2; return 2 ;;
  esac

  if [ "$DAE_RC" != 0 ] && [ "$DAE_RC" != "$DAE_EXIT_PREEMPTED" ]; then
    echo "job_control: the job failed (exit $DAE_RC, see the first error above); not requeued." \
      "Submitting it again continues from its newest checkpoint."
  elif [ "$DAE_RC" = "$DAE_EXIT_PREEMPTED" ]; then
    if [ "$DAE_STOP_SIGNAL" = TERM ]; then
      # scancel (or Slurm at the very end of the job): the job is going away, a requeue would be
      # refused; the checkpoint stays for the next submission.
      echo "job_control: SIGTERM (scancel, or Slurm ending the job): checkpoint written;" \
        "not requeued. Submit the same command again to continue from it. Slurm's" \
        "\"CANCELLED\" line for this job is that scancel."
    else
      echo "job_control: stopped for preemption at a checkpoint; requeueing job $SLURM_JOB_ID" \
        "(it keeps its id and log, and continues from the checkpoint; Slurm's \"CANCELLED ..." \
        "DUE TO JOB REQUEUE\" line that follows is this requeue)"
      scontrol requeue "$SLURM_JOB_ID"
    fi
  fi
  return 0
}
