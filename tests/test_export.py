#!/usr/bin/env python3
"""ctest `export`: dae_export as a user runs it.

A tiny conv network (sigmoid output, so every node kind the export writes is there), trained 30
steps on one rank, is exported as ONNX and as safetensors. onnxruntime running the ONNX file, and
docs/safetensors_to_pytorch.py's network built from the safetensors file, must give dae_denoise's
output on 256 test digits and on one 100x60 image to 1e-5 (max abs). Each refusal (an mlp
checkpoint, a corrupt one, an existing --out without --overwrite, --out naming the checkpoint) is
one line and exit 1, and leaves the files as they were.

usage: test_export.py BUILD_DIR SOURCE_DIR MPIEXEC ONNX   (ONNX: ON when dae_export has ONNX)
Run with the Python of launch/dev/setup.sh's venv (numpy, h5py, torch, onnxruntime, safetensors).
"""
import hashlib
import importlib.util
import json
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

TOLERANCE = 1e-5
TEST_DIGITS = 256


def strokes(count, height, width, rng):
    """`count` uint8 images of two soft line segments each: digit-like, like tests/fixtures."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    images = np.zeros((count, height, width))
    for image in images:
        for _ in range(2):
            x0, x1 = 0.2 * width + 0.6 * width * rng.random(2)
            y0, y1 = 0.2 * height + 0.6 * height * rng.random(2)
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
            distance2 = (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2
            np.maximum(image, 255 * np.exp(-distance2 / 2), out=image)
    return images.astype(np.uint8)


def write_idx_dir(folder, train, test):
    folder.mkdir()
    for prefix, images in (("train", train), ("t10k", test)):
        count = len(images)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">4B3I", 0, 0, 8, 3, count, 28, 28) + images.tobytes())
        labels = (np.arange(count) % 10).astype(np.uint8)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">4BI", 0, 0, 8, 1, count) + labels.tobytes())


class Check:
    def __init__(self):
        self.failures = 0

    def __call__(self, condition, message):
        print(("ok    " if condition else "FAIL  ") + message)
        self.failures += not condition


def run(*command, timeout=120):
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def main(build, source, mpiexec, with_onnx):
    check = Check()
    work = pathlib.Path(tempfile.mkdtemp(prefix="dae_export_test_"))
    try:
        rng = np.random.default_rng(5)
        write_idx_dir(work / "idx", strokes(300, 28, 28, rng), strokes(TEST_DIGITS, 28, 28, rng))
        data = work / "data.h5"
        code, output = run(build / "dae_prepare", "--idx-dir", work / "idx", "--out", data)
        assert code == 0, output
        # As tests/fixtures.cpp runs it: allowed as root and on any core count.
        mpirun = [mpiexec, "-np", "1", "--oversubscribe", "--allow-run-as-root",
                  "--bind-to", "none"]
        for run_dir, args in (("conv", ["--steps", "30", "--output-activation", "sigmoid"]),
                              ("mlp", ["--steps", "5", "--model", "mlp"])):
            code, output = run(*mpirun, build / "dae_dist", "--data", data,
                               "--run-dir", work / run_dir, "--eval-noise", "0", *args)
            assert code == 0, output
        checkpoint = work / "conv" / "checkpoints" / "ckpt_00000030.h5"
        mlp_checkpoint = work / "mlp" / "checkpoints" / "ckpt_00000005.h5"

        # The references: dae_denoise on the test digits and on one 100x60 image (both sides
        # multiples of 4, so nothing is padded).
        wide = work / "wide.h5"
        with h5py.File(wide, "w") as file:
            file["/test/images"] = strokes(1, 100, 60, rng)
        inputs, references = {}, {}
        for name, path in (("256 test digits", data), ("one 100x60 image", wide)):
            out = work / ("denoised_" + path.name)
            code, output = run(build / "dae_denoise", "--checkpoint", checkpoint,
                               "--dataset", "/test/images", path, "--out", out)
            assert code == 0, output
            with h5py.File(path) as file_in, h5py.File(out) as file_out:
                inputs[name] = file_in["/test/images"][()].astype(np.float32) / 255
                references[name] = file_out["/test/images"][()]

        exported = work / "exported"
        exported.mkdir()
        onnx_path, safetensors_path = exported / "dae.onnx", exported / "dae.safetensors"
        code, output = run(build / "dae_export", "--run-dir", work / "conv",
                           "--format", "safetensors", "--out", safetensors_path)
        check(code == 0, f"safetensors export from --run-dir: {output.strip()}")
        check_safetensors_file(check, safetensors_path, checkpoint)
        code, output = run(build / "dae_export", "--checkpoint", checkpoint,
                           "--format", "onnx", "--out", onnx_path)
        if with_onnx:
            check(code == 0, f"onnx export: {output.strip()}")
            check_onnx_file(check, onnx_path, inputs, references)
        else:
            check(code == 1 and "built without ONNX" in output,
                  f"without ONNX, --format onnx is refused: {output.strip()}")

        spec = importlib.util.spec_from_file_location(
            "safetensors_to_pytorch", source / "docs" / "safetensors_to_pytorch.py")
        to_pytorch = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(to_pytorch)
        model = to_pytorch.load_denoiser(safetensors_path)
        for name, images in inputs.items():
            got = to_pytorch.denoise(model, images).numpy()
            difference = float(np.abs(got - references[name]).max())
            check(difference <= TOLERANCE, f"docs/safetensors_to_pytorch.py = dae_denoise on "
                                           f"{name}: max abs {difference:.2e}")

        check_refusals(check, build, work, checkpoint, mlp_checkpoint, safetensors_path)
        leftovers = sorted(p.name for p in exported.iterdir())
        expected = sorted(["dae.safetensors", "existing.safetensors"] +
                          (["dae.onnx"] if with_onnx else []))
        check(leftovers == expected, f"nothing else left in the output folder: {leftovers}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"export: {check.failures} failed" if check.failures else "export: all passed")
    return 1 if check.failures else 0


def check_safetensors_file(check, path, checkpoint):
    """The format's rules, read by hand, and the weights bit for bit as the checkpoint has them."""
    blob = path.read_bytes()
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_size])
    check(header_size % 8 == 0, f"safetensors header padded to a multiple of 8 ({header_size})")
    tensors = sorted((entry["data_offsets"], name) for name, entry in header.items()
                     if name != "__metadata__")
    ends = [0] + [offsets[1] for offsets, _ in tensors]
    check([offsets[0] for offsets, _ in tensors] == ends[:-1] and
          ends[-1] == len(blob) - 8 - header_size, "safetensors data offsets tile the data")
    metadata = header["__metadata__"]
    check(metadata["step"] == "30" and metadata["producer"] == "dae_export" and
          metadata["output_activation"] == "sigmoid" and metadata["side_multiple"] == "4",
          f"safetensors metadata: step, producer, output activation, side ({metadata['step']})")
    with h5py.File(checkpoint) as file:
        parameters = {name: file["model"][name][()] for name in file["model"]}
    from safetensors.numpy import load_file
    weights = load_file(path)
    check(weights.keys() == parameters.keys() and
          all(weights[name].dtype == np.float32 and np.array_equal(weights[name], value)
              for name, value in parameters.items()),
          f"safetensors weights = the checkpoint's /model/*: {sorted(weights)}")


