#!/usr/bin/env bash
# Makes data/mnist.h5 for the main job, from the first source that works:
#   1. a directory of MNIST-format IDX files you name: launch/get_data.sh DIR
#   2. the official MNIST files, downloaded and checked against their SHA-256
#   3. Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist, same format), offline
# and says which one it used.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out=${DAE_DATA:-$DAE_ROOT/data/mnist.h5}
mkdir -p "$(dirname "$out")"
download_dir=$DAE_ROOT/data/mnist-official
declare -A MNIST_SHA256=(
  [train-images-idx3-ubyte.gz]=440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
  [train-labels-idx1-ubyte.gz]=3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
  [t10k-images-idx3-ubyte.gz]=8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
  [t10k-labels-idx1-ubyte.gz]=f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
)
MNIST_MIRRORS=(https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist)

download_official() {
  mkdir -p "$download_dir"
  local name
  for name in "${!MNIST_SHA256[@]}"; do
    local file=$download_dir/$name
    if ! echo "${MNIST_SHA256[$name]}  $file" | sha256sum -c --status 2>/dev/null; then
      local mirror fetched=no
      for mirror in "${MNIST_MIRRORS[@]}"; do
        curl -fsSL --connect-timeout 5 --max-time 120 -o "$file.part" "$mirror/$name" 2>/dev/null &&
          mv "$file.part" "$file" && fetched=yes && break
      done
      rm -f "$file.part"
      [ $fetched = yes ] || return 1
      echo "${MNIST_SHA256[$name]}  $file" | sha256sum -c --status ||
        { echo "get_data: $name: SHA-256 mismatch, not using it" >&2; rm -f "$file"; return 1; }
    fi
  done
}

if [ $# -ge 1 ]; then
  source_dir=$1
  label="the MNIST-format files in $source_dir"
elif download_official; then
  source_dir=$download_dir
  label="official MNIST (downloaded, SHA-256 verified)"
elif [ -d /usr/share/datasets/fashion-mnist ]; then
  source_dir=/usr/share/datasets/fashion-mnist
  label="Debian's Fashion-MNIST (official MNIST could not be downloaded)"
else
  echo "get_data: no data: official MNIST could not be downloaded and Debian's dataset-fashion-mnist is not installed; name a directory of MNIST-format files: launch/get_data.sh DIR" >&2
  exit 1
fi
"$DAE_BUILD/dae_prepare" --idx-dir "$source_dir" --out "$out"
echo "get_data: using $label -> $out"
