#!/usr/bin/env bash
# The GPU node scripts' checks, run here without a GPU or a CUDA toolkit: fake python, nvcc and
# nvidia-smi on PATH stand for what a GPU node has.
# build_gpu_node.sh: a CUDA wheel needs an nvcc of the same major version, else one line and
# exit 1 before any CMake. gpu_check.sh --plan: steps putting two ranks on one GPU are skipped,
# with the reason, when the GPUs are not in the Default compute mode.
# Usage: tests/test_gpu_scripts.sh SOURCE_DIR
set -uo pipefail
root=${1:?usage: test_gpu_scripts.sh SOURCE_DIR}
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
failures=0
check() {  # check NAME CONDITION...: records a failure with the output when CONDITION fails
  local name=$1; shift
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1)); fi
}
lines() { grep -c . <<< "$out"; }
has() { grep -qF -- "$1" <<< "$out"; }

mkdir -p "$fake/bin" "$fake/toolkit12/bin" "$fake/toolkit13/bin"
# python3 -c '...': answers the three questions build_gpu_node.sh asks torch.
cat > "$fake/bin/python3" <<'PY'
#!/bin/sh
case $2 in
  *cmake_prefix_path*) echo /nonexistent/torch/share/cmake ;;
  *__version__*) echo "$FAKE_TORCH_VERSION" ;;
  *version.cuda*) echo "$FAKE_TORCH_CUDA" ;;
  *) exit 1 ;;
esac
PY
for release in 12.4 13.0; do
  cat > "$fake/toolkit${release%%.*}/bin/nvcc" <<NVCC
#!/bin/sh
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Cuda compilation tools, release $release, V$release.88"
NVCC
done
cat > "$fake/bin/nvidia-smi" <<'SMI'
#!/bin/sh
[ "$1" = --query-gpu=compute_mode ] && printf '%s\n' $FAKE_MODES
SMI
chmod +x "$fake"/bin/* "$fake"/toolkit*/bin/nvcc

# No real toolkit may be found: only the fake bin and the system's basic tools on PATH.
build() {  # build TOOLKIT_DIR|none TORCH_CUDA
  local path=$fake/bin:/usr/bin:/bin
  [ "$1" != none ] && path=$fake/$1/bin:$path
  out=$(env -u CUDA_HOME -u CUDA_PATH -u CUDACXX PATH="$path" PYTHON=python3 \
          DAE_CUDA_DEFAULT_ROOT="$fake/no-cuda" FAKE_TORCH_VERSION="2.15.0+cu132" \
          FAKE_TORCH_CUDA="$2" bash "$root/launch/dev/build_gpu_node.sh" --check-only 2>&1 >/dev/null)
  code=$?
}
build toolkit12 13.2
check "nvcc 12 for a CUDA 13 wheel: one line, exit 1" \
  test "$code" = 1 -a "$(lines)" = 1
check "  ...naming both versions" has "built with CUDA 13.2 but $fake/toolkit12/bin/nvcc is CUDA 12.4"
build none 13.2
check "no nvcc for a CUDA wheel: one line, exit 1" test "$code" = 1 -a "$(lines)" = 1
check "  ...saying what is missing" has "needs a CUDA 13 toolkit (nvcc) to build against, and none was found"
build toolkit13 13.2
check "nvcc 13.0 for a CUDA 13.2 wheel passes" test "$code" = 0 -a "$(lines)" = 0
build none ""
check "a CPU-only torch needs no toolkit" test "$code" = 0
# CUDA_HOME is honoured where nvcc is not on PATH.
out=$(env -u CUDACXX PATH="$fake/bin:/usr/bin:/bin" CUDA_HOME="$fake/toolkit12" PYTHON=python3 \
        DAE_CUDA_DEFAULT_ROOT="$fake/no-cuda" FAKE_TORCH_VERSION=2.15.0 FAKE_TORCH_CUDA=13.2 \
        bash "$root/launch/dev/build_gpu_node.sh" --check-only 2>&1)
code=$?
check "CUDA_HOME's nvcc is the one checked" test "$code" = 1 && has "$fake/toolkit12/bin/nvcc is CUDA 12.4"

plan() {  # plan MODE...: gpu_check.sh --plan on GPUs in these compute modes
  out=$(PATH="$fake/bin:$PATH" FAKE_MODES="$*" DAE_BUILD="$fake/no-build" \
          bash "$root/launch/dev/gpu_check.sh" --plan 2>&1)
  code=$?
}
plan Exclusive_Process
check "gpu_check --plan exits 0" test "$code" = 0
check "EXCLUSIVE_PROCESS, one GPU: the shared MPI-backend run is skipped with the reason" \
  has "SKIP mpi_backend_2ranks: two ranks on one GPU need the Default compute mode, and this node's GPUs are in mode Exclusive_Process"
check "  ...and so are the two-rank GPU tests and the shared per-task run" \
  eval 'has "SKIP gpu_tests_2ranks:" && has "SKIP per_task_shared:"'
check "  ...the refusal of an unallowed shared GPU still runs (no context is made)" \
  has "RUN shared_gpu_refused"
check "  ...one-GPU runs still run" eval 'has "RUN nccl_1rank" && has "RUN gpu_tests_1rank"'
plan Default
check "Default mode: two ranks share the GPU" \
  eval 'has "RUN mpi_backend_2ranks" && has "RUN gpu_tests_2ranks" && has "RUN per_task_shared"'
check "  ...the per-task layout needs two GPUs" has "SKIP per_task_layout: needs two GPUs, this node has 1"
plan Exclusive_Process Exclusive_Process
check "two EXCLUSIVE_PROCESS GPUs: one rank per GPU runs, sharing does not" \
  eval 'has "RUN per_task_layout" && has "RUN gpu_tests_2ranks" && has "SKIP mpi_backend_2ranks:"'
check "  ...the stuck-peer check says why it cannot run" \
  has "SKIP nccl_stuck_peer: this dae_dist has no --collective-timeout"
plan Default Prohibited
check "one GPU not in Default mode is enough to skip sharing" has "in mode Default,Prohibited"

[ "$failures" = 0 ] && echo "all passed" || { echo "$failures failed"; exit 1; }
