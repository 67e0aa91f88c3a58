#!/usr/bin/env bash
# The cluster suite (ctest name `cluster`, label `cluster`): the Slurm scripts and multi-host
# mpirun against a real Slurm (Debian's slurm-wlm 22.05 + munge) on two hosts made of network
# namespaces (tests/cluster/cluster.sh). Needs root; exits 77 (ctest: skipped) where network
# namespaces cannot be made, and when DAE_CLUSTER=0.
#   sudo bash tests/cluster/run.sh [SCENARIO...]     (default: all, in the order below)
# Every client (sbatch, scontrol, scancel, mpirun) runs inside host node1; the machine's own
# namespace never talks to the hosts' addresses. The daemons, ranks and namespaces are stopped by
# PID at the end, also when a scenario fails or the suite is interrupted. Logs stay in
# $DAE_BUILD/cluster-test (removed at the next run's start).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../launch/common.sh"
PYTHON=${DAE_PYTHON:-$DAE_VENV/bin/python}  # h5py, to compare checkpoints

if [ "${DAE_CLUSTER:-1}" = 0 ]; then echo "cluster: skipped (DAE_CLUSTER=0)"; exit 77; fi
if [ "$(id -u)" != 0 ] || ! ip netns add "dae-cluster-probe-$$" 2> /dev/null; then
  echo "cluster: skipped: needs root and network namespaces (ip netns add)"
  exit 77
fi
ip netns del "dae-cluster-probe-$$"
for binary in dae_dist dae_prepare; do
  [ -x "$DAE_BUILD/$binary" ] || { echo "cluster: $DAE_BUILD/$binary missing: build first"; exit 1; }
done

source "$here/cluster.sh"
W=${DAE_CLUSTER_WORK:-$DAE_BUILD/cluster-test}
rm -rf "$W"
mkdir -p "$W/logs" "$W/runs"
cluster_install || { echo "cluster: cannot install slurm-wlm and munge"; exit 1; }
trap cluster_down EXIT
trap 'echo "cluster: interrupted"; exit 1' INT TERM
suite_start=$(date +%s)
cluster_up "$W/cluster" || exit 1
# Open MPI's TCP traffic on the hosts' link only (the hosts have nothing else but loopback; this
# says so explicitly). sbatch passes the environment on to the jobs.
export OMPI_MCA_btl_tcp_if_include=$CLUSTER_SUBNET OMPI_MCA_oob_tcp_if_include=$CLUSTER_SUBNET
export DAE_CLUSTER_DIR=$W/cluster  # for rsh_agent.sh

