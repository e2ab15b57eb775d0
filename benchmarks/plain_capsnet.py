"""The baseline for benchmarks/train_step.py: CapsNet as a reader would write it.

Correct and vectorised, but plain: float32, eager, contiguous NCHW layout, u_hat built by a
broadcast matmul over a (1, 1152, 10, 16, 8) weight, routing on (B, 1152, 10, 16), plain Adam.
It is deliberately not imported from capsnet_lib, so library speed-ups do not leak into it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def squash(s, dim=-1):
    n2 = (s ** 2).sum(dim, keepdim=True)
    return n2 / (1 + n2) * s / torch.sqrt(n2 + 1e-8)


class PlainCapsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 256, 9)
        self.primary = nn.Conv2d(256, 256, 9, stride=2)
        self.W = nn.Parameter(0.01 * torch.randn(1, 1152, 10, 16, 8))
        self.decoder = nn.Sequential(nn.Linear(160, 512), nn.ReLU(), nn.Linear(512, 1024), nn.ReLU(),
                                     nn.Linear(1024, 784), nn.Sigmoid())

    def forward(self, x, labels=None):
        B = x.shape[0]
        h = F.relu(self.conv1(x))
        u = self.primary(h).view(B, 32, 8, 6, 6).permute(0, 1, 3, 4, 2).reshape(B, 1152, 8)
        u = squash(u)
        u_hat = torch.einsum("ijdk,bik->bijd", self.W[0], u)          # (B, 1152, 10, 16)
        u_detached = u_hat.detach()
        b = torch.zeros(B, 1152, 10, device=x.device)
        for r in range(3):
            c = F.softmax(b, dim=2)
            uh = u_hat if r == 2 else u_detached
            v = squash((c[..., None] * uh).sum(1))                      # (B, 10, 16)
            if r < 2:
                b = b + (uh * v[:, None]).sum(-1)
        lengths = torch.sqrt((v ** 2).sum(-1) + 1e-8)
        if labels is None:
            labels = lengths.argmax(1)
        mask = F.one_hot(labels, 10).float()
        recon = self.decoder((v * mask[..., None]).flatten(1)).view(B, 1, 28, 28)
        return lengths, recon


def plain_loss(lengths, recon, images, labels):
    T = F.one_hot(labels, 10).float()
    margin = (T * F.relu(0.9 - lengths) ** 2 + 0.5 * (1 - T) * F.relu(lengths - 0.1) ** 2).sum(1).mean()
    return margin + 0.0005 * ((recon - images) ** 2).flatten(1).sum(1).mean()
