"""`python -m capsnet_lib.web_export`: what the web page of Figure 4 needs to run with no Python.

    python -m capsnet_lib.web_export --out docs/_static/figure4

Writes, from the shipped model (or --checkpoint) and the first --digits test images:
- decoder.bin: the decoder's weights and biases in float16, little-endian, one layer after the
  other (weight (out, in) row-major, then bias (out,)), as decoder.json lists them;
- decoder.json: those layers' names, shapes, byte offsets and activations;
- digits.json: for each digit its 28x28 pixels (base64 of uint8), label, prediction and its ten
  16D digit capsules (base64 of float16, little-endian, (10, 16) row-major), which the page
  perturbs and decodes.
"""
import argparse
import base64
import json
import os
import sys
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, load_pretrained
from .cli import reports_errors
from .data import DATA_ENV_VAR, load_mnist, to_float
from .files import atomic_write
from .model import require_decoder
from .run_folder import make_writable

ACTIVATIONS = {torch.nn.ReLU: "relu", torch.nn.Sigmoid: "sigmoid"}


def decoder_layers(model):
    """[(name, Linear, activation)] of the decoder's three layers, in order."""
    modules = list(model.decoder.net.named_children())
    return [(name, layer, ACTIVATIONS[type(modules[k + 1][1])])
            for k, (name, layer) in enumerate(modules) if isinstance(layer, torch.nn.Linear)]


def export_decoder(model):
    """(bytes of decoder.bin, the decoder.json dict)."""
    blobs, layers, offset = [], [], 0
    for name, layer, activation in decoder_layers(model):
        weight = layer.weight.detach().to(torch.float16).contiguous().numpy().astype("<f2").tobytes()
        bias = layer.bias.detach().to(torch.float16).numpy().astype("<f2").tobytes()
        layers.append({"name": f"decoder.net.{name}", "in": layer.in_features, "out": layer.out_features,
                       "weight_offset": offset, "bias_offset": offset + len(weight), "activation": activation})
        blobs += [weight, bias]
        offset += len(weight) + len(bias)
    return b"".join(blobs), {"dtype": "float16", "byte_order": "little", "layers": layers, "bytes": offset}


@torch.no_grad()
def export_digits(model, images, labels):
    """The digits.json dict for uint8 images (N, 28, 28) and labels (N,)."""
    out = model.eval()(to_float(images))
    capsules = out.digit_caps.to(torch.float16).numpy().astype("<f2")        # (N, 10, 16)
    as_text = lambda array: base64.b64encode(array.tobytes()).decode("ascii")
    return {"capsule_shape": list(capsules.shape[1:]), "digits": [
        {"pixels": as_text(images[k].contiguous().numpy()), "label": int(labels[k]),
         "prediction": int(out.lengths[k].argmax()), "capsules": as_text(capsules[k])}
        for k in range(images.shape[0])]}


def export(model, images, labels, out):
    """Write decoder.bin, decoder.json and digits.json into `out`: all three or none. Everything is
    computed before the first write, so a model the page cannot use leaves a good export as it was."""
    require_decoder(model)
    if model.config.image_size != 28:
        raise ValueError(f"the page draws 28x28 MNIST digits; this CapsNet takes "
                         f"{model.config.image_size}x{model.config.image_size} images")
    out = Path(out)
    weights, manifest = export_decoder(model)
    contents = {"decoder.bin": weights, "decoder.json": (json.dumps(manifest, indent=1) + "\n").encode(),
                "digits.json": (json.dumps(export_digits(model, images, labels)) + "\n").encode()}
    make_writable(out)
    staged = {name: out / f".{name}.staged" for name in contents}
    try:                                         # write all three beside their targets, then rename them
        for name, content in contents.items():
            atomic_write(staged[name], lambda f: f.write(content))
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    for name, path in staged.items():            # renames within a folder do not fail for lack of space
        os.replace(path, out / name)
    return {name: len(content) for name, content in contents.items()}


@reports_errors
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m capsnet_lib.web_export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/_static/figure4", help="folder for the three files")
    p.add_argument("--checkpoint", default=None, help="a CapsNet checkpoint with a decoder (default: the shipped model)")
    p.add_argument("--digits", type=int, default=100, help="how many test digits, from the first (default 100)")
    p.add_argument("--data-root", default=None, help=f"MNIST root (default: ${DATA_ENV_VAR} or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false")
    args = p.parse_args(argv)
    if not 1 <= args.digits <= 10_000:
        raise ValueError(f"--digits must be in 1..10000, got {args.digits}")
    model = load_checkpoint(args.checkpoint).model if args.checkpoint else load_pretrained()
    images, labels = load_mnist("test", args.data_root, args.download)
    sizes = export(model, images[:args.digits], labels[:args.digits], args.out)
    print(", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()) + f" in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