# --- data and configuration: 400 training and 100 test images made here -----------------------
"$PYTHON" - "$W/idx" <<'PY' || exit 1
import os, random, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(13)
def write(prefix, count):
    pixels = bytearray()
    for i in range(count):  # a bright bar at a random place on a dark field, noise on top
        row, col = rng.randrange(4, 20), rng.randrange(4, 20)
        for y in range(28):
            for x in range(28):
                bar = row <= y < row + 6 and col <= x < col + 3
                pixels.append(min(255, (220 if bar else 0) + rng.randrange(30)))
    with open(f"{out}/{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, 28, 28) + pixels)
    with open(f"{out}/{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, count) + bytes(i % 10 for i in range(count)))
write("train", 400)
write("t10k", 100)
PY
"$DAE_BUILD/dae_prepare" --idx-dir "$W/idx" --out "$W/data.h5" > "$W/logs/prepare.log" 2>&1 ||
  { cat "$W/logs/prepare.log"; exit 1; }
cat > "$W/cluster.ini" <<INI
# The suite's runs: small, and the same for the run that is preempted and the one that is not.
data = $W/data.h5
batch-size = 10
lr = 0.005
seed = 7
log-every = 20
eval-noise = 0
checkpoint-every = 0
INI

# --- helpers ----------------------------------------------------------------------------------
failures=0 passed=0 failed=0 results=()
expect() {  # expect DESCRIPTION COMMAND...: one check of the current scenario
  local what=$1
  shift
  if "$@" > /dev/null 2>&1; then echo "  ok: $what"; else echo "  FAILED: $what"; failures=$((failures + 1)); fi
}
submit() {  # submit SBATCH ARGS...: prints the job id
  on_host node1 sbatch --parsable --output="$W/logs/%j.out" --time=10 "$@"
}
job_field() {  # job_field JOB FIELD: e.g. JobState, ExitCode, Restarts
  on_host node1 scontrol show job -o "$1" 2> /dev/null | grep -o "\b$2=[^ ]*" | head -n1 | cut -d= -f2
}
job_ended() {
  case $(job_field "$1" JobState) in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | BOOT_FAIL | OUT_OF_MEMORY | DEADLINE) return 0 ;;
  esac
  return 1
}
wait_job() {  # wait_job JOB SECONDS: until it ended for good
  cluster_wait "$2" job_ended "$1" || echo "  job $1 still $(job_field "$1" JobState) after $2 s"
}
log_has() { grep -q -E "$2" "$W/logs/$1.out"; }
run_summary_steps() { grep -o '"steps": [0-9]*' "$1/summary.json" | grep -o '[0-9]*$'; }
summary_world() { grep -o '"world_size": [0-9]*' "$1/summary.json" | grep -o '[0-9]*$'; }
newest_checkpoint_step() {  # the step of the newest complete checkpoint of RUN_DIR
  local newest
  newest=$(ls "$1"/checkpoints/ckpt_*.h5 2> /dev/null | sort | tail -n1)
  [ -n "$newest" ] || return 1
  basename "$newest" .h5 | sed 's/ckpt_0*//'
}
same_parameters() {  # every /model and /optimizer dataset of two checkpoints, bit for bit
  "$PYTHON" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
for group in ("model", "optimizer"):
    a[group].visititems(lambda n, o: names.append(f"{group}/{n}") if isinstance(o, h5py.Dataset) else None)
differ = [n for n in names if n not in b or not np.array_equal(a[n][()], b[n][()])]
print(f"{len(names)} tensors compared, {len(differ)} differ: {differ[:5]}")
sys.exit(1 if differ or not names else 0)
PY
}
# The PIDs of dae_dist processes in HOST's network namespace.
ranks_on() { local pid; for pid in $(ip netns pids "$CLUSTER_NETNS_PREFIX-${1#node}"); do
  [ "$(cat /proc/"$pid"/comm 2> /dev/null)" = dae_dist ] && echo "$pid"; done; }
# env_of_ranks HOST VAR: VAR's values in the environments of HOST's ranks, sorted, on one line.
env_of_ranks() { local pid; for pid in $(ranks_on "$1"); do
  tr '\0' '\n' < /proc/"$pid"/environ | sed -n "s/^$2=//p"; done | sort -n | xargs; }
kill_ranks_on() { local pids; pids=$(ranks_on "$1"); [ -n "$pids" ] && kill -KILL $pids; }

scenario() {  # scenario NAME: runs scenario_NAME and records its result
  local name=$1 start
  start=$(date +%s)
  failures=0
  echo "cluster: --- $name"
  "scenario_$name"
  local seconds=$(($(date +%s) - start))
  if [ "$failures" = 0 ]; then
    passed=$((passed + 1)) results+=("PASS $name (${seconds} s)")
  else
    echo "  the newest job log, $(ls -t "$W"/logs/*.out | head -n1), ends:"
    tail -n 25 "$(ls -t "$W"/logs/*.out | head -n1)" | sed 's/^/  | /'
    echo "  scontrol: $(on_host node1 scontrol show job -o "$(ls -t "$W"/logs/*.out | head -n1 | xargs basename | sed 's/\.out$//')" 2>&1 | head -c 600)"
    failed=$((failed + 1)) results+=("FAIL $name (${seconds} s)")
  fi
}

# --- scenarios ---------------------------------------------------------------------------------
STEPS=600  # the single-node and preempted runs: the same, to compare their parameters

scenario_single_node() {
  local job run=$W/runs/single
  job=$(submit --ntasks=2 --cpus-per-task=1 slurm/train_single_node.sbatch "$W/cluster.ini" \
    --run-dir "$run" --steps $STEPS --checkpoint-every 100)
  wait_job "$job" 240
  expect "job $job COMPLETED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = COMPLETED
  expect "exit code 0:0 (is $(job_field "$job" ExitCode))" test "$(job_field "$job" ExitCode)" = 0:0
  expect "as root: mpirun ran (no --allow-run-as-root refusal)" log_has "$job" "step +$STEPS/$STEPS"
  expect "summary.json: $STEPS steps" test "$(run_summary_steps "$run")" = $STEPS
  expect "summary.json: world size 2" test "$(summary_world "$run")" = 2
}

scenario_resubmit_finished() {
  # Submitting the finished run of single_node again must leave its summary alone: no 0-step
  # result written over it.
  local job run=$W/runs/single
  cp "$run/summary.json" "$W/single-summary.json"
  job=$(submit --ntasks=2 --cpus-per-task=1 slurm/train_single_node.sbatch "$W/cluster.ini" \
    --run-dir "$run" --steps $STEPS --checkpoint-every 100)
  wait_job "$job" 120
  expect "resubmitted finished run: exit 0:0 (is $(job_field "$job" ExitCode))" test "$(job_field "$job" ExitCode)" = 0:0
  expect "resubmitted finished run: summary.json unchanged" cmp -s "$run/summary.json" "$W/single-summary.json"
}

scenario_preemption() {
  local job run=$W/runs/preempt
  rm -rf "$run"  # the scenario may run again in one suite
  job=$(submit --ntasks=2 --cpus-per-task=1 slurm/train_single_node.sbatch "$W/cluster.ini" \
    --run-dir "$run" --steps $STEPS --checkpoint-every 100)
  # On an idle machine the whole run takes about a second: watch closely for its first step,
  # then hold its ranks (SIGSTOP) until the signal has reached them, so that it lands mid-run
  # however fast or busy the machine is.
  local ranks i
  for ((i = 0; i < 2400; i++)); do log_has "$job" '^step ' && break; sleep 0.05; done
  ranks=$(ranks_on node1; ranks_on node2)
  kill -STOP $ranks
  # What Slurm does before a time limit with --signal=B:USR1@N: SIGUSR1 to the batch shell only.
  on_host node1 scancel --signal=USR1 --batch "$job"
  cluster_wait 30 log_has "$job" '^mpirun: Forwarding signal 10' || echo "  mpirun did not forward it"
  kill -CONT $ranks
  wait_job "$job" 300
  local stopped
  stopped=$(grep -o -m1 'written at step [0-9]*' "$W/logs/$job.out" | grep -o '[0-9]*$')
  echo "  stopped at step ${stopped:-?} of $STEPS"
  expect "exit 75 logged" log_has "$job" '^job_control: exit 75 = stopped on request'
  expect "scontrol requeue logged" log_has "$job" '^job_control: stopped for preemption at a checkpoint; requeueing'
  expect "Restarts >= 1 (is $(job_field "$job" Restarts))" test "$(job_field "$job" Restarts)" -ge 1
  expect "resumed from the stop's checkpoint" log_has "$job" "^resumed from .*ckpt_0*${stopped:-x}\.h5 at step ${stopped:-x}"
  expect "stopped before the end" test "${stopped:-$STEPS}" -lt $STEPS
  expect "job $job COMPLETED after the requeue (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = COMPLETED
  expect "final parameters and Adam moments equal the uninterrupted run's" \
    same_parameters "$run/checkpoints/ckpt_$(printf %08d $STEPS).h5" \
    "$W/runs/single/checkpoints/ckpt_$(printf %08d $STEPS).h5"
  same_parameters "$run/checkpoints/ckpt_$(printf %08d $STEPS).h5" \
    "$W/runs/single/checkpoints/ckpt_$(printf %08d $STEPS).h5" | sed 's/^/  /'
}

scenario_scancel() {
  local job run=$W/runs/cancelled
  job=$(submit --ntasks=2 --cpus-per-task=1 slurm/train_single_node.sbatch "$W/cluster.ini" \
    --run-dir "$run" --steps 100000)
  cluster_wait 120 log_has "$job" '^step ' || echo "  no step line in the log"
  # Plain scancel: SIGTERM to every process of the job, mpirun and the ranks included.
  on_host node1 scancel "$job"
  wait_job "$job" 60
  expect "job $job CANCELLED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = CANCELLED
  expect "the log says SIGTERM wrote a checkpoint" log_has "$job" '^job_control: SIGTERM \(scancel, or Slurm ending the job\): checkpoint written'
  expect "mpirun's own exit after the signal counted as a stop at a checkpoint" log_has "$job" '^job_control: exit 75 = stopped on request'
  expect "the checkpoint is there" newest_checkpoint_step "$run"
  expect "not requeued (Restarts $(job_field "$job" Restarts))" test "$(job_field "$job" Restarts)" = 0
  local step
  step=$(newest_checkpoint_step "$run")
  job=$(submit --ntasks=2 --cpus-per-task=1 slurm/train_single_node.sbatch "$W/cluster.ini" \
    --run-dir "$run" --steps $((${step:-0} + 20)))
  wait_job "$job" 120
  expect "a resubmission resumed from step $step" log_has "$job" "^resumed from .*ckpt_0*$step\.h5 at step $step"
  expect "and COMPLETED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = COMPLETED
}

scenario_two_nodes() {
  local job run=$W/runs/multi
  job=$(submit --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 slurm/train_multi_node.sbatch \
    "$W/cluster.ini" --run-dir "$run" --steps 100)
  wait_job "$job" 240
  expect "job $job COMPLETED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = COMPLETED
  expect "ran on both hosts (NodeList $(job_field "$job" NodeList))" test "$(job_field "$job" NodeList)" = "node[1-2]"
  expect "4 ranks on node[1-2]" log_has "$job" '^job_control: job .* on node\[1-2\]: 4 ranks'
  expect "started by srun with pmix and --kill-on-bad-exit" log_has "$job" '^job_control: running srun --mpi=pmix --kill-on-bad-exit=1 '
  expect "summary.json: world size 4" test "$(summary_world "$run")" = 4
  expect "no cpu-bind error" bash -c "! grep -q -i 'cpu.bind' '$W/logs/$job.out'"
}

scenario_two_nodes_preemption() {
  local job run=$W/runs/multi_preempt ranks i
  job=$(submit --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 slurm/train_multi_node.sbatch \
    "$W/cluster.ini" --run-dir "$run" --steps 300)
  for ((i = 0; i < 2400; i++)); do log_has "$job" '^step ' && break; sleep 0.05; done
  ranks=$(ranks_on node1; ranks_on node2)
  kill -STOP $ranks  # as in preemption: held until the signal reached them
  on_host node1 scancel --signal=USR1 --batch "$job"
  sleep 2  # srun prints nothing when it forwards a signal
  kill -CONT $ranks
  wait_job "$job" 300
  expect "exit 75 logged" log_has "$job" '^job_control: exit 75 = stopped on request'
  expect "srun's exit-75 lines explained" log_has "$job" "^job_control: srun's lines above"
  expect "Restarts >= 1 (is $(job_field "$job" Restarts))" test "$(job_field "$job" Restarts)" -ge 1
  expect "resumed after the requeue" log_has "$job" '^resumed from .* at step [0-9]+'
  expect "job $job COMPLETED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = COMPLETED
}

scenario_dead_node() {
  local job run=$W/runs/dead killed_at ended_at step
  job=$(submit --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 slurm/train_multi_node.sbatch \
    "$W/cluster.ini" --run-dir "$run" --steps 100000 --checkpoint-every 50)
  cluster_wait 180 newest_checkpoint_step "$run" || echo "  no checkpoint written"
  sleep 2  # into the steps after it
  expect "node2 runs 2 ranks before the kill" test "$(ranks_on node2 | wc -l)" = 2
  # srun's placement: ranks 0 1 on node1 and 2 3 on node2, node-local ranks 0 and 1 on each.
  expect "node1: SLURM_PROCID 0 1, SLURM_LOCALID 0 1 (is $(env_of_ranks node1 SLURM_PROCID), $(env_of_ranks node1 SLURM_LOCALID))" \
    test "$(env_of_ranks node1 SLURM_PROCID)/$(env_of_ranks node1 SLURM_LOCALID)" = "0 1/0 1"
  expect "node2: SLURM_PROCID 2 3, SLURM_LOCALID 0 1 (is $(env_of_ranks node2 SLURM_PROCID), $(env_of_ranks node2 SLURM_LOCALID))" \
    test "$(env_of_ranks node2 SLURM_PROCID)/$(env_of_ranks node2 SLURM_LOCALID)" = "2 3/0 1"
  kill_ranks_on node2
  killed_at=$(date +%s)
  cluster_wait 90 job_ended "$job"
  ended_at=$(date +%s)
  echo "  job ended $((ended_at - killed_at)) s after node2's ranks were killed"
  expect "the job ended within 60 s" test $((ended_at - killed_at)) -lt 60
  expect "job $job FAILED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = FAILED
  sleep 3
  expect "not requeued (Restarts $(job_field "$job" Restarts), state $(job_field "$job" JobState))" \
    test "$(job_field "$job" Restarts):$(job_field "$job" JobState)" = 0:FAILED
  expect "no rank left on node1" test -z "$(ranks_on node1)"
  step=$(newest_checkpoint_step "$run")
  job=$(submit --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 slurm/train_multi_node.sbatch \
    "$W/cluster.ini" --run-dir "$run" --steps $((step + 40)) --checkpoint-every 50)
  wait_job "$job" 240
  expect "resubmission resumed from step $step" log_has "$job" "^resumed from .*ckpt_0*$step\.h5 at step $step"
  expect "resubmission COMPLETED (is $(job_field "$job" JobState))" test "$(job_field "$job" JobState)" = COMPLETED
}

# mpirun across the hosts without Slurm: Open MPI starts its daemon on node2 through
# rsh_agent.sh (nsenter instead of ssh), TCP on the hosts' link only.
mpirun_across() {
  on_host node1 env -u SLURM_CONF mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4 \
    --host node1:2,node2:2 --mca plm_rsh_agent "$here/rsh_agent.sh" --mca btl tcp,self \
    --mca btl_tcp_if_include "$CLUSTER_SUBNET" --mca oob_tcp_if_include "$CLUSTER_SUBNET" \
    "$DAE_BUILD/dae_dist" --config "$W/cluster.ini" "$@"
}

scenario_mpirun_two_hosts() {
  local run=$W/runs/mpirun rc pid killed_at ended_at step
  mpirun_across --run-dir "$run" --steps 100 > "$W/logs/mpirun.out" 2>&1
  rc=$?
  expect "mpirun across node1 and node2: exit 0 (is $rc)" test "$rc" = 0
  expect "summary.json: world size 4" test "$(summary_world "$run")" = 4

  run=$W/runs/mpirun_dead
  mpirun_across --run-dir "$run" --steps 100000 --checkpoint-every 50 > "$W/logs/mpirun_dead.out" 2>&1 &
  pid=$!
  cluster_wait 180 newest_checkpoint_step "$run" || echo "  no checkpoint written"
  sleep 2
  expect "node2 runs 2 ranks before the kill" test "$(ranks_on node2 | wc -l)" = 2
  kill_ranks_on node2
  killed_at=$(date +%s)
  cluster_wait 90 bash -c "! kill -0 $pid"
  ended_at=$(date +%s)
  wait "$pid"
  rc=$?
  echo "  mpirun ended $((ended_at - killed_at)) s after node2's ranks were killed, exit $rc"
  expect "mpirun ended within 60 s" test $((ended_at - killed_at)) -lt 60
  expect "with a non-zero exit" test "$rc" != 0
  expect "no rank left on node1" test -z "$(ranks_on node1)"
  step=$(newest_checkpoint_step "$run")
  mpirun_across --run-dir "$run" --steps $((step + 40)) --resume auto > "$W/logs/mpirun_resumed.out" 2>&1
  rc=$?
  expect "resumed run: exit 0 (is $rc)" test "$rc" = 0
  expect "resumed from step $step" grep -q -E "^resumed from .*ckpt_0*$step\.h5 at step $step" "$W/logs/mpirun_resumed.out"
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(single_node resubmit_finished preemption scancel two_nodes two_nodes_preemption dead_node
  mpirun_two_hosts)
cd "$DAE_ROOT"  # sbatch from the repository root, as a user does
for name in "${scenarios[@]}"; do scenario "$name"; done

echo "cluster: logs in $W/logs, daemons' logs in $W/cluster/log"
for line in "${results[@]}"; do echo "cluster: $line"; done
echo "cluster: $(($(date +%s) - suite_start)) s in all"
echo "cluster: $passed passed, $failed failed"
[ "$failed" = 0 ]
