"""Capsule layers: squash (Eq. 1), PrimaryCaps, dynamic routing (Procedure 1, Eq. 2-3), DigitCaps.

Shapes use B = batch, I = input (child) capsules, J = output (parent) capsules, D = capsule
dimension. In the MNIST CapsNet I = 1152 primary capsules, J = 10 digit capsules, D = 8 then 16.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels.strided_conv import PolyphaseConv2d


def squash(s, dim=-1, eps=1e-8):
    """Eq. 1: v = |s|^2 / (1 + |s|^2) * s / |s|.

    Keeps the direction of `s` and maps its length into [0, 1). `eps` sits inside the square
    root, so an all-zero `s` gives v = 0 with a finite gradient (|s| alone has an infinite
    derivative at 0, which is where public code gets NaN). Computed in float32 whatever the
    input dtype, so bfloat16 activations do not lose the length's precision.
    """
    s = s.float()
    squared_norm = (s * s).sum(dim=dim, keepdim=True)
    scale = squared_norm / (1.0 + squared_norm) / torch.sqrt(squared_norm + eps)
    return scale * s


MAX_ROUTING_ITERATIONS = 100   # the paper uses 1-3; a bound keeps a corrupt config from hanging a run


def check_routing_iterations(n):
    """The one check of a routing iteration count, wherever one enters (model, CLI, checkpoint)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ROUTING_ITERATIONS:
        raise ValueError(f"routing_iterations must be an integer in 1..{MAX_ROUTING_ITERATIONS}, got {n!r}")


def capsule_length(v, dim=-1, eps=1e-8):
    """|v| with `eps` inside the square root: finite gradient at v = 0. (B, J, D) -> (B, J)."""
    v = v.float()
    return torch.sqrt((v * v).sum(dim=dim) + eps)


class PrimaryCaps(nn.Module):
    """A 9x9 stride-2 convolution whose channels are grouped into capsules.

    The convolution gives num_types * caps_dim channels. Channel t * caps_dim + k is component
    k of capsule type t, so one capsule is caps_dim channels at one spatial position (a vector
    *across channels*). Output: (B, num_types * H * W, caps_dim), squashed; 1152 x 8 on MNIST.
    """

    def __init__(self, in_channels=256, num_types=32, caps_dim=8, kernel_size=9, stride=2):
        super().__init__()
        self.num_types, self.caps_dim = num_types, caps_dim
        # An nn.Conv2d with a faster backward on CPU (kernels/strided_conv.py); same weights and keys.
        self.conv = PolyphaseConv2d(in_channels, num_types * caps_dim, kernel_size, stride)

    def forward(self, x):
        return self.to_capsules(self.conv(x))             # (B, 256, 20, 20) -> (B, T*D, 6, 6) -> capsules

    def to_capsules(self, u):
        """Conv output (B, T*D, H, W) -> squashed capsules (B, T*H*W, D)."""
        B, _, H, W = u.shape
        # Put channels last, then split them into (type, component). In channels-last memory
        # the permute is free; the one copy happens in the final reshape.
        u = u.permute(0, 2, 3, 1).reshape(B, H, W, self.num_types, self.caps_dim)
        u = u.permute(0, 3, 1, 2, 4).reshape(B, self.num_types * H * W, self.caps_dim)
        return squash(u)                                   # (B, T*H*W, D) float32


def dynamic_routing(u_hat, num_iterations=3, detach=True, bias=None):
    """Procedure 1: routing by agreement.

    u_hat: (B, I, J, D) predictions u_hat_j|i of every child i for every parent j.
    Returns v (B, J, D), the parent capsules, and c (B, I, J), the final coupling coefficients.

    The logits b start at zero for every call and every example: nothing is shared across the
    batch. With detach=True the iterations before the last see a detached u_hat, so c is a
    constant and the gradient reaches u_hat only through the last weighted sum. `bias` (J, D),
    if given, is added to every s_j before the squash, as in the authors' released code (the
    paper's Procedure 1 has none).
    """
    check_routing_iterations(num_iterations)
    if u_hat.dim() != 4:
        raise ValueError(f"u_hat must be (B, I, J, D), got shape {tuple(u_hat.shape)}")
    u = u_hat.transpose(1, 2)                      # (B, J, I, D): parent-major, see _weighted_sum
    B, J, I, _ = u.shape
    b = torch.zeros(B, J, I, device=u.device, dtype=torch.float32)
    for r in range(num_iterations):
        last = r == num_iterations - 1
        u_r = u if last or not detach else u.detach()
        c = F.softmax(b, dim=1)                    # Eq. 3: c_ij = softmax over the parents j of b_ij
        s = _weighted_sum(c, u_r, bias)            # Eq. 2: s_j = sum_i c_ij u_hat_j|i
        v = squash(s)                              # Eq. 1: v_j = squash(s_j)
        if not last:
            b = b + _agreement(u_r, v)             # b_ij = b_ij + u_hat_j|i . v_j
    return v, c.transpose(1, 2)                    # (B, J, D), (B, I, J)


