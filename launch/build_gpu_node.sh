#!/usr/bin/env bash
# Builds dae_dist on a GPU node against the PyTorch already installed there (pip, conda or a
# module): LibTorch from `python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'`.
# Open MPI, HDF5, Boost.Program_options, GoogleTest, libpng and MathGL come from the system when
# present; otherwise (or with DAE_USE_DEBS=1) from Debian packages in deps/debs (made by
# launch/fetch_debs.sh elsewhere), unpacked into deps/prefix — never into /. The environment that
# runs them (OPAL_PREFIX, PATH, LD_LIBRARY_PATH) is then written to deps/env.sh: source it before
# running mpirun or the programs (launch/gpu_check.sh does).
# Usage: launch/build_gpu_node.sh [extra cmake options]; PYTHON=... picks the interpreter.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

python=${PYTHON:-python3}
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') ||
  { echo "build_gpu_node: $python has no torch; set PYTHON to the one that has" >&2; exit 1; }
echo "build_gpu_node: LibTorch $("$python" -c 'import torch; print(torch.__version__)') at $torch_prefix"

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
    { echo "build_gpu_node: system libraries missing and no $debs/*.deb; run launch/fetch_debs.sh on a machine with the Debian mirror" >&2; exit 1; }
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
cmake -S "$DAE_ROOT" -B "$DAE_BUILD" "${generator[@]}" -DCMAKE_PREFIX_PATH="$prefix_path" \
  -DDAE_WITH_NCCL=AUTO "${cmake_extra[@]}" "$@"
cmake --build "$DAE_BUILD" -j "$(nproc)"
