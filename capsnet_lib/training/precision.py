"""In which precision to compute: fp32, or bf16 mixed precision.

bf16 here is mixed precision: torch.autocast runs the convolutions and matrix products in
bfloat16, while squash, the routing logits, the capsule lengths and the losses stay in float32.
"""
from contextlib import nullcontext

import torch

from .device import cpu_info

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_fast_bf16():
    """True on x86 CPUs with AMX or AVX512-BF16 instructions, where bf16 matmuls beat fp32."""
    flags = cpu_info("flags").split()
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
