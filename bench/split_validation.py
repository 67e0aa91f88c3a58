#!/usr/bin/env python3
"""Writes a validation copy of an MNIST IDX folder: the first N training images stay training
images, the rest of the training set becomes the "test" set (the real test files are not read),
so recipes can be chosen without looking at the test digits (README, "A recipe for every seed").
With --seen, every training image stays a training image and the "test" set is the first N of
them: what a trained network scores on digits it has seen (the gap to the real test digits says
how much more training data could help).

    python3 bench/split_validation.py ../shared/data/mnist-digits data/val-idx 8000
    build/dae_prepare --idx-dir data/val-idx --out data/val.h5
    python3 bench/split_validation.py --seen ../shared/data/mnist-digits data/seen-idx 1000
    python3 bench/split_validation.py data/mnist-pypi data/mnist-val-idx 55000
"""
import gzip
import os
import sys


def read_idx(path):
    """Reads `path`.gz, or `path` where only the uncompressed file is there (data/mnist-pypi)."""
    data = gzip.open(path + ".gz").read() if os.path.exists(path + ".gz") else open(path, "rb").read()
    dims = data[3]  # magic: 0, 0, type, number of dimensions
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return data[:4], shape, data[4 + 4 * dims:]


def write_idx(path, magic, shape, body):
    header = magic + b"".join(n.to_bytes(4, "big") for n in shape)
    with gzip.open(path, "wb") as out:
        out.write(header + body)


def main():
    args = sys.argv[1:]
    seen = args[:1] == ["--seen"]
    if seen:
        args = args[1:]
    source, target, n = args[0], args[1], int(args[2]) if len(args) > 2 else 8000
    os.makedirs(target, exist_ok=True)
    for kind in ("images-idx3", "labels-idx1"):
        magic, shape, body = read_idx(os.path.join(source, f"train-{kind}-ubyte"))
        row = len(body) // shape[0]  # bytes per image (784) or label (1)
        train = shape[0] if seen else n
        test = body[:n * row] if seen else body[n * row:]
        write_idx(os.path.join(target, f"train-{kind}-ubyte.gz"), magic, [train] + shape[1:],
                  body[:train * row])
        write_idx(os.path.join(target, f"t10k-{kind}-ubyte.gz"), magic,
                  [len(test) // row] + shape[1:], test)


if __name__ == "__main__":
    main()
