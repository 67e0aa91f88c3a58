#!/usr/bin/env bash
# The GPU checks in one command, for a node with at least one GPU (within 10 minutes on one GPU
# and 16 cores): build against the node's PyTorch, run the GPU tests, short runs in each GPU
# layout the node allows (NCCL at one rank; one GPU per rank via CUDA_VISIBLE_DEVICES; two ranks
# sharing a GPU on the MPI backend; a shared GPU refused without --share-gpus), NCCL's failure
# paths where there are two GPUs, and the GPU benchmark at batch 50 and 1024 (eager, CUDA graph,
# graph + bf16) with --profile; then a summary.
# Usage: launch/dev/gpu_check.sh [--plan]: --plan prints which steps would run or be skipped, and
# why, without running any.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
cd "$DAE_ROOT"
plan_only=0
[ "${1:-}" = --plan ] && plan_only=1
[ "$plan_only" = 1 ] || compgen -G '/dev/nvidia[0-9]*' >/dev/null ||
  { echo "gpu_check: no NVIDIA GPU on this node (no /dev/nvidia<N>)" >&2; exit 1; }
# Clusters often run their GPUs in EXCLUSIVE_PROCESS compute mode: one CUDA context per GPU, so
# a second rank on the same GPU fails to create its context. Those steps are skipped there.
modes=$(nvidia-smi --query-gpu=compute_mode --format=csv,noheader 2>/dev/null)
gpus=$(grep -c . <<< "$modes")
shared_ok="two ranks on one GPU need the Default compute mode"
if [ "$gpus" = 0 ]; then
  shared_ok="nvidia-smi reports no GPU"
elif ! grep -qvx Default <<< "$modes"; then
  shared_ok=
else
  shared_ok="$shared_ok, and this node's GPUs are in mode $(sort -u <<< "$modes" | paste -sd, -)"
fi
two_gpus="needs two GPUs, this node has $gpus"
[ "$gpus" -ge 2 ] 2>/dev/null && two_gpus=
if [ "$plan_only" = 1 ]; then
  step() { echo "RUN $1"; }
  echo "gpu_check: $gpus GPUs, compute modes: $(sort -u <<< "$modes" | paste -sd, -)"
fi
log=${DAE_GPU_LOG:-runs/gpu_check}
[ "$plan_only" = 1 ] || mkdir -p "$log"
summary=()
declare -F step >/dev/null || step() {  # step NAME COMMAND...: runs it, logs it, records PASS/FAIL
  local name=$1; shift
  echo "== $name"
  if "$@" > "$log/$name.log" 2>&1; then summary+=("PASS $name"); else summary+=("FAIL $name (see $log/$name.log)"); fi
  tail -n 12 "$log/$name.log"
}
skip() {  # skip NAME REASON
  echo "SKIP $1: $2"
  summary+=("SKIP $1: $2")
}
# when REASON NAME COMMAND...: the step, or skip it for REASON when REASON is not empty.
when() { local reason=$1; shift; if [ -n "$reason" ]; then skip "$1" "$reason"; else step "$@"; fi; }
mpi() { mpirun $(mpirun_flags "$1") --bind-to none -np "$@"; }

step build launch/dev/build_gpu_node.sh
# Where the build took Open MPI and the rest from unpacked Debian packages, run with them too.
[ -f deps/env.sh ] && source deps/env.sh
[ -f data/mnist.h5 ] || step data launch/get_data.sh ${DAE_IDX_DIR:+"$DAE_IDX_DIR"}
step tests bash -c "cd '$DAE_BUILD' && ctest --output-on-failure -R 'unit|mpi_np2'"
# With one GPU, NCCL (one rank per GPU) is tested at one rank; the MPI backend at two.
step gpu_tests_1rank mpi 1 "$DAE_BUILD/tests/dae_mpi_tests" --gtest_filter='Gpu.*'
# Two ranks: each on its own GPU where there are two (NCCL, and its unwinding test), else
# sharing the one GPU on the MPI backend.
two_ranks_reason=$shared_ok
[ -z "$two_gpus" ] && two_ranks_reason=
when "$two_ranks_reason" gpu_tests_2ranks mpi 2 "$DAE_BUILD/tests/dae_mpi_tests" --gtest_filter='Gpu.*'
step nccl_1rank mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir runs/gpu_nccl \
  --steps 300 --backend nccl --profile
when "$shared_ok" mpi_backend_2ranks mpi 2 "$DAE_BUILD/dae_dist" --config configs/gpu.ini \
  --run-dir runs/gpu_mpi --steps 200 --backend mpi --share-gpus --profile
# Slurm's per-task binding (--gpus-per-task=1): each rank sees one GPU, as cuda:0, and NCCL runs
# between them; the log must name that layout.
per_task() {
  mpi 2 bash -c 'CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK exec "$@"' per_task \
    "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir runs/gpu_per_task --steps 100 \
    --backend nccl | tee /dev/stderr | grep -q 'each rank sees one GPU; local rank 0 of 2 takes cuda:0'
}
when "$two_gpus" per_task_layout per_task
# Two ranks bound to the same GPU by CUDA_VISIBLE_DEVICES (--ntasks-per-gpu=2): without
# --share-gpus the job must end at planning with one line naming the shared GPU (no CUDA context
# is made before, so this runs in any compute mode)...
refused_sharing() {
  local out
  out=$(CUDA_VISIBLE_DEVICES=0 mpi 2 "$DAE_BUILD/dae_dist" --config configs/gpu.ini \
          --run-dir runs/gpu_refused --steps 10 --device cuda 2>&1)
  echo "$out"
  [ "$(grep -c 'would share GPU GPU-' <<< "$out")" = 1 ]
}
step shared_gpu_refused refused_sharing
# ...and with it, train on the MPI backend.
when "$shared_ok" per_task_shared mpi 2 -x CUDA_VISIBLE_DEVICES=0 "$DAE_BUILD/dae_dist" \
  --config configs/gpu.ini --run-dir runs/gpu_shared --steps 100 --device cuda --share-gpus
