#!/usr/bin/env bash
# The GPU checks in one command, for a node with at least one GPU (within 10 minutes on one GPU
# and 16 cores): build against the node's PyTorch, run the GPU tests, a short 1-rank NCCL run,
# a short 2-rank MPI-backend run on GPU tensors sharing the GPUs, and the GPU benchmark at
# batch 50 and 1024 (eager, CUDA graph, graph + bf16) with --profile; then a summary.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DAE_ROOT"
compgen -G '/dev/nvidia[0-9]*' >/dev/null ||
  { echo "gpu_check: no NVIDIA GPU on this node (no /dev/nvidia<N>)" >&2; exit 1; }
log=${DAE_GPU_LOG:-runs/gpu_check}
mkdir -p "$log"
summary=()
step() {  # step NAME COMMAND...: runs it, logs it, records PASS/FAIL
  local name=$1; shift
  echo "== $name"
  if "$@" > "$log/$name.log" 2>&1; then summary+=("PASS $name"); else summary+=("FAIL $name (see $log/$name.log)"); fi
  tail -n 12 "$log/$name.log"
}
mpi() { mpirun $(mpirun_flags "$1") --bind-to none -np "$@"; }

step build launch/build_gpu_node.sh
# Where the build took Open MPI and the rest from unpacked Debian packages, run with them too.
[ -f deps/env.sh ] && source deps/env.sh
[ -f data/mnist.h5 ] || step data launch/get_data.sh ${DAE_IDX_DIR:+"$DAE_IDX_DIR"}
step tests bash -c "cd '$DAE_BUILD' && ctest --output-on-failure -R 'unit|mpi_np2'"
# With one GPU, NCCL (one rank per GPU) is tested at one rank; the MPI backend at two.
step gpu_tests_1rank mpi 1 "$DAE_BUILD/tests/dae_mpi_tests" --gtest_filter='Gpu.*'
step gpu_tests_2ranks mpi 2 "$DAE_BUILD/tests/dae_mpi_tests" --gtest_filter='Gpu.*'
step nccl_1rank mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir runs/gpu_nccl \
  --steps 300 --backend nccl --profile
step mpi_backend_2ranks mpi 2 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir runs/gpu_mpi \
  --steps 200 --backend mpi --share-gpus --profile
# SIGUSR1 while the step runs as a CUDA graph: exit 75 with a checkpoint (the stop flag goes
# through the graph's all-reduce), then --resume auto continues from it for 100 more steps.
stop_and_resume() {
  local run=runs/gpu_stop job code saved
  rm -rf "$run"
  mpirun $(mpirun_flags 1) --bind-to none -np 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini \
    --run-dir "$run" --steps 10000000 --cuda-graph --log-every 1000 &
  job=$!
  sleep 30
  kill -USR1 "$job"
  wait "$job"; code=$?
  [ "$code" = 75 ] || { echo "stop_and_resume: exit $code, expected 75"; return 1; }
  saved=$(ls "$run"/checkpoints/ckpt_*.h5 | tail -n 1 | sed 's/.*ckpt_0*\([0-9]*\)\.h5/\1/')
  echo "stop_and_resume: stopped with a checkpoint at step $saved"
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
step profile_b1024 mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini --run-dir runs/gpu_prof \
  --steps 300 --profile
step profile_b1024_graph mpi 1 "$DAE_BUILD/dae_dist" --config configs/gpu.ini \
  --run-dir runs/gpu_prof_graph --steps 300 --profile --cuda-graph

echo "== summary"
printf '%s\n' "${summary[@]}"
for run in b50 b50_graph b1024 b1024_graph b1024_graph_bf16; do
  [ -f "runs/gpu_$run/summary.json" ] &&
    echo "$run: $(grep -o '"samples_per_s_steady": [0-9.e+]*' "runs/gpu_$run/summary.json")," \
         "$(grep -o '"0.0": [0-9.e+-]*' "runs/gpu_$run/summary.json" | sed 's/"0.0"/clean test MSE/')"
done
for run in profile_b1024 profile_b1024_graph; do
  echo "$run:"; grep -A8 '^profile' "$log/$run.log" || true
done
! printf '%s\n' "${summary[@]}" | grep -q '^FAIL'