def check_onnx_file(check, path, inputs, references):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (graph_input,), (graph_output,) = session.get_inputs(), session.get_outputs()
    check(graph_input.shape == ["batch", 1, "height", "width"] and
          graph_output.shape == ["batch", 1, "height", "width"],
          f"onnx input and output dims: {graph_input.shape}, {graph_output.shape}")
    meta = session.get_modelmeta()
    check(meta.producer_name == "dae_export" and meta.custom_metadata_map.get("step") == "30" and
          "pixel / 255" in meta.custom_metadata_map.get("input_scaling", "") and
          "multiples of 4" in meta.description,
          f"onnx metadata: producer, step, input scaling, doc_string ({meta.custom_metadata_map})")
    for name, images in inputs.items():
        (got,) = session.run(None, {graph_input.name: images[:, None]})
        difference = float(np.abs(got[:, 0] - references[name]).max())
        check(difference <= TOLERANCE,
              f"onnxruntime = dae_denoise on {name}: max abs {difference:.2e}")
    try:
        import onnx
    except ImportError:
        print("skip  onnx.checker (no onnx package)")
        return
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    check(model.ir_version == 8 and [o.version for o in model.opset_import] == [17],
          "onnx.checker passes; IR version 8, opset 17")


def check_refusals(check, build, work, checkpoint, mlp_checkpoint, safetensors_path):
    def refused(args, expected, what):
        code, output = run(build / "dae_export", *args)
        check(code == 1 and output.startswith("dae_export: ") and output.count("\n") == 1 and
              expected in output, f"{what}: {output.strip()}")

    out = safetensors_path.parent
    refused(["--checkpoint", mlp_checkpoint, "--format", "safetensors", "--out", out / "mlp"],
            f"{mlp_checkpoint}: an mlp model; dae_export writes the conv network only",
            "an mlp checkpoint is refused")
    corrupt = work / "corrupt.h5"
    blob = bytearray(checkpoint.read_bytes())
    with h5py.File(checkpoint) as file:  # one chunk, under a Fletcher-32 checksum
        stored = file["/model/encoder2.weight"].id.get_chunk_info(0)
    blob[stored.byte_offset + 100] ^= 0x40  # one bit of one weight
    corrupt.write_bytes(blob)
    refused(["--checkpoint", corrupt, "--format", "safetensors", "--out", out / "corrupt"],
            str(corrupt), "a checkpoint with a flipped bit is refused")
    corrupt.write_bytes(blob[:len(blob) // 3])
    refused(["--checkpoint", corrupt, "--format", "safetensors", "--out", out / "corrupt"],
            str(corrupt), "a truncated checkpoint is refused")

    existing = out / "existing.safetensors"
    existing.write_bytes(b"keep me")
    refused(["--checkpoint", checkpoint, "--format", "safetensors", "--out", existing],
            "exists (--overwrite replaces it)", "an existing --out is refused")
    check(existing.read_bytes() == b"keep me", "the existing --out is untouched")
    code, output = run(build / "dae_export", "--checkpoint", checkpoint, "--format",
                       "safetensors", "--out", existing, "--overwrite")
    check(code == 0 and existing.read_bytes() == safetensors_path.read_bytes(),
          f"--overwrite replaces it with the same bytes: {output.strip()}")
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    refused(["--checkpoint", checkpoint, "--format", "safetensors", "--out", checkpoint,
             "--overwrite"], "is the checkpoint", "--out naming the checkpoint is refused")
    check(hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before,
          "the checkpoint is untouched")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3],
                  sys.argv[4].upper() in ("ON", "1", "TRUE")))
