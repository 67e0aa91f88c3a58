#!/bin/bash
# Trains CONFIG once per seed and prints the clean-test MSE and the dead ReLU channels at the end
# of each run (0 for every image of the whole clean test set, and of the test set at the training
# noise), then the mean MSE: the README's quality tables.
#   bench/quality_seeds.sh CONFIG DATA RANKS "SEEDS" [dae_dist options...]
#   e.g. bench/quality_seeds.sh configs/mnist.ini data/digits.h5 4 "1 2 3 4 5"
# Runs go to ${OUT:-runs/quality}/<config>-<seed>; one at a time, one thread per rank
# (results are deterministic per seed, so a busy machine only costs time). mpirun's standard
# input is /dev/null: it would otherwise read what a calling loop reads.
set -euo pipefail
config=$1 data=$2 ranks=$3 seeds=$4
shift 4
bin=${DAE_DIST:-build/dae_dist}
out=${OUT:-runs/quality}
name=$(basename "$config" .ini)
mkdir -p "$out"
printf '%-14s %-6s %-10s %-13s %s\n' config seed clean_mse dead_clean dead_at_training_noise
sum=0 n=0
for seed in $seeds; do
  run="$out/$name-$seed"
  rm -rf "$run"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" "$bin" \
    --config "$config" --data "$data" --run-dir "$run" --seed "$seed" --threads 1 \
    --eval-noise 0 --checkpoint-every 0 "$@" < /dev/null > "$run.log" 2>&1
  # summary.json: "test_mse": {"0.0": MSE, ...}; metrics.csv: the last column of the clean row,
  # and of the other row (--eval-noise 0 evaluates at 0 and the training noise alone).
  mse=$(sed -n 's/.*"0\.0": \([0-9.e-]*\).*/\1/p' "$run/summary.json")
  dead=$(awk -F, '$3 == 0 { d = $8 } END { print d }' "$run/eval/metrics.csv")
  noisy=$(awk -F, 'NR > 1 && $3 != 0 { d = $8 } END { print d == "" ? "-" : d }' \
    "$run/eval/metrics.csv")
  printf '%-14s %-6s %-10.5f %-13s %s\n' "$name" "$seed" "$mse" "$dead" "$noisy"
  sum=$(awk -v s="$sum" -v m="$mse" 'BEGIN { print s + m }') n=$((n + 1))
done
awk -v s="$sum" -v n="$n" -v c="$name" 'BEGIN { printf "%-14s %-6s %-10.5f\n", c, "mean", s / n }'
