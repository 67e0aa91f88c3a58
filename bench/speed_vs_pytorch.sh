#!/usr/bin/env bash
# dae_dist against the PyTorch DDP reference (bench/ddp_reference.py) on the same data, in the
# same session: world sizes 1, 2 and 4, batch 50 per rank, warm-up excluded. Both sides at their
# best: dae_dist at its default thread count (the node's cores over its ranks: 2 threads at 1
# rank here, 1 at 2 and 4), the peer in every form a PyTorch user would pick: one intra-op
# thread per rank, PyTorch's default thread count (world 1 only: at 2 and 4 ranks on this
# machine's cores it oversubscribes them), and torch.compile + fused Adam (at one thread, and at
# 1 rank also at the default count); the ratio is dae_dist's rate over the best of those rows.
# dae_dist also runs in its world-size invariant mode at a fixed global batch of 200 (that of
# 4 ranks x 50): with 4 virtual shards (at 4 ranks the same 50-image steps as per-rank mode, so
# the difference is the ordered reduction) and with 8 (25-image steps); each with the share of
# its reduction ("all-reduce" in --profile).
# Prints a markdown table.
# Usage: bench/speed_vs_pytorch.sh [DATA.h5] [STEPS]   (default data/mnist.h5, 1500 steps)
# DAE_BENCH_ISA=avx2 holds both sides to AVX2, as an AVX2 node would run them: dae_dist's kernel
# variant (DAE_CPU_ISA) and LibTorch's (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) in the peer.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../launch/common.sh"
cd "$DAE_ROOT"
data=${1:-data/mnist.h5}
steps=${2:-1500}
isa=${DAE_BENCH_ISA:-}
out=runs/bench${isa:+_$isa}
mkdir -p "$out"
dae_env=() peer_env=()
if [ -n "$isa" ]; then
  dae_env=(-x "DAE_CPU_ISA=$isa")
  peer_env=(-x "ATEN_CPU_CAPABILITY=$isa" -x "ONEDNN_MAX_CPU_ISA=${isa^^}")
fi
# fp32 peak of this machine: cores x clock x 64 FLOP/cycle (two AVX-512 FMA units of 16 floats,
# 2 FLOP each) — the 37 000 samples/s the issue quotes for 2 cores at 2.5 GHz.
cores=$(nproc)
ghz=${DAE_BENCH_GHZ:-2.5}
peak_gflops=$(python3 -c "print($cores * $ghz * 64)")
flop_per_sample=8.5e6

json_field() { python3 -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

# peer NAME RANKS ARGS...: one run of the DDP reference; prints its samples/s.
peer() {
  local name=$1 ranks=$2
  shift 2
  # shellcheck disable=SC2086
  mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none "${peer_env[@]}" \
    "$DAE_VENV/bin/python" bench/ddp_reference.py --data "$data" --steps "$steps" --warmup 20 \
    "$@" > "$out/ddp_${name}_$ranks.log" 2>&1
  grep '^{' "$out/ddp_${name}_$ranks.log" | tail -n 1 > "$out/ddp_${name}_$ranks.json"
  json_field "$out/ddp_${name}_$ranks.json" samples_per_s
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores; fp32 peak ≈ $peak_gflops GFLOP/s; data $data; $steps steps, batch 50 per rank${isa:+; both sides held to $isa}"
echo
echo "| ranks | dae_dist samples/s | DDP 1 thread/rank | DDP default threads | DDP + torch.compile + fused Adam (1 thread / default threads) | ratio to the best DDP row | dae_dist % of fp32 peak | all-reduce share | peak RSS/rank dae_dist | peak RSS/rank DDP (1 thread) | invariant, 4 virtual shards: samples/s (reduction share) | invariant, 8 virtual shards: samples/s (reduction share) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for ranks in 1 2 4; do
  # shellcheck disable=SC2086
  mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none "${dae_env[@]}" "$DAE_BUILD/dae_dist" \
    --data "$data" --run-dir "$out/dae_$ranks" --steps "$steps" --batch-size 50 --threads 0 \
    --log-every 100000 --checkpoint-every 0 --eval-noise 0 --profile > "$out/dae_$ranks.log" 2>&1
  invariant=()
  for shards in 4 8; do
    # shellcheck disable=SC2086
    mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none "${dae_env[@]}" "$DAE_BUILD/dae_dist" \
      --data "$data" --run-dir "$out/dae_v${shards}_$ranks" --steps "$steps" --threads 0 \
      --global-batch-size 200 --virtual-shards "$shards" --log-every 100000 --checkpoint-every 0 \
      --eval-noise 0 --profile > "$out/dae_v${shards}_$ranks.log" 2>&1
    invariant+=("$(json_field "$out/dae_v${shards}_$ranks/summary.json" samples_per_s_steady)")
    invariant+=("$(sed -n 's/^  all-reduce *[0-9.]* ms *\([0-9.]*\) %/\1 %/p' "$out/dae_v${shards}_$ranks.log")")
  done
  one=$(peer one "$ranks" --threads 1)
  default=- compiled_default=-
  if [ "$ranks" = 1 ]; then
    default=$(peer default "$ranks" --threads 0)
    compiled_default=$(peer compiled_default "$ranks" --threads 0 --compile)
  fi
  compiled=$(peer compiled "$ranks" --threads 1 --compile)
  dae_rate=$(json_field "$out/dae_$ranks/summary.json" samples_per_s_steady)
  dae_rss=$(json_field "$out/dae_$ranks/summary.json" peak_rss_mb)
  ddp_rss=$(json_field "$out/ddp_one_$ranks.json" peak_rss_mb)
  share=$(sed -n 's/^  all-reduce *[0-9.]* ms *\([0-9.]*\) %/\1 %/p' "$out/dae_$ranks.log")
  python3 - "$ranks" "$dae_rate" "$one" "$default" "$compiled" "$compiled_default" "$dae_rss" "$ddp_rss" "$share" \
    "${invariant[@]}" <<PY
import sys
ranks, dae, one, default, compiled, compiled_default, dae_rss, ddp_rss, share, v4, v4_share, v8, v8_share = sys.argv[1:]
dae, dae_rss, ddp_rss = float(dae), float(dae_rss), float(ddp_rss)
peers = [float(x) for x in (one, default, compiled, compiled_default) if x != "-"]
cell = lambda x: "—" if x == "-" else f"{float(x):,.0f}"
peak = $peak_gflops * 1e9
print(f"| {ranks} | {dae:,.0f} | {cell(one)} | {cell(default)} | {cell(compiled)} / {cell(compiled_default)} | {dae / max(peers):.2f}x "
      f"| {100 * dae * $flop_per_sample / peak:.1f} % | {share} | {dae_rss:.0f} MB | {ddp_rss:.0f} MB "
      f"| {float(v4):,.0f} ({v4_share}) | {float(v8):,.0f} ({v8_share}) |")
PY
done
