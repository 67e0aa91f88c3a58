#!/usr/bin/env bash
# On a machine with Debian 12's package mirror: downloads the Debian packages dae_dist needs
# besides LibTorch into deps/debs/, for launch/build_gpu_node.sh to unpack on a GPU node that
# has a PyTorch but lacks them (and may have no network).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PACKAGES=(libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15 libevent-2.1-7
  libevent-pthreads-2.1-7 libevent-core-2.1-7 libfabric1 libucx0 libpsm2-2 libpsm-infinipath1
  librdmacm1 libibverbs1 libnl-3-200 libnl-route-3-200 libhdf5-dev libhdf5-103-1 libhdf5-hl-100
  libsz2 libaec0 libcurl3-gnutls libboost-program-options-dev libboost-program-options1.74.0
  libboost1.74-dev libgtest-dev libpng-dev libpng16-16 libmgl-dev libmgl8 zlib1g-dev)
mkdir -p "$DAE_ROOT/deps/debs"
cd "$DAE_ROOT/deps/debs"
apt-get download "${PACKAGES[@]}"
echo "fetch_debs: $(ls ./*.deb | wc -l) packages in $DAE_ROOT/deps/debs; copy deps/ to the GPU node"