# NCCL's failure path: a stopped rank (SIGSTOP) must end the job within the collective timeout
# with one line from the watchdog, not hang. Needs dae_dist's collective-timeout option.
nccl_stuck_peer() {
  local run=runs/gpu_stuck job pid code
  rm -rf "$run"
  mpi 2 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir "$run" --steps 10000000 \
    --backend nccl --log-every 1000 --collective-timeout 10 > "$log/nccl_stuck_peer.out" 2>&1 &
  job=$!
  sleep 40
  pid=$(pgrep -n -f "^$DAE_BUILD/dae_dist --config configs/gpu.ini --run-dir $run")  # a rank, not mpirun
  [ -n "$pid" ] || { echo "nccl_stuck_peer: no rank running"; return 1; }
  kill -STOP "$pid"
  timeout 60 tail --pid="$job" -f /dev/null; code=$?
  kill -CONT "$pid" 2>/dev/null
  cat "$log/nccl_stuck_peer.out"
  [ "$code" = 0 ] || { echo "nccl_stuck_peer: the job did not end within 60 s"; kill "$job"; return 1; }
  grep -q 'no progress from the other ranks for 10 s (NCCL: ' "$log/nccl_stuck_peer.out"
}
stuck_reason=$two_gpus
[ -z "$stuck_reason" ] && ! "$DAE_BUILD/dae_dist" --help 2>/dev/null | grep -q collective-timeout &&
  stuck_reason="this dae_dist has no --collective-timeout"
when "$stuck_reason" nccl_stuck_peer nccl_stuck_peer
# SIGUSR1 while the step runs as a CUDA graph: exit with the preempted code and a checkpoint (the
# stop flag goes through the graph's all-reduce), then --resume auto continues from it for 100
# more steps.
stop_and_resume() {
  local run=runs/gpu_stop job code preempted saved
  rm -rf "$run"
  mpirun $(mpirun_flags 1) --bind-to none -np 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini \
    --run-dir "$run" --steps 10000000 --cuda-graph --log-every 1000 &
  job=$!
  sleep 30
  kill -USR1 "$job"
  wait "$job"; code=$?
  preempted=$(dae_exit_code preempted)
  [ "$code" = "$preempted" ] || { echo "stop_and_resume: exit $code, expected $preempted"; return 1; }
  saved=$(dae_stopped_field "$run" step)
  [ -n "$saved" ] || { echo "stop_and_resume: no $run/stopped.json"; return 1; }
  echo "stop_and_resume: stopped with checkpoint $(dae_stopped_field "$run" checkpoint) at step $saved"
  mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir "$run" --cuda-graph \
    --resume auto --steps $((saved + 100)) --log-every 50
}
step stop_resume_graph stop_and_resume
# Throughput: batch 50 and 1024, eagerly, as a CUDA graph, and as a graph with bf16 autocast.
bench() {  # bench NAME BATCH EXTRA-OPTIONS...
  local name=$1 batch=$2; shift 2
  step "bench_$name" mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir "runs/gpu_$name" \
    --steps 2000 --batch-size "$batch" --log-every 1000 "$@"
}
bench b50 50
bench b50_graph 50 --cuda-graph
bench b1024 1024
bench b1024_graph 1024 --cuda-graph
bench b1024_graph_bf16 1024 --cuda-graph --precision bf16
# dae_denoise on the GPU: the 10 000 test digits at batch 1024 (its last line gives images/s),
# and one 1024 x 1024 image (through the 512-pixel tiles).
step denoise_digits mpi 1 "$DAE_BUILD/dae_denoise" --run-dir runs/gpu_b1024 --device cuda \
  --dataset /test/images data/mnist.h5 --batch 1024 --out runs/gpu_denoise_digits.h5 --overwrite
step denoise_1024 bash -c "python3 -c 'import os, struct, sys; sys.stdout.buffer.write(bytes([0, 0, 8, 3]) + struct.pack(\">III\", 1, 1024, 1024) + os.urandom(1 << 20))' > runs/gpu_1024.idx &&
  '$DAE_BUILD/dae_denoise' --run-dir runs/gpu_b1024 --device cuda runs/gpu_1024.idx --out runs/gpu_denoise_1024.idx --overwrite"
step profile_b1024 mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir runs/gpu_prof \
  --steps 300 --profile
step profile_b1024_graph mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini \
  --run-dir runs/gpu_prof_graph --steps 300 --profile --cuda-graph

[ "$plan_only" = 1 ] && exit 0
echo "== summary"
printf '%s\n' "${summary[@]}"
for run in b50 b50_graph b1024 b1024_graph b1024_graph_bf16; do
  [ -f "runs/gpu_$run/summary.json" ] &&
    echo "$run: $(grep -o '"samples_per_s_steady": [0-9.e+]*' "runs/gpu_$run/summary.json")," \
         "$(grep -o '"0.0": [0-9.e+-]*' "runs/gpu_$run/summary.json" | sed 's/"0.0"/clean test MSE/')"
done
for run in denoise_digits denoise_1024; do
  echo "$run: $(grep '^denoised' "$log/$run.log" || true)"
done
for run in profile_b1024 profile_b1024_graph; do
  echo "$run:"; grep -A8 '^profile' "$log/$run.log" || true
done
! printf '%s\n' "${summary[@]}" | grep -q '^FAIL'
