"""capsnet_lib: the Capsule Network of "Dynamic Routing Between Capsules" (Sabour et al., 2017)."""
from .capsules import DigitCaps, PrimaryCaps, capsule_length, dynamic_routing, squash
from .checkpoint import Checkpoint, load_checkpoint, load_pretrained, save_checkpoint
from .data import batches, load_mnist, random_shift
from .device import autocast, pick_device, resolve_precision
from .losses import RECONSTRUCTION_WEIGHT, capsnet_loss, margin_loss, reconstruction_loss
from .model import BaselineCNN, CapsNet, CapsNetConfig, CapsNetOutput, Decoder

__all__ = [
    "squash", "capsule_length", "PrimaryCaps", "dynamic_routing", "DigitCaps",
    "margin_loss", "reconstruction_loss", "capsnet_loss", "RECONSTRUCTION_WEIGHT",
    "Decoder", "CapsNet", "CapsNetConfig", "CapsNetOutput", "BaselineCNN",
    "load_mnist", "random_shift", "batches",
    "pick_device", "resolve_precision", "autocast",
    "save_checkpoint", "load_checkpoint", "load_pretrained", "Checkpoint",
]
