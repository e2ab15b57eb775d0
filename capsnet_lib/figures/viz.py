"""Figures of the paper: reconstructions (Fig. 3), perturbations of capsule dimensions (Fig. 4) and
two overlapping digits redrawn in two colours (Fig. 5).

The interactive version of Fig. 4, a slider panel, is in panel.py.
"""
import math

import matplotlib.pyplot as plt
import torch

from ..model import NUM_CLASSES, check_digit_caps, require_decoder
from .dimensions import decode_moved


PERTURBATION_STEPS = torch.arange(-5, 6) * 0.05   # Fig. 4: steps of 0.05 in [-0.25, 0.25], 0 exactly


@torch.no_grad()
def perturb(model, digit_caps, label, steps=PERTURBATION_STEPS):
    """Tweak each of the 16 dimensions of capsule `label` by each step; decode every variant.

    digit_caps: (10, 16) of one image. Returns images (16, len(steps), 28, 28) (S x S in general).
    """
    require_decoder(model)
    if not isinstance(digit_caps, torch.Tensor) or digit_caps.dim() != 2:
        raise ValueError(f"digit_caps must be the (10, 16) capsules of one image, "
                         f"got {getattr(digit_caps, 'shape', digit_caps)!r}")
    check_digit_caps(digit_caps[None])
    if isinstance(label, bool) or int(label) != label or not 0 <= int(label) < NUM_CLASSES:
        raise ValueError(f"label must be a class in 0..{NUM_CLASSES - 1}, got {label!r}")
    dims, n = digit_caps.shape[1], len(steps)
    offsets = (torch.eye(dims)[:, None, :] * steps[None, :, None]).flatten(0, 1)   # (16 * n, 16): step k on dim d
    labels = torch.full((dims * n,), int(label), dtype=torch.long)
    decoded = decode_moved(model, digit_caps.expand(dims * n, *digit_caps.shape), labels, offsets)   # (16 * n, 1, S, S)
    return decoded.view(dims, n, *decoded.shape[-2:])


def show_digits(ax, image, title=None):
    ax.imshow(image.squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def plot_reconstructions(images, reconstructions, labels, predictions, title=None):
    """Fig. 3 layout: inputs on the top row, reconstructions below; (label, prediction) above."""
    n = images.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.6), squeeze=False)
    for k in range(n):
        show_digits(axes[0, k], images[k], f"l={int(labels[k])} p={int(predictions[k])}")
        show_digits(axes[1, k], reconstructions[k])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("reconstruction")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_perturbation_grid(grid, steps=PERTURBATION_STEPS, title=None):
    """grid (16, n, 28, 28) from `perturb`: one row per capsule dimension, one column per step."""
    dims, n = grid.shape[:2]
    fig, axes = plt.subplots(dims, n, figsize=(0.55 * n + 0.8, 0.55 * dims + 0.6), squeeze=False)
    for d in range(dims):
        for k in range(n):
            show_digits(axes[d, k], grid[d, k])
        axes[d, 0].set_ylabel(f"dim {d}", rotation=0, ha="right", va="center", fontsize=8)
    for k in range(n):
        axes[-1, k].set_xlabel(f"{float(steps[k]):+.2f}", fontsize=7)
    fig.suptitle(title or "each row tweaks one of the 16 dimensions of the digit capsule")
    fig.subplots_adjust(left=0.12, right=0.99, bottom=0.05, top=0.94, wspace=0.05, hspace=0.05)
    return fig


def two_colour_overlay(image, first, second):
    """Fig. 5's picture: the input (1, S, S) in dim grey, one reconstruction in red and the other in
    green over it (yellow where both draw). Returns an (S, S, 3) array in [0, 1]."""
    grey = 0.35 * image.squeeze()
    red, green = (grey + first.squeeze()).clamp(0, 1), (grey + second.squeeze()).clamp(0, 1)
    return torch.stack([red, green, grey], dim=-1).cpu().numpy()


def plot_pairs(images, first, second, titles, rows=2, title=None):
    """Fig. 5 layout: for each overlay, the input above and the two reconstructions (red, green)
    over it below, with a title (e.g. 'L:(2,7) R:(2,7)') per column; `rows` pairs of rows."""
    n = images.shape[0]
    cols = math.ceil(n / rows)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.15 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        top, col = 2 * (k // cols), k % cols
        show_digits(axes[top, col], images[k], titles[k])
        axes[top + 1, col].imshow(two_colour_overlay(images[k], first[k], second[k]))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94 if title else 1))
    return fig
