#!/usr/bin/env bash
# dae_dist against the PyTorch DDP reference (bench/ddp_reference.py) on the same data, in the
# same session: world sizes 1, 2 and 4, batch 50 per rank, one intra-op thread per rank on both
# sides, warm-up excluded. Prints a markdown table.
# Usage: bench/compare.sh [DATA.h5] [STEPS]   (default data/mnist.h5, 1500 steps)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../launch/common.sh"
cd "$DAE_ROOT"
data=${1:-data/mnist.h5}
steps=${2:-1500}
out=runs/bench
mkdir -p "$out"
# fp32 peak of this machine: cores x clock x 64 FLOP/cycle (two AVX-512 FMA units of 16 floats,
# 2 FLOP each) — the 37 000 samples/s the issue quotes for 2 cores at 2.5 GHz.
cores=$(nproc)
ghz=${DAE_BENCH_GHZ:-2.5}
peak_gflops=$(python3 -c "print($cores * $ghz * 64)")
flop_per_sample=8.5e6

json_field() { python3 -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores; fp32 peak ≈ $peak_gflops GFLOP/s; data $data; $steps steps, batch 50 per rank"
echo
echo "| ranks | dae_dist samples/s | DDP samples/s | ratio | dae_dist % of fp32 peak | all-reduce share | peak RSS/rank dae_dist | peak RSS/rank DDP |"
echo "|---|---|---|---|---|---|---|---|"
for ranks in 1 2 4; do
  flags=$(mpirun_flags "$ranks")
  # shellcheck disable=SC2086
  mpirun -np "$ranks" $flags --bind-to none "$DAE_BUILD/dae_dist" --data "$data" \
    --run-dir "$out/dae_$ranks" --steps "$steps" --batch-size 50 --threads 1 --log-every 100000 \
    --checkpoint-every 0 --eval-noise 0 --profile > "$out/dae_$ranks.log" 2>&1
  # shellcheck disable=SC2086
  mpirun -np "$ranks" $flags --bind-to none -x OMP_NUM_THREADS=1 "$DAE_VENV/bin/python" \
    bench/ddp_reference.py --data "$data" --steps "$steps" --warmup 20 > "$out/ddp_$ranks.log" 2>&1
  ddp_json=$(grep '^{' "$out/ddp_$ranks.log" | tail -n 1)
  echo "$ddp_json" > "$out/ddp_$ranks.json"
  dae_rate=$(json_field "$out/dae_$ranks/summary.json" samples_per_s_steady)
  dae_rss=$(json_field "$out/dae_$ranks/summary.json" peak_rss_mb)
  ddp_rate=$(json_field "$out/ddp_$ranks.json" samples_per_s)
  ddp_rss=$(json_field "$out/ddp_$ranks.json" peak_rss_mb)
  share=$(sed -n 's/^  all-reduce *[0-9.]* ms *\([0-9.]*\) %/\1 %/p' "$out/dae_$ranks.log")
  python3 - "$ranks" "$dae_rate" "$ddp_rate" "$dae_rss" "$ddp_rss" "$share" <<PY
import sys
ranks, dae, ddp, dae_rss, ddp_rss, share = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
peak = $peak_gflops * 1e9
print(f"| {ranks} | {dae:,.0f} | {ddp:,.0f} | {dae / ddp:.2f}x | {100 * dae * $flop_per_sample / peak:.1f} % "
      f"| {share} | {dae_rss:.0f} MB | {ddp_rss:.0f} MB |")
PY
done
