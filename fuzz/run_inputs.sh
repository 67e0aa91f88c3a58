#!/bin/sh
# run_inputs.sh TARGET DIR...: runs fuzz program TARGET once on every file under the DIRs
# (missing DIRs are skipped) and fails if it fails on any. libFuzzer programs and the replay
# programs both treat file arguments this way.
set -eu
target=$1
shift
files=""
for dir in "$@"; do
  [ -d "$dir" ] && files="$files $(find "$dir" -type f ! -name '.*' ! -name '*.md' | sort)"
done
[ -n "$(echo $files)" ] || { echo "run_inputs: no inputs under $*" >&2; exit 1; }
# -timeout: libFuzzer's default for file arguments is 20 minutes; an input is a hang after 10 s.
# shellcheck disable=SC2086 # the names are generated or content hashes: no spaces
exec "$target" -timeout=10 $files
