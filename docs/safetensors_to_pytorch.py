#!/usr/bin/env python3
"""The denoising autoencoder of a dae_export .safetensors file, rebuilt in plain PyTorch.

Copy this file next to your code; it needs torch and safetensors (pip install torch safetensors).
The file holds the weights under PyTorch's names and shapes, and the architecture in its
metadata, so nothing here is specific to one trained model:

    dae_export --run-dir runs/mnist --format safetensors --out dae.safetensors

    from safetensors_to_pytorch import load_denoiser, denoise
    model = load_denoiser("dae.safetensors")
    clean = denoise(model, noisy)  # noisy: [N, H, W], uint8 pixels or floats in [0, 1]

or, from the shell, on a .npy file of such images:

    python3 safetensors_to_pytorch.py dae.safetensors noisy.npy clean.npy
"""
import collections
import json
import sys

import torch
from safetensors import safe_open

KINDS = {"Conv2d": torch.nn.Conv2d, "ConvTranspose2d": torch.nn.ConvTranspose2d}
ACTIVATIONS = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid}


class Denoiser(torch.nn.Sequential):
    """The layers in order; `side_multiple` is what H and W must divide by to keep their size."""

    def __init__(self, layers, side_multiple):
        super().__init__(layers)
        self.side_multiple = side_multiple


def load_denoiser(path):
    with safe_open(path, framework="pt") as file:
        metadata = file.metadata()
        weights = {name: file.get_tensor(name) for name in file.keys()}
    layers = collections.OrderedDict()
    for layer in json.loads(metadata["layers"]):
        options = dict(stride=layer["stride"], padding=layer["padding"], bias=layer["bias"])
        if "output_padding" in layer:  # transposed convolutions only
            options["output_padding"] = layer["output_padding"]
        # Named as in the trainer, so the file's "encoder1.weight" lands on this layer's weight.
        layers[layer["name"]] = KINDS[layer["kind"]](
            layer["in_channels"], layer["out_channels"], layer["kernel_size"], **options)
        if layer["activation"] != "none":
            layers[layer["name"] + "_" + layer["activation"]] = ACTIVATIONS[layer["activation"]]()
    model = Denoiser(layers, int(metadata["side_multiple"]))
    model.load_state_dict(weights)  # strict: every name and shape must match
    return model.eval()


@torch.no_grad()
def denoise(model, images):
    """[N, H, W] images (uint8 pixels, or floats in [0, 1]) -> the network's output, float32
    [N, H, W], not clipped. Sides that are not multiples of model.side_multiple are padded by
    reflection at the bottom and right, and cropped back (as dae_denoise does)."""
    images = torch.as_tensor(images)
    # The scaling the network was trained with: 8-bit pixels / 255.
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % model.side_multiple, -width % model.side_multiple
    x = x[:, None]  # one channel
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return model(x)[:, 0, :height, :width]


if __name__ == "__main__":
    import numpy

    if len(sys.argv) != 4:
        sys.exit("usage: safetensors_to_pytorch.py MODEL.safetensors IN.npy OUT.npy")
    model = load_denoiser(sys.argv[1])
    numpy.save(sys.argv[3], denoise(model, numpy.load(sys.argv[2])).numpy())
