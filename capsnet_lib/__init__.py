"""capsnet_lib: the Capsule Network of "Dynamic Routing Between Capsules" (Sabour et al., 2017).

The model, its training and evaluation are importable from here (`import capsnet_lib as cl`).
The notebooks also import a few modules by name: viz (the paper's figures), panel (the Fig. 4
slider widget), dimensions (what each capsule dimension does, measured), exercises (the
exercise checks), and for Sec. 5.2 and 6 translated, multimnist, tasks and robustness. Modules
by topic: capsules (squash, PrimaryCaps, routing, DigitCaps), losses, model, data, schedules and
recipes, train, evaluate, runtime (device, precision, layout), checkpoint, cli (commands' errors).
"""
import importlib

from .capsules import DigitCaps, PrimaryCaps, capsule_length, dynamic_routing, squash
from .checkpoint import Checkpoint, load_checkpoint, load_pretrained, save_checkpoint
from .data import batches, load_mnist, random_shift, to_float
from .device import pick_device
from .losses import RECONSTRUCTION_WEIGHT, capsnet_loss, margin_loss, reconstruction_loss
from .model import NUM_CLASSES, BaselineCNN, CapsNet, CapsNetConfig, CapsNetOutput, Decoder
from .precision import autocast, resolve_precision
from .runtime import Runtime, setup_runtime, tune_cpu_allocator
from .schedules import make_schedule

# The command modules (python -m capsnet_lib.train, .evaluate) are imported on first use, not here:
# a module that the package has already imported when `python -m` runs it triggers a RuntimeWarning.
_FROM_COMMANDS = {"TrainConfig": "train", "run_training": "train", "train_step": "train", "make_optimizer": "train",
                  "predict": "evaluate", "error_report": "evaluate"}


def __getattr__(name):
    if name in _FROM_COMMANDS:
        return getattr(importlib.import_module(f".{_FROM_COMMANDS[name]}", __name__), name)
    raise AttributeError(f"module 'capsnet_lib' has no attribute {name!r}")

__all__ = [
    "squash", "capsule_length", "PrimaryCaps", "dynamic_routing", "DigitCaps",
    "margin_loss", "reconstruction_loss", "capsnet_loss", "RECONSTRUCTION_WEIGHT",
    "Decoder", "CapsNet", "CapsNetConfig", "CapsNetOutput", "BaselineCNN", "NUM_CLASSES",
    "load_mnist", "random_shift", "batches", "to_float",
    "pick_device", "resolve_precision", "autocast", "Runtime", "setup_runtime", "tune_cpu_allocator",
    "TrainConfig", "run_training", "train_step", "make_optimizer", "make_schedule",
    "predict", "error_report",
    "save_checkpoint", "load_checkpoint", "load_pretrained", "Checkpoint",
]
