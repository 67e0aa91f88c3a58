#!/usr/bin/env bash
# Builds dae_dist on a GPU node against the PyTorch already installed there (pip, conda or a
# module): LibTorch from `python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'`.
# Open MPI, HDF5, Boost.Program_options, GoogleTest, libpng and MathGL come from the system when
# present; otherwise (or with DAE_USE_DEBS=1) from Debian packages in deps/debs (made by
# launch/dev/fetch_debs.sh elsewhere), unpacked into deps/prefix — never into /. The environment
# that runs them (OPAL_PREFIX, PATH, LD_LIBRARY_PATH) is then written to deps/env.sh: source it
# before running mpirun or the programs (launch/dev/gpu_check.sh does).
# Usage: launch/dev/build_gpu_node.sh [--check-only] [extra cmake options]; PYTHON=... picks the
# interpreter. --check-only stops after the checks of torch and the CUDA toolkit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_only=0
[ "${1:-}" = --check-only ] && { check_only=1; shift; }
python=${PYTHON:-python3}
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') ||
  { echo "build_gpu_node: $python has no torch; set PYTHON to the one that has" >&2; exit 1; }
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
echo "build_gpu_node: LibTorch $torch_version at $torch_prefix"

# find_package(Torch) of a CUDA wheel looks for a CUDA toolkit (nvcc, as CMake's CUDAToolkit
# does: CUDACXX, PATH, CUDA_HOME / CUDA_PATH, /usr/local/cuda) and fails deep in Caffe2's CMake
# without one; a toolkit of another major version than the wheel's CUDA builds against headers
# that do not match the runtime the wheel loads. So check both first, in one line each.
torch_cuda=$("$python" -c 'import torch; print(torch.version.cuda or "")')
cuda_root=
if [ -n "$torch_cuda" ]; then
  nvcc=
  for candidate in "${CUDACXX:-}" "$(command -v nvcc || true)" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" \
                   "${CUDA_PATH:+$CUDA_PATH/bin/nvcc}" "${DAE_CUDA_DEFAULT_ROOT:-/usr/local/cuda}/bin/nvcc"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { nvcc=$candidate; break; }
  done
  [ -n "$nvcc" ] ||
    { echo "build_gpu_node: torch $torch_version needs a CUDA ${torch_cuda%%.*} toolkit (nvcc) to build against, and none was found (load one, e.g. module load cuda/${torch_cuda%%.*}, or set CUDA_HOME)" >&2; exit 1; }
  nvcc_cuda=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
  [ -n "$nvcc_cuda" ] ||
    { echo "build_gpu_node: $nvcc --version does not say which CUDA release it is" >&2; exit 1; }
  [ "${nvcc_cuda%%.*}" = "${torch_cuda%%.*}" ] ||
    { echo "build_gpu_node: torch $torch_version was built with CUDA $torch_cuda but $nvcc is CUDA $nvcc_cuda: load a CUDA ${torch_cuda%%.*} toolkit (module load cuda/${torch_cuda%%.*}, or set CUDA_HOME)" >&2; exit 1; }
  cuda_root=$(cd "$(dirname "$nvcc")/.." && pwd)
  echo "build_gpu_node: CUDA $nvcc_cuda toolkit at $cuda_root (torch's CUDA: $torch_cuda)"
else
  echo "build_gpu_node: torch $torch_version has no CUDA: building the CPU-only dae_dist"
fi
[ "$check_only" = 1 ] && exit 0

