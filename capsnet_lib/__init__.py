"""capsnet_lib: the Capsule Network of "Dynamic Routing Between Capsules" (Sabour et al., 2017).

Everything the notebooks use is importable from here. Modules by topic: capsules (squash,
PrimaryCaps, routing, DigitCaps), losses, model, data, train, evaluate, runtime (device,
precision, layout), checkpoint, viz (the paper's figures) and panel (the Fig. 4 slider widget).
"""
from .capsules import DigitCaps, PrimaryCaps, capsule_length, dynamic_routing, squash
from .checkpoint import Checkpoint, load_checkpoint, load_pretrained, save_checkpoint
from .data import batches, load_mnist, random_shift, to_float
from .device import pick_device
from .evaluate import error_report, predict
from .losses import RECONSTRUCTION_WEIGHT, capsnet_loss, margin_loss, reconstruction_loss
from .model import NUM_CLASSES, BaselineCNN, CapsNet, CapsNetConfig, CapsNetOutput, Decoder
from .precision import autocast, resolve_precision
from .runtime import Runtime, setup_runtime, tune_cpu_allocator
from .train import TrainConfig, make_optimizer, make_schedule, run_training, train_step

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
