#!/usr/bin/env bash
# run_fuzzers.sh BUILD_DIR [SECONDS] [TARGET...]: runs each libFuzzer target of a DAE_FUZZ build
# for SECONDS (default 45) from its seed corpus and saved regressions; prints executions and
# time per target, and fails if any target found a crash, a leak, a timeout or an escaped
# exception (the input is then in BUILD_DIR/fuzz/artifacts/, ready for fuzz/regressions/).
set -euo pipefail
build=$(cd "$1" && pwd)
seconds=${2:-45}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx config data_file checkpoint)
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Huge allocations return NULL as they do without ASan (HDF5 then reports an error) instead of
# ASan aborting; leaks are reported, but for those lsan.supp proves to be inside HDF5.
export ASAN_OPTIONS=${DAE_FUZZ_ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export LSAN_OPTIONS=suppressions=$(dirname "$source_dir")/tests/hardening/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=()
total_runs=0
for target in "${targets[@]}"; do
  work=$build/fuzz/work/$target
  artifacts=$build/fuzz/artifacts
  mkdir -p "$work" "$artifacts"
  inputs=("$work" "$build/fuzz/corpus/$target")
  [ -d "$source_dir/regressions/$target" ] && inputs+=("$source_dir/regressions/$target")
  log=$build/fuzz/$target.log
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: LibTorch + ASan start near 0.8 GB.
  # A fixed -seed makes the mutation sequence the same every run, so CI is repeatable (a bounded
  # run only gets further on a faster machine); DAE_FUZZ_SEED=0 lets libFuzzer pick one.
  if "$build/fuzz/fuzz_$target" -seed="${DAE_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "${inputs[@]}" > "$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  time_s=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  total_runs=$(( total_runs + ${runs:-0} ))
  printf 'fuzz %-11s %-6s %9s executions in %4s s, corpus %s inputs\n' "$target" "$status" \
    "${runs:-?}" "${time_s:-?}" "$(find "$work" -type f | wc -l)"
  [ "$status" = ok ] || tail -n 60 "$log"
done
echo "fuzz: $total_runs executions in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]} (inputs in $build/fuzz/artifacts/)" >&2
  exit 1
fi
