#!/usr/bin/env bash
# On a machine with Debian 12's package mirror: downloads the Debian packages dae_dist needs
# besides LibTorch into deps/debs/, for launch/dev/build_gpu_node.sh to unpack on a GPU node that
# has a PyTorch but lacks them (and may have no network).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# The -dev packages (headers, CMake files) and the shared libraries they and their libraries need
# at run time, down to what every Debian or Ubuntu base system has (libc6, libstdc++6, zlib1g...).
# On the node, build_gpu_node.sh exposes only those the system lacks.
PACKAGES=(
  # Open MPI: compiler wrappers, mpirun, libraries, transports
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libmunge2 libhwloc15 libnuma1
  libevent-2.1-7 libevent-pthreads-2.1-7 libevent-core-2.1-7 libfabric1 libucx0 libpsm2-2
  libpsm-infinipath1 librdmacm1 libibverbs1 ibverbs-providers libnl-3-200 libnl-route-3-200
  libltdl7
  # HDF5 (serial) and what libhdf5 loads: szip, libcurl and its protocols and TLS
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libcurl4 libnghttp2-14 librtmp1
  libssh2-1 libpsl5 libbrotli1 libldap-2.5-0 libsasl2-2 libsasl2-modules-db libgssapi-krb5-2
  libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libssl3
  # Boost.Program_options, GoogleTest, libpng, zlib headers
  libboost-program-options-dev libboost-program-options1.74.0 libboost1.74-dev libgtest-dev
  libpng-dev libpng16-16 zlib1g-dev
  # MathGL and its libraries (libGL through glvnd only: MathGL draws to PNG without a display)
  libmgl-dev libmgl8 libgsl27 libgslcblas0 libhpdf-2.3.0 libhdf4-0 libgif7 libjpeg62-turbo
  libgomp1 libgl1 libglvnd0 libglx0 libx11-6 libx11-data libxcb1 libxau6 libxdmcp6 libbsd0 libmd0
  libtirpc3 libtirpc-common libatomic1
)
mkdir -p "$DAE_ROOT/deps/debs"
cd "$DAE_ROOT/deps/debs"
apt-get download "${PACKAGES[@]}"
echo "fetch_debs: $(ls ./*.deb | wc -l) packages in $DAE_ROOT/deps/debs; copy deps/ to the GPU node"
