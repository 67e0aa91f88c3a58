#!/usr/bin/env bash
# The install (ctest `install`): `cmake --install BUILD --prefix` by an unprivileged user into a
# prefix of its own (as root: as nobody, with a temporary HOME; otherwise as the user running it),
# then, from a folder outside the repository and with a bare environment (no LD_LIBRARY_PATH),
# the installed programs on a tiny generated data set: dae_prepare, and a 20-step 2-rank dae_dist
# whose summary.json must appear. Also checks what the install holds, that every installed
# program, library and the CUDA plugin resolve their libraries (our own from the prefix), that the
# installed dae_dist loads the installed CUDA plugin, and that the installed scripts find the
# installed programs.
#   bash tests/check_install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dae_install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
if [ "$(id -u)" = 0 ]; then
  chown nobody: "$tmp"
  # cmake --install writes BUILD/install_manifest.txt, and root owns the build directory.
  install -o nobody -m 644 /dev/null "$build/install_manifest.txt"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  echo "install: as nobody into $tmp/prefix"
else
  as_user=()
  echo "install: as $(id -un) into $tmp/prefix"
fi
# What the build made decides what the install must hold.
optional=()
for library in libdae_onnx.so libdae_cuda.so; do
  [ -e "$build/$library" ] && optional+=("lib/$library")
done

"${as_user[@]}" env -i PATH=/usr/bin:/bin HOME="$tmp/home" TMPDIR="$tmp" \
  BUILD="$build" P="$tmp/prefix" OPTIONAL="${optional[*]}" bash -euo pipefail -c '
mkdir -p "$HOME" "$TMPDIR/work"
cmake --install "$BUILD" --prefix "$P" > "$TMPDIR/install.log" || { cat "$TMPDIR/install.log"; exit 1; }
cd "$TMPDIR/work"  # outside the repository from here on

missing=0
for file in bin/dae_dist bin/dae_prepare bin/dae_denoise bin/dae_export \
    lib/libdae_{core,io,data,model,distributed,train,eval}.so $OPTIONAL \
    share/dae_dist/configs/mnist.ini share/dae_dist/slurm/train_{single,multi}_node{,_gpu}.sbatch \
    share/dae_dist/launch/{common,job_control,install_layout}.sh share/dae_dist/launch/resume_loop.sh \
    share/doc/dae_dist/README.md; do
  [ -e "$P/$file" ] || { echo "install: $file missing"; missing=1; }
done
[ "$missing" = 0 ]
# Every dependency found without LD_LIBRARY_PATH, and ours in the prefix, not the build tree.
for file in "$P"/bin/dae_* "$P"/lib/libdae_*.so; do
  deps=$(ldd "$file")
  if grep -q "not found" <<< "$deps"; then echo "install: $file: $(grep "not found" <<< "$deps")"; exit 1; fi
  outside=$(awk "/libdae_/ { print \$3 }" <<< "$deps" | xargs -r realpath | grep -v "^$P/lib/" || true)
  [ -z "$outside" ] || { echo "install: $file loads $outside, not from $P/lib"; exit 1; }
done
# The installed scripts: the launch scripts run the installed programs, and the sbatch scripts
# source the installed launch scripts (Slurm runs a copy of them, not the file).
[ "$(bash -c "source \"$P/share/dae_dist/launch/common.sh\" && echo \$DAE_BUILD")" = "$P/bin" ] ||
  { echo "install: common.sh does not point at $P/bin"; exit 1; }
grep -q "^source \"\${DAE_HOME:-$P/share/dae_dist}/launch/job_control.sh\"" \
  "$P/share/dae_dist/slurm/train_single_node.sbatch" ||
  { echo "install: train_single_node.sbatch does not source the installed job_control.sh"; exit 1; }

# 40 training and 20 test images, 28 x 28: a bright square on a dark field.
python3 - idx <<"PY"
import os, struct, sys
os.makedirs(sys.argv[1], exist_ok=True)
def write(prefix, count):
    pixels = bytes(200 if (i % 20) <= y < (i % 20) + 8 and 10 <= x < 18 else (7 * i + x + y) % 40
                   for i in range(count) for y in range(28) for x in range(28))
    with open(f"{sys.argv[1]}/{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, 28, 28) + pixels)
    with open(f"{sys.argv[1]}/{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, count) + bytes(i % 10 for i in range(count)))
write("train", 40)
write("t10k", 20)
PY
"$P/bin/dae_prepare" --idx-dir idx --out data.h5 > prepare.log 2>&1 || { cat prepare.log; exit 1; }
mpirun -np 2 --oversubscribe --bind-to none "$P/bin/dae_dist" --data data.h5 --run-dir run \
  --steps 20 --batch-size 10 --log-every 10 --eval-noise 0.5 > dist.log 2>&1 || { cat dist.log; exit 1; }
[ -s run/summary.json ] || { cat dist.log; echo "install: no run/summary.json"; exit 1; }
# The CUDA plugin, where built: the installed dae_dist must load the installed one (from the folder of
# libdae_distributed.so). Without a GPU it then stops at "no CUDA device is visible".
if [ -e "$P/lib/libdae_cuda.so" ]; then
  LD_DEBUG=files "$P/bin/dae_dist" --data data.h5 --run-dir run_cuda --steps 2 --batch-size 10 \
    --eval-noise 0 --device cuda > cuda.log 2>&1 || true
  if ! grep -q "file=$P/[^ ]*/libdae_cuda\.so .*dynamically loaded" cuda.log ||
     grep -q "could not be loaded" cuda.log; then
    grep -v "^ *[0-9]*:" cuda.log; echo "install: the installed dae_dist did not load $P/lib/libdae_cuda.so"; exit 1
  fi
fi
echo "install: $(ls "$P"/bin | wc -l) programs, $(ls "$P"/lib | wc -l) libraries; dae_prepare and a 2-rank dae_dist ran from $P"
'
