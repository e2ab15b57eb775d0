"""Checkpoints: a model's config and weights (plus, for resuming, the training state).

Loading uses torch.load(weights_only=True): a file can hold tensors, numbers, strings, lists and
dicts, never code to run. Writes go through files.atomic_write, so a run killed mid-write leaves the previous
checkpoint intact.
"""
import hashlib
import pickle
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from ..model import complete_config, model_from_config
from .files import atomic_write

FORMAT = "capsnet_lib/checkpoint"
VERSION = 1
PRETRAINED_FILE = "capsnet_mnist.pt"


@dataclass
class Checkpoint:
    model: torch.nn.Module                      # a CapsNet or the BaselineCNN
    config: dict
    extra: dict = field(default_factory=dict)   # training state and metadata, as saved


def atomic_save(obj, path):
    """torch.save, whole or not at all (files.atomic_write)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def tensor_checksum(state_dict):
    """SHA-256 over every tensor's name, dtype, shape and bytes: a flipped byte anywhere changes it."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path, model, dtype=None, **extra):
    """Save `model`'s config and weights (cast to `dtype`, e.g. torch.float16, if given) and any
    `extra` entries (tensors, numbers, strings, lists, dicts) to `path`, atomically."""
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    atomic_save({"format": FORMAT, "version": VERSION, "config": model.config_dict(),
                 "state_dict": state, "checksum": tensor_checksum(state), "extra": extra}, path)


def load_checkpoint(path, model=None, map_location="cpu"):
    """Load a checkpoint into a new model built from its config (a CapsNet, or the baseline CNN),
    or into `model`, whose config must match. Returns Checkpoint(model, config, extra); the
    model's weights are float32."""
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {path / 'best.pt'}?" if (path / "best.pt").is_file() else ""
        raise ValueError(f"checkpoint {path} is a folder, not a .pt file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):       # torch.save writes a zip archive
        raise ValueError(f"checkpoint {path} is truncated, corrupt or not a checkpoint "
                         "(it is not a PyTorch zip archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"checkpoint {path} holds Python objects other than tensors and plain data; "
                         "capsnet_lib never unpickles those, because they can run code") from None
    except Exception as error:
        raise ValueError(f"checkpoint {path} is truncated, corrupt or not a checkpoint: "
                         f"{str(error).splitlines()[0]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a capsnet_lib checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has format version {payload.get('version')}, "
                         f"this capsnet_lib reads version {VERSION}")
    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict) or not isinstance(payload.get("extra", {}), dict):
        raise ValueError(f"checkpoint {path} is incomplete: it needs a 'config' dict, a 'state_dict' dict and "
                         f"an 'extra' dict, and has {sorted(payload)}")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} is corrupt: its state_dict holds non-tensors")
    # Files written before checksums existed (the shipped model among them) have none to verify.
    if "checksum" in payload and payload["checksum"] != tensor_checksum(state):
        raise ValueError(f"checkpoint {path} is corrupt: checksum mismatch (its weights are not the ones saved)")
    config = _complete(config, path)       # defaults for fields added after the file was written
    if model is None:
        try:
            model = model_from_config(config).float()    # float32 whatever the default dtype
        except (TypeError, ValueError) as error:
            raise ValueError(f"checkpoint {path} has an unusable model config {config}: {error}") from None
    elif model.config_dict() != config:
        differ = {k: (config.get(k), v) for k, v in model.config_dict().items() if config.get(k) != v}
        raise ValueError(f"checkpoint {path} is for another configuration: "
                         + ", ".join(f"{k} is {a} in the file but {b} in the model"
                                     for k, (a, b) in differ.items()))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    check_fits(state, model.state_dict(), path)
    model.load_state_dict(state)
    return Checkpoint(model, config, payload.get("extra", {}))


def check_fits(state, expected, path):
    """Name the missing, unexpected and reshaped weights of a state dict that does not fit, then its
    non-finite ones."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    reshaped = [f"{k} {tuple(state[k].shape)} instead of {tuple(expected[k].shape)}"
                for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected {', '.join(unexpected)}"] if unexpected else []) + \
               ([f"wrong shapes: {'; '.join(reshaped)}"] if reshaped else [])
    if problems:
        raise ValueError(f"checkpoint {path} does not fit the model: " + "; ".join(problems))
    check_finite(state, path)


def check_finite(state, path):
    """Refuse weights holding nan or inf (a diverged run, or values beyond float16's 65504 saved as
    float16): such a model's capsule lengths are nan and every prediction would be class 0."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"checkpoint {path} holds nan or inf weights ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}): its run diverged or a float16 save overflowed; "
                         "it can neither predict nor be trained further")


def pretrained_path():
    return Path(str(resources.files("capsnet_lib") / "pretrained" / PRETRAINED_FILE))


def load_pretrained():
    """The shipped CapsNet trained on MNIST, in eval mode on the CPU (see the README for how)."""
    path = pretrained_path()
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained checkpoint {path} is missing from this install")
    return load_checkpoint(path).model.eval()


def _complete(config, path):
    try:
        return complete_config(config)
    except TypeError as error:
        raise ValueError(f"checkpoint {path} has an unusable model config {config}: {error}") from None
