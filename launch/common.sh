# Sourced by the launch scripts: paths, and how to run Open MPI anywhere (as root, and with more
# ranks than cores) without the user setting anything.
DAE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DAE_BUILD=${DAE_BUILD:-$DAE_ROOT/build}
DAE_VENV=${DAE_VENV:-$DAE_ROOT/.venv}

# mpirun_flags RANKS: the flags our jobs need on this machine.
mpirun_flags() {
  local ranks=$1 flags=()
  [ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
  [ "$ranks" -gt "$(nproc)" ] && flags+=(--oversubscribe)
  echo "${flags[@]}"
}
