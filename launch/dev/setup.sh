#!/usr/bin/env bash
# Installs what is missing (Debian packages, the pinned torch wheel into .venv) and builds
# build/dae_prepare and build/dae_dist. Safe to run again: it skips what is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DEBIAN_PACKAGES=(build-essential cmake ninja-build python3 python3-venv curl ca-certificates
  libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libboost-program-options-dev libgtest-dev
  zlib1g-dev libpng-dev libmgl-dev dataset-fashion-mnist chromium
  libonnx-dev libprotobuf-dev nlohmann-json3-dev  # dae_export: ONNX (optional) and safetensors
  clang libclang-rt-14-dev)  # the sanitizer and libFuzzer build of launch/dev/hardening.sh

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The torch wheel is ~4 GB with its nvidia-* dependencies: install it once, reuse it after.
if ! "$DAE_VENV/bin/python" -c "import torch, h5py, numpy, tensorboard, onnxruntime, safetensors" \
    2>/dev/null; then
  echo "setup: installing $(grep -m1 '^torch' "$DAE_ROOT/launch/requirements.txt") into $DAE_VENV (once)"
  python3 -m venv "$DAE_VENV"
  "$DAE_VENV/bin/pip" install -q --upgrade pip
  "$DAE_VENV/bin/pip" install -q -r "$DAE_ROOT/launch/requirements.txt"
fi

# The `release` preset (CMakePresets.json), in $DAE_BUILD, with the Python whose torch we installed.
cmake -S "$DAE_ROOT" --preset release -B "$DAE_BUILD" -DDAE_PYTHON="$DAE_VENV/bin/python" \
  > "$DAE_BUILD.cmake.log" 2>&1 ||
  { cat "$DAE_BUILD.cmake.log"; exit 1; }
cmake --build "$DAE_BUILD"