# The two sums of routing, as batched matmuls over a parent-major u (B, J, I, D): each parent's
# children are contiguous, and DigitCaps builds u_hat in this layout, so no copy is made.

def _weighted_sum(c, u, bias=None):
    """s_j = sum_i c_ij u_hat_j|i (+ bias_j): c (B, J, I), u (B, J, I, D) -> (B, J, D)."""
    s = (c.to(u.dtype).unsqueeze(2) @ u).squeeze(2)
    return s if bias is None else s + bias


def _agreement(u, v):
    """a_ij = u_hat_j|i . v_j in float32: u (B, J, I, D), v (B, J, D) -> (B, J, I)."""
    return (u @ v.to(u.dtype).unsqueeze(-1)).squeeze(-1).float()


class DigitCaps(nn.Module):
    """One 16x8 matrix W_ij per (child i, digit j): u_hat_j|i = W_ij u_i (Eq. 2), then routing."""

    def __init__(self, in_caps=(1152, 8), out_caps=(10, 16), routing_iterations=3, detach=True, bias=False):
        """in_caps: (I, in_dim), the children (1152 8D primary capsules for 28x28 digits); out_caps:
        (J, D), the parents (ten 16D digit capsules). detach: see dynamic_routing. bias: learn a
        bias for every s_j (the authors' code; it starts at 0.1 there, as here)."""
        super().__init__()
        check_routing_iterations(routing_iterations)
        (num_in, in_dim), (num_out, out_dim) = in_caps, out_caps
        self.num_in, self.in_dim, self.num_out, self.out_dim = num_in, in_dim, num_out, out_dim
        self.routing_iterations, self.detach = routing_iterations, detach
        # Stored as (I, J*D, in_dim): one batched matmul over i computes all predictions.
        self.W = nn.Parameter(0.01 * torch.randn(num_in, num_out * out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((num_out, out_dim), 0.1)) if bias else None

    def predictions_einsum(self, u):
        """Eq. 2 as written, u_hat_j|i = W_ij u_i: u (B, I, in_dim) -> u_hat (B, I, J, D).
        The readable reference; `predictions` computes the same numbers in the layout routing wants."""
        W = self.W.view(self.num_in, self.num_out, self.out_dim, self.in_dim)      # W_ij: (I, J, D, in_dim)
        return torch.einsum("ijdk,bik->bijd", W, u.to(W.dtype))

    def predictions(self, u):
        """Eq. 2 (predictions_einsum), fast: u (B, I, in_dim) -> u_hat (B, I, J, D), laid out
        parent-major in memory (a (B, J, I, D) tensor, transposed), so routing copies nothing."""
        B = u.shape[0]
        u = u.to(self.W.dtype)
        u_hat = u.permute(1, 0, 2) @ self.W.transpose(1, 2)   # (I, B, in) @ (I, in, J*D) -> (I, B, J*D)
        u_hat = u_hat.view(self.num_in, B, self.num_out, self.out_dim)
        # One copy into the parent-major layout. Its innermost dimension (D) is contiguous in the
        # source too, so it moves whole rows: measured 2x faster (u_hat + routing, forward and
        # backward, bf16) than building (I, J*D, B) and transposing.
        u_hat = u_hat.permute(1, 2, 0, 3).contiguous()     # (B, J, I, D) in memory
        return u_hat.transpose(1, 2)                       # (B, I, J, D) view

    def forward(self, u):
        u_hat = self.predictions(u)
        return dynamic_routing(u_hat, self.routing_iterations, self.detach, self.bias)
