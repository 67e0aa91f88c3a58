#!/usr/bin/env bash
# prove_suppressions.sh [BUILD_DIR]: the evidence behind tests/hardening/lsan.supp. Runs, in a
# DAE_SANITIZE build (default build-san), the 2-rank tests and the HDF5 regression inputs with
# no suppressions and full allocation stacks, then checks every leak report: the frames that
# allocated it, up to the first frame of ours, are third-party and one of them is named by a
# suppression. Prints the counts; fails otherwise.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${1:-$root/build-san}" && pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# log_path: one report file per process (ASan appends the pid), so two ranks' reports never
# interleave.
export LSAN_OPTIONS=print_suppressions=0
ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_leaks=1:log_path=$logs/mpi \
  mpiexec -np 2 --oversubscribe --allow-run-as-root --bind-to none "$build/tests/dae_mpi_tests" \
  > /dev/null 2>&1 || true
cat "$logs"/mpi.* > "$logs/mpi.log"
for target in checkpoint data_file; do
  for input in "$root/fuzz/regressions/$target"/*; do
    ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_leaks=1:allocator_may_return_null=1:log_path=$logs/hdf5 \
      "$build/fuzz/fuzz_$target" "$input" > /dev/null 2>&1 || true
  done
done
cat "$logs"/hdf5.* > "$logs/hdf5.log"

# One report per "Direct/Indirect leak" paragraph. Its frames from the allocator's caller (#1)
# up to the first frame of ours (src/, tests/, fuzz/) are where the memory was allocated: all of
# them must be third-party, and one must match a suppression pattern.
check() {
  awk -v patterns="$2" -v root="$root" '
    function flush() {
      if (!inside) return
      n = split(patterns, p, "|"); hit = "NONE (not suppressed)"
      for (i = 1; i <= n; i++) if (index(library_frames, p[i])) { hit = p[i]; break }
      if (allocated_by_us) hit = "OURS (allocated in our code)"
      count[hit]++; total++; inside = 0
    }
    /^(Direct|Indirect) leak of/ { flush(); inside = 1; ours_seen = 0; allocated_by_us = 0
                                   library_frames = ""; next }
    inside && /^ *#[0-9]+ / {
      if ($1 == "#0") next
      is_ours = index($0, root "/src/") || index($0, root "/tests/") || index($0, root "/fuzz/")
      if (is_ours && $1 == "#1") allocated_by_us = 1
      if (is_ours) ours_seen = 1
      if (!ours_seen) library_frames = library_frames " " $0
      next
    }
    { flush() }
    END { flush(); for (h in count) printf "  %5d reports allocated inside %s\n", count[h], h
          print "  " total + 0 " reports in all"
          exit (("NONE (not suppressed)" in count) || ("OURS (allocated in our code)" in count)) }
  ' "$1"
}
echo "mpi_np2 (dae_mpi_tests, 2 ranks):"
check "$logs/mpi.log" \
  "ompi_mpi_init|ompi_mpi_finalize|event_base_loop|_GLOBAL__sub_I_CachingHostAllocator.cpp"
echo "HDF5 regression inputs (fuzz_checkpoint, fuzz_data_file):"
check "$logs/hdf5.log" "libhdf5_serial.so"
echo "every leak was allocated inside a suppressed third-party frame"