prefix_path=$torch_prefix
have_system_deps() {
  command -v mpicxx >/dev/null && [ -e /usr/include/hdf5/serial/hdf5.h -o -e /usr/include/hdf5.h ] &&
    [ -e /usr/include/boost/program_options.hpp ] && [ -e /usr/include/gtest/gtest.h ] &&
    [ -e /usr/include/png.h ] && [ -e /usr/include/mgl2/mgl.h ]
}
# unpack_deb DEB DIR: dpkg -x, or on a node without dpkg (RHEL and kin) the same by ar and tar.
unpack_deb() {
  if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; return; fi
  local member
  member=$(ar t "$1" | grep '^data\.tar')
  case $member in
    *.xz) ar p "$1" "$member" | tar -xJ -C "$2" ;;
    *.zst) ar p "$1" "$member" | tar --zstd -x -C "$2" ;;
    *.gz) ar p "$1" "$member" | tar -xz -C "$2" ;;
    *) echo "build_gpu_node: $1: no data archive I can unpack" >&2; return 1 ;;
  esac
}
cmake_extra=()
rm -f "$DAE_ROOT/deps/env.sh"
if [ "${DAE_USE_DEBS:-0}" = 1 ] || ! have_system_deps; then
  debs=$DAE_ROOT/deps/debs
  local_prefix=$DAE_ROOT/deps/prefix
  ls "$debs"/*.deb >/dev/null 2>&1 ||
    { echo "build_gpu_node: system libraries missing and no $debs/*.deb; run launch/dev/fetch_debs.sh on a machine with the Debian mirror" >&2; exit 1; }
  mkdir -p "$local_prefix"
  for deb in "$debs"/*.deb; do unpack_deb "$deb" "$local_prefix"; done
  usr=$local_prefix/usr
  lib=$usr/lib/x86_64-linux-gnu
  # Debian's Open MPI was configured with prefix /usr (libraries and headers under
  # lib/x86_64-linux-gnu/openmpi, wrapper data and help under share/openmpi): OPAL_PREFIX moves
  # all of it to where it was unpacked.
  export OPAL_PREFIX=$usr
  # Debian names its launcher mpirun.openmpi; `mpirun` itself is an alternatives link dpkg -x
  # does not make. The scripts call `mpirun`.
  ln -sf mpirun.openmpi "$usr/bin/mpirun"
  ln -sf mpiexec.openmpi "$usr/bin/mpiexec"
  export PATH=$usr/bin:$PATH
  # The loader gets, as symlinks named by their SONAME in runtime-libs, Open MPI's and HDF5's
  # own libraries (an Open MPI or HDF5 runtime of another version on the node must not mix with
  # these headers and launchers) and of the rest only what the system's ldconfig lacks, so that
  # none shadows a library the node's own programs rely on.
  runtime=$local_prefix/runtime-libs
  rm -rf "$runtime" && mkdir -p "$runtime"
  system_libraries=$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p) | awk 'NR > 1 {print $1}')
  while IFS= read -r library; do
    soname=$(readelf -d "$library" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    soname=${soname:-$(basename "$library")}
    case $soname in
      libmpi*|libopen-pal*|libopen-rte*|libmca_common*|libpmix*|libhdf5*) ;;
      *) ! grep -qxF "$soname" <<< "$system_libraries" || continue ;;
    esac
    ln -sf "$library" "$runtime/$soname"
  done < <(find "$usr/lib" "$local_prefix/lib" -type f -name '*.so*' -not -path '*/openmpi3/*' \
             2>/dev/null)
  export LD_LIBRARY_PATH=$runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  prefix_path="$prefix_path;$usr;$lib/hdf5/serial"
  cmake_extra+=(-DMPI_CXX_COMPILER="$usr/bin/mpicxx.openmpi" -DMPIEXEC_EXECUTABLE="$usr/bin/mpirun.openmpi"
    -DHDF5_ROOT="$lib/hdf5/serial" -DBOOST_ROOT="$usr" -DGTest_ROOT="$usr" -DCMAKE_LIBRARY_PATH="$lib;$usr/lib"
    -DCMAKE_INCLUDE_PATH="$usr/include;$usr/include/hdf5/serial")
  printf 'export OPAL_PREFIX=%q PATH=%q LD_LIBRARY_PATH=%q\n' "$OPAL_PREFIX" "$PATH" \
    "$LD_LIBRARY_PATH" > "$DAE_ROOT/deps/env.sh"
  echo "build_gpu_node: using Debian packages unpacked in $local_prefix; to run: source deps/env.sh"
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# The toolkit checked above is the one find_package(Torch) is to use.
[ -n "$cuda_root" ] && cmake_extra+=(-DCUDAToolkit_ROOT="$cuda_root")
cmake -S "$DAE_ROOT" -B "$DAE_BUILD" "${generator[@]}" -DCMAKE_PREFIX_PATH="$prefix_path" \
  -DDAE_WITH_NCCL=AUTO "${cmake_extra[@]}" "$@"
cmake --build "$DAE_BUILD" -j "$(nproc)"
