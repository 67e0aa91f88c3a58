# Sourced by the launch scripts: paths, how to run Open MPI anywhere (as root, and with more
# ranks than cores) without the user setting anything, and what dae_dist says about its exit
# codes and stopped runs.
DAE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# An installed copy (share/dae_dist/launch/ of `cmake --install`) runs the programs of its
# prefix's bin/, not build/: install_layout.sh, which only an install has, names them.
if [ -f "$DAE_ROOT/launch/install_layout.sh" ]; then source "$DAE_ROOT/launch/install_layout.sh"; fi
DAE_BUILD=${DAE_BUILD:-$DAE_ROOT/build}
DAE_VENV=${DAE_VENV:-$DAE_ROOT/.venv}

# mpirun_flags RANKS: the flags our jobs need on this machine.
mpirun_flags() {
  local ranks=$1 flags=()
  [ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
  [ "$ranks" -gt "$(nproc)" ] && flags+=(--oversubscribe)
  echo "${flags[@]}"
}

# dae_exit_code NAME: dae_dist's exit code NAME (preempted: stopped on a signal with a checkpoint
# written, run it again), as the binary says (--print-exit-codes): no script keeps a copy that
# could drift from it. Empty when dae_dist does not run.
dae_exit_code() {
  "$DAE_BUILD/dae_dist" --print-exit-codes 2>/dev/null | sed -n "s/^$1=\([0-9]\{1,3\}\)\$/\1/p"
}

# dae_stopped_field RUN_DIR KEY: KEY (step, checkpoint, exit_code) of RUN_DIR/stopped.json, which
# a dae_dist run that a stop signal ended leaves, one key per line; a string without its quotes.
# Empty when there is none.
dae_stopped_field() {
  sed -n "s/^  \"$2\": \(.*\)\$/\1/p" "$1/stopped.json" 2>/dev/null |
    sed 's/,$//; s/^"\(.*\)"$/\1/; s/\\\(["\\]\)/\1/g'
}
