#!/usr/bin/env bash
# Runs every configs/compare/*.ini (the seed's open questions: conv vs fully connected, restoring
# from a third or a quarter of the pixels, salt-and-pepper noise) with 4 ranks and prints one
# markdown table of their final evaluations. Extra options go to every run, e.g.
#   launch/compare_configs.sh --data data/mnist-digits.h5
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$DAE_ROOT"
ranks=${DAE_RANKS:-4}
mkdir -p runs

for config in configs/compare/*.ini; do
  # shellcheck disable=SC2046
  mpirun -np "$ranks" $(mpirun_flags "$ranks") --bind-to none \
    "$DAE_BUILD/dae_dist" --config "$config" "$@" > "runs/compare_$(basename "$config" .ini).log" 2>&1 ||
    { echo "compare_configs: $config failed, see runs/compare_$(basename "$config" .ini).log" >&2; exit 1; }
done

echo "| run | model | noise type | trained at | tested at | MSE | PSNR (dB) | SSIM |"
echo "|---|---|---|---|---|---|---|---|"
for config in configs/compare/*.ini; do
  name=$(basename "$config" .ini)
  value() { sed -n "s/^$1 *= *//p" "$config"; }
  metrics=runs/compare/$name/eval/metrics.csv
  last_step=$(tail -n 1 "$metrics" | cut -d, -f1)
  # The final evaluation's rows: every tested level.
  awk -F, -v step="$last_step" -v name="$name" -v model="$(value model)" \
      -v trained="$(value noise)" '
    NR > 1 && $1 == step {
      printf "| %s | %s | %s | %s | %.2f | %.5f | %.2f | %.3f |\n", name, model, $2, trained, $3, $4, $5, $6
    }' "$metrics"
done
