# Sourced by launch/resume_loop.sh and slurm/train_*.sbatch: the preemption exit code, and one
# launch of the job (mpirun or srun) that passes stop signals to the ranks and ends with an exit
# code that says what happened, whichever process the stop signal reached.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# dae_dist's "checkpoint written, run me again" exit code (EX_TEMPFAIL), from the binary itself.
DAE_EXIT_PREEMPTED=$(dae_exit_code preempted)
if [ -z "$DAE_EXIT_PREEMPTED" ]; then
  echo "job_control: $DAE_BUILD/dae_dist --print-exit-codes named no preempted code (is it" \
    "built? DAE_BUILD picks the build directory)" >&2
  exit 1
fi

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
  # Always SIGUSR1, whatever arrived: mpirun and srun forward it to every rank and keep running,
  # whereas a SIGTERM or SIGINT makes mpirun tear the job down and exit 1 itself.
  [ -n "$_dae_launcher" ] && kill -USR1 "$_dae_launcher" 2>/dev/null
  return 0
}

# dae_launch LAUNCHER [LAUNCHER OPTIONS...] -- [DAE_DIST OPTIONS...]: runs one launch of the job,
# `LAUNCHER... $DAE_BUILD/dae_dist DAE_DIST OPTIONS...`, to its end. Sets DAE_RC (its exit code,
# corrected below), DAE_STOP_SIGNAL (USR1, TERM or INT if one reached this shell, else empty) and
# DAE_CHECKPOINT (the checkpoint the ranks wrote when a stop signal ended them, else empty).
dae_launch() {
  local launch=() run_dir started status seen stop="no stopped.json seen"
  while [ $# -gt 0 ] && [ "$1" != -- ]; do launch+=("$1"); shift; done
  shift  # the --; what follows is dae_dist's
  DAE_RC='' DAE_STOP_SIGNAL='' DAE_CHECKPOINT=''
  _dae_signals=0 _dae_launcher=
  # Set before anything runs, so that an early signal cannot kill this shell.
  trap '_dae_stop USR1' USR1
  trap '_dae_stop TERM' TERM
  trap '_dae_stop INT' INT
  # Where a stopped run leaves RUN_DIR/stopped.json, from dae_dist itself. Empty when the options
  # do not parse: the launch then ends with dae_dist's own message about them.
  run_dir=$("$DAE_BUILD/dae_dist" "$@" --print-run-dir 2>/dev/null)
  # A stopped.json not newer than this file is an earlier launch's.
  started=$(mktemp "${TMPDIR:-/tmp}/dae_launch.XXXXXX")
  echo "job_control: running ${launch[*]} $DAE_BUILD/dae_dist $*"
  "${launch[@]}" "$DAE_BUILD/dae_dist" "$@" &
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
  trap - USR1 TERM INT
  # The ranks' own word that they stopped at a checkpoint, whatever the launcher exited with: a
  # SIGTERM or SIGINT sent to mpirun itself (scancel signals every process of the job, Ctrl-C the
  # whole process group) makes mpirun exit 1 although its ranks wrote the checkpoint and exited
  # with the preempted code.
  if [ -n "$run_dir" ] && [ "$run_dir/stopped.json" -nt "$started" ] &&
     [ "$(dae_stopped_field "$run_dir" exit_code)" = "$DAE_EXIT_PREEMPTED" ]; then
    DAE_CHECKPOINT=$(dae_stopped_field "$run_dir" checkpoint)
    stop="$DAE_CHECKPOINT at step $(dae_stopped_field "$run_dir" step)"
  fi
  rm -f "$started"

  if [ "$DAE_RC" != 0 ] && [ "$DAE_RC" != "$DAE_EXIT_PREEMPTED" ] && [ -n "$DAE_CHECKPOINT" ]; then
    echo "job_control: the launcher exited with $DAE_RC, but the ranks stopped at a checkpoint" \
      "($run_dir/stopped.json; the stop signal reached ${launch[0]} itself): exit" \
      "$DAE_EXIT_PREEMPTED"
    DAE_RC=$DAE_EXIT_PREEMPTED
  fi
  if [ "$DAE_RC" = "$DAE_EXIT_PREEMPTED" ]; then
    echo "job_control: exit $DAE_RC = stopped on request after writing a checkpoint ($stop)."
    case ${launch[0]} in
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
  # An installed copy, submitted from a folder without configs/: its own configs/mnist.ini.
  [ -f "$config" ] || config=$DAE_ROOT/configs/mnist.ini
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
  # mpirun_flags' words are split on purpose; shellcheck reads the directive before the whole
  # `case` only, not before a branch.
  # shellcheck disable=SC2046
  case $launcher in
    # mpirun starts every rank on this node (Open MPI reads the allocation from Slurm).
    # --bind-to none: each rank's threads may use all of its cores.
    mpirun) dae_launch mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none \
              -- "${extra[@]}" "$@" ;;
    # srun starts the tasks on every node and wires them up through PMIx (SLURM_MPI_TYPE, e.g.
    # pmi2, where a cluster lacks it). --kill-on-bad-exit: when one node's ranks die, the others
    # are killed at once instead of waiting in the all-reduce until the time limit. No
    # --cpu-bind: the cluster's default, which also works where tasks have no CPU affinity.
    # --kill-on-bad-exit also ends the step once the first rank exits 75; harmless: a rank exits
    # only after rank 0's checkpoint is complete (the save ends with an all-reduce).
    srun) dae_launch srun --mpi="${SLURM_MPI_TYPE:-pmix}" --kill-on-bad-exit=1 \
            -- "${extra[@]}" "$@" ;;
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
