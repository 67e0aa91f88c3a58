#!/usr/bin/env bash
# dae_denoise's inference speed against its peers, side by side in one run: PyTorch eager
# (inference_mode), torch.compile (inductor) and onnxruntime (CPU EP, with and without its
# threads spinning) on dae_export's ONNX file, each at 1 and at 2 threads (the best counts), over
# the 10 000 MNIST test digits at batch 256 (images/s) and on one 1024 x 1024 image (ms, GFLOP/s).
# Once at the CPU's best ISA and once held to AVX2: DAE_CPU_ISA for dae_denoise,
# ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA for PyTorch (its inductor C++ code follows
# ATEN_CPU_CAPABILITY too); onnxruntime has no switch for its ISA (MLAS picks its kernels from
# cpuid), so it runs its best kernels in both. The fused training step's GFLOP/s (dae_step_bench,
# batch 50, timed in the same reps) is the yardstick of the 1024 x 1024 figure.
# The contenders take turns rep after rep (bench/denoise_peers.py), only while other users leave
# the cores alone; medians of DAE_BENCH_REPS reps (5), warm-up excluded. Prints markdown tables
# (docs/inference-speed.md holds a run's) and keeps its files in runs/inference_bench.
# About 4 minutes on 2 cores, plus any wait for other builds.
# Usage: bench/denoise_bench.sh [CHECKPOINT]   (or DAE_BENCH_CHECKPOINT; none: trains one,
#        300 steps of configs/mnist.ini at 2 ranks). DAE_BENCH_DATA: data/mnist.h5.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../launch/common.sh"
cd "$DAE_ROOT"
checkpoint=${1:-${DAE_BENCH_CHECKPOINT:-}}
data=${DAE_BENCH_DATA:-data/mnist.h5}
reps=${DAE_BENCH_REPS:-5}
out=runs/inference_bench
py=$DAE_VENV/bin/python
mkdir -p "$out"

[ -f "$data" ] || { echo "denoise_bench: no $data (run launch/get_data.sh)" >&2; exit 1; }
for program in dae_dist dae_denoise dae_export dae_step_bench; do
  [ -x "$DAE_BUILD/$program" ] || { echo "denoise_bench: no $DAE_BUILD/$program (build first)" >&2; exit 1; }
done
"$py" -c "import onnxruntime" 2> /dev/null ||
  { echo "denoise_bench: no onnxruntime in $DAE_VENV (pip install -r launch/requirements.txt)" >&2; exit 1; }

# Others rebuild this tree while it runs: wait for their compilers (up to 10 min), then time a
# copy of the programs and their libraries (LD_LIBRARY_PATH comes before their RUNPATH), which no
# relink can change or cut short halfway through.
for _ in $(seq 20); do pgrep -f cc1plus > /dev/null || break; sleep 30; done
rm -rf "${out:?}/bin" && mkdir -p "$out/bin"
cp "$DAE_BUILD"/dae_{dist,denoise,export,step_bench} "$DAE_BUILD"/libdae_*.so "$out/bin"
bin=$DAE_ROOT/$out/bin
export LD_LIBRARY_PATH=$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -z "$checkpoint" ]; then
  checkpoint=$(ls "$out"/train/checkpoints/ckpt_*.h5 2> /dev/null | tail -n 1 || true)
  if [ -z "$checkpoint" ]; then
    echo "denoise_bench: no checkpoint given; training one (300 steps, 2 ranks) in $out/train" >&2
    rm -rf "$out/train"  # an interrupted run's folder without a checkpoint
    # shellcheck disable=SC2046  # mpirun_flags prints several words
    mpirun -np 2 $(mpirun_flags 2) --oversubscribe --bind-to none "$bin/dae_dist" \
      --config configs/mnist.ini --data "$data" --steps 300 --run-dir "$out/train" \
      > "$out/train.log" 2>&1
    checkpoint=$(ls "$out"/train/checkpoints/ckpt_*.h5 | tail -n 1)
  fi
fi
"$bin/dae_export" --checkpoint "$checkpoint" --format onnx --out "$out/dae.onnx" \
  --overwrite > "$out/export.log" 2>&1

{
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo AVX2); checkpoint $checkpoint; data $data; $(date -I)"
for isa in default avx2; do
  env_isa=()
  [ "$isa" = avx2 ] && env_isa=(DAE_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)
  # A cache of inductor's compiled graphs for each ISA: torch 2.15's cache key leaves out
  # ATEN_CPU_CAPABILITY, and an AVX-512 run's graphs reused under avx2 return NaNs and garbage.
  env_isa+=(TORCHINDUCTOR_CACHE_DIR="$DAE_ROOT/$out/inductor_cache_$isa")
  results=()
  for threads in 1 2; do
    env "${env_isa[@]}" "$py" bench/denoise_peers.py run --checkpoint "$checkpoint" \
      --onnx "$out/dae.onnx" --data "$data" --dae-denoise "$bin/dae_denoise" \
      --step-bench "$bin/dae_step_bench" --threads "$threads" --reps "$reps" --work "$out" \
      --json "$out/${isa}_$threads.json" \
      2> "$out/${isa}_$threads.log" || { tail -n 3 "$out/${isa}_$threads.log" >&2; exit 1; }
    results+=("$out/${isa}_$threads.json")
  done
  echo
  if [ "$isa" = avx2 ]; then
    echo "### Held to AVX2 (dae_denoise and PyTorch; onnxruntime cannot be held and keeps AVX-512)"
  else
    echo "### Default ISA (AVX-512 where the CPU has it)"
  fi
  echo
  "$py" bench/denoise_peers.py table "${results[@]}"
done
} | tee "$out/table.md"
