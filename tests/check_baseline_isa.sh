#!/usr/bin/env bash
# Fails if the kernels' object file holds an AVX/AVX-512 instruction (a ymm/zmm/opmask register)
# outside the avx2:: and avx512:: variants, i.e. code a CPU without them would die on (SIGILL)
# before the run-time dispatch could choose the generic variant: a stray -march or -m flag, or a
# helper the target attributes did not reach. Usage: check_baseline_isa.sh OBJECT...
set -euo pipefail
status=0
for object in "$@"; do
  objdump -d --no-show-raw-insn -C "$object" | awk -v object="$object" '
    /^[0-9a-f]+ <.*>:$/ { function_name = $0; next }
    /%[yz]mm[0-9]|%k[0-7]/ && function_name !~ /::(avx2|avx512)::/ {
      if (!(function_name in reported)) print object ": outside the SIMD variants: " function_name
      reported[function_name] = 1; bad = 1
    }
    END { exit bad }' || status=1
done
[ "$status" = 0 ] && echo "no AVX instruction outside the avx2/avx512 variants in: $*"
exit $status
