"""How a run uses its hardware, in one place: device, precision, memory layout, the optimizer's
fused kernel, CPU allocator.

The training and evaluation commands, the training notebook and the benchmark all set up
through `setup_runtime`, so a speed-up is switched on (or off) here and nowhere else.
"""
import ctypes
import platform
from dataclasses import dataclass

import torch

from .device import pick_device
from .precision import autocast, resolve_precision


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str                  # 'fp32' or 'bf16' (never 'auto': resolved for this device)

    def move_model(self, model):
        """Move a model to the device in channels-last layout, oneDNN's and cuDNN's native one
        (markedly faster bf16 convolutions on CPU). Returns the model."""
        return model.to(device=self.device, memory_format=torch.channels_last)

    def images(self, images):
        """Images (B, 1, S, S) on the device, in the layout the model's convolutions expect."""
        return in_layout(images.to(self.device))

    def autocast(self):
        """The context a forward pass runs in (bf16 autocast, or nothing for fp32)."""
        return autocast(self.device, self.precision)


def in_layout(images):
    """Images (B, C, H, W) in channels-last memory, the layout Runtime.move_model gives the weights."""
    return images.contiguous(memory_format=torch.channels_last)


def fused_adam(device):
    """Whether Adam runs its fused kernel (all parameters updated in one pass) on this device:
    PyTorch has one for CPU and CUDA."""
    return device.type in ("cpu", "cuda")


def setup_runtime(device="auto", precision="auto"):
    """Pick the device ('auto': cuda, then mps, then cpu) and resolve the precision for it."""
    device = pick_device(device)
    return Runtime(device, resolve_precision(precision, device))


def tune_cpu_allocator():
    """Ask glibc to keep freed memory instead of returning big blocks to the OS.

    A CapsNet step allocates and frees ~100 MB temporaries; by default glibc maps each with
    mmap and unmaps it on free, so every step pays fresh page faults (measured: ~1.3x slower).
    Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>, without env variables.
    A process-wide setting: the commands call it for their own process; a library function never
    does, and a notebook or script that wants it calls it once, explicitly.
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
