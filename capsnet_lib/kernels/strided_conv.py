"""A strided convolution whose input gradient is computed as stride^2 ordinary convolutions.

Why: on CPU, oneDNN's backward-data pass of the PrimaryCaps convolution (256 -> 256, 9x9,
stride 2) runs at well under half the speed of its forward pass, for the same arithmetic.
The input gradient of a stride-s convolution splits by the parity of the output pixel
("polyphase"): pixels (s*a + p, s*b + q) only receive taps w[:, :, p::s, q::s], so

    grad_x[:, :, p::s, q::s] = conv2d(grad_out, flip(w[:, :, p::s, q::s]) with in/out swapped,
                                      padding = taps - 1)                 (a "full" convolution)

Those are forward convolutions, which oneDNN runs fast: measured 165 ms -> 82 ms per batch of
128 in bf16 on a 2-core AMX machine. The weight gradient keeps PyTorch's own kernel (the same
trick gave it nothing).
"""
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..training.device import cpu_info


def polyphase_grad_input(grad_out, weight, stride, input_shape):
    """Gradient of conv2d(x, weight, stride=stride) (no padding) with respect to x."""
    grad_x = grad_out.new_zeros(input_shape).contiguous(memory_format=torch.channels_last)
    for p in range(stride):
        for q in range(stride):
            taps = weight[:, :, p::stride, q::stride]                   # (O, C, kh, kw)
            kh, kw = taps.shape[2:]
            kernel = taps.flip(2, 3).transpose(0, 1).contiguous(memory_format=torch.channels_last)
            phase = F.conv2d(grad_out, kernel, padding=(kh - 1, kw - 1))    # (B, C, Ho+kh-1, Wo+kw-1)
            grad_x[:, :, p::stride, q::stride][:, :, :phase.shape[2], :phase.shape[3]] = phase
    return grad_x


class _StridedConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return F.conv2d(x, weight, bias, stride)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        s = ctx.stride
        grad_x = polyphase_grad_input(grad_out, weight, s, x.shape) if ctx.needs_input_grad[0] else None
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out, x, weight, [weight.shape[0]], [s, s], [0, 0], [1, 1], False, [0, 0], 1,
            [False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]])
        return grad_x, grad_w, grad_b, None


def strided_conv2d(x, weight, bias, stride):
    """conv2d(x, weight, bias, stride) with the polyphase input gradient; autocast-aware."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    return _StridedConv2d.apply(x, weight, bias, stride)


@functools.lru_cache(maxsize=None)
def polyphase_pays_off():
    """Where the polyphase input gradient measured faster than oneDNN's own: CPUs with AMX (the
    backward-data pass 165 -> 82 ms per batch of 128 in bf16). On a 2-core AMD EPYC with AVX512-BF16
    and no AMX the whole training step ran at 0.98x and 0.97x of PyTorch's own kernel in interleaved
    A/B runs (the convolution alone: 0.96x, 1.03x, 1.04x; benchmarks/results/), so PyTorch's own
    kernel stays there."""
    return "amx_bf16" in cpu_info("flags").split()


class PolyphaseConv2d(nn.Conv2d):
    """nn.Conv2d that takes the polyphase input gradient where it is valid and faster: valid on the
    CPU for an unpadded convolution with equal strides > 1, no dilation and one group; faster where
    polyphase_pays_off() (CPUs with AMX). Elsewhere it is nn.Conv2d itself. The choice sits inside
    forward, so hooks, pruning and tracing see the same module, and the parameters and state_dict
    keys are nn.Conv2d's. `polyphase` on a module forces the choice: True takes the path wherever
    it is valid, False never (training/ensemble.py: its autograd Function has no vmap rule)."""
    polyphase = None            # None: where it pays off

    def polyphase_valid(self, x):
        return (x.device.type == "cpu" and self.padding == (0, 0) and self.padding_mode == "zeros"
                and self.stride[0] == self.stride[1] > 1 and self.dilation == (1, 1) and self.groups == 1)

    def uses_polyphase(self, x):
        wanted = polyphase_pays_off() if self.polyphase is None else self.polyphase
        return wanted and self.polyphase_valid(x)

    def forward(self, x):
        if self.uses_polyphase(x):
            return strided_conv2d(x, self.weight, self.bias, self.stride[0])
        return super().forward(x)
