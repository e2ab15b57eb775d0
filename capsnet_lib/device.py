"""Where and in which precision to run: the device (cuda, then mps, then cpu) and fp32 / bf16.

bf16 here is mixed precision: torch.autocast runs the convolutions and matrix products in
bfloat16, while squash, the routing logits, the capsule lengths and the losses stay in float32.
"""
import ctypes
import platform
from contextlib import nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name="auto"):
    """'auto' picks cuda, then mps, then cpu; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use --device auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available; use --device auto")
    return device


def hardware_name(device):
    """What a device is, for the record beside a timing: the GPU's name, or the CPU's model."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{_cpu_info('model name') or platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)"


def _cpu_info(field):
    """A field of /proc/cpuinfo (Linux), or '' where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith(field)), "")
    except OSError:
        return ""
    return line.partition(":")[2].strip()


def cpu_has_fast_bf16():
    """True on x86 CPUs with AMX or AVX512-BF16 instructions, where bf16 matmuls beat fp32."""
    flags = _cpu_info("flags").split()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision, device):
    """'auto' -> what trained fastest where we measured it. Returns 'fp32' or 'bf16'.

    CPU with AMX/AVX512-BF16: bf16 (3.71x the plain fp32 step, benchmarks/train_step.py).
    CUDA: fp32, whose convolutions use TF32 tensor cores by default. On an H200 at batch 128 the
    step is bound by kernel launches, and bf16's extra casts made it slower: 21.8k images/s
    against 28.7k for fp32 and 26.0k for the plain fp32 step.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise ValueError(f"bf16 runs on cpu and cuda, not on {device.type}; use --precision fp32")
    return precision


def autocast(device, precision):
    """The context a forward pass runs in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()


def tune_cpu_allocator():
    """Ask glibc to keep freed memory instead of returning big blocks to the OS.

    A CapsNet step allocates and frees ~100 MB temporaries; by default glibc maps each with
    mmap and unmaps it on free, so every step pays fresh page faults (measured: ~1.3x slower).
    Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>, without env variables.
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
