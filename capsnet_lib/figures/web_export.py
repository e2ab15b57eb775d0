"""What the web page of Figure 4 needs to run with no Python: the decoder's weights and digit capsules.

`export` writes, for a model and some test digits (`python -m capsnet_lib.web_export` runs it):
- decoder.bin: the decoder's weights and biases in float16, little-endian, one layer after the
  other (weight (out, in) row-major, then bias (out,)), as decoder.json lists them;
- decoder.json: those layers' names, shapes, byte offsets and activations;
- digits.json: for each digit its 28x28 pixels (base64 of uint8), label, prediction and its ten
  16D digit capsules (base64 of float16, little-endian, (10, 16) row-major), which the page
  perturbs and decodes.
"""
import base64
import json
import os
from pathlib import Path

import torch

from ..data.mnist import to_float
from ..model import require_decoder
from ..training.files import atomic_write
from ..training.run_folder import make_writable


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
