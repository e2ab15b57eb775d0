"""What each dimension of a digit capsule does, measured: perturb it, decode, and compare simple
image statistics of the two ends (the quantitative version of the paper's Figure 4)."""
import torch

from ..model import DIGIT_CAPS_DIM, check_digit_caps, check_labels, require_decoder

STATISTICS = ("ink", "width", "height", "slant", "centre_x", "centre_y")


def image_statistics(images):
    """Images (N, 28, 28) or (N, 1, 28, 28) in [0, 1] -> (N, 6), the columns named by STATISTICS.

    Pixel intensities are weights: ink is their sum; centre_x, centre_y their centroid (pixels,
    x to the right, y down); width and height twice their standard deviation along x and y;
    slant the regression slope of x on y, sign flipped so that a stroke leaning right (top to the
    right of the bottom, like '/') is positive.
    """
    rows, cols = images.shape[-2:]
    w = images.reshape(images.shape[0], rows, cols).float()
    y = torch.arange(rows, dtype=w.dtype).view(1, rows, 1)
    x = torch.arange(cols, dtype=w.dtype).view(1, 1, cols)
    ink = w.sum(dim=(1, 2)).clamp_min(1e-6)                          # (N,)
    mean = lambda f: (w * f).sum(dim=(1, 2)) / ink
    cx, cy = mean(x), mean(y)
    dx, dy = x - cx.view(-1, 1, 1), y - cy.view(-1, 1, 1)
    var_x, var_y, cov = mean(dx ** 2), mean(dy ** 2), mean(dx * dy)
    slant = -cov / var_y.clamp_min(1e-6)                               # y grows downwards
    return torch.stack([ink, 2 * var_x.sqrt(), 2 * var_y.sqrt(), slant, cx, cy], dim=1)


@torch.no_grad()
def dimension_effects(model, digit_caps, classes, step=0.25, directions=None):
    """How each dimension of each digit's own capsule moves the image statistics.

    digit_caps (N, 10, 16) of N images, classes (N,) the capsule to perturb for each (its
    prediction). directions (16, 16), one direction per row, replaces the 16 axes (the identity,
    the default); random orthonormal rows are the control of notebook 08. Returns (N, 16, 6):
    statistics of the image decoded with the capsule moved by +step along direction d, minus those
    at -step, per digit, direction and statistic.
    """
    require_decoder(model)
    check_digit_caps(digit_caps)
    check_labels(classes, digit_caps.shape[0])
    classes = classes.long()
    n, dims = digit_caps.shape[0], DIGIT_CAPS_DIM
    directions = torch.eye(dims) if directions is None else directions.to(digit_caps.dtype)
    if directions.shape != (dims, dims):
        raise ValueError(f"directions must be ({dims}, {dims}), one per row, got {tuple(directions.shape)}")
    offsets = step * torch.stack([-directions, directions])           # (2, 16 directions, 16)
    many = lambda t: t.repeat_interleave(2 * dims, dim=0)             # each digit once per (sign, direction)
    decoded = decode_moved(model, many(digit_caps), many(classes), offsets.flatten(0, 1).repeat(n, 1))
    stats = image_statistics(decoded).view(n, 2, dims, len(STATISTICS))
    return stats[:, 1] - stats[:, 0]


def moved_capsules(digit_caps, classes, offsets):
    """Fig. 4's edit: digit_caps (N, 10, 16) with capsule classes[n] of image n moved by offsets[n]
    (N, 16); the other capsules unchanged. Returns a new tensor."""
    moved = digit_caps.clone()
    moved[torch.arange(moved.shape[0]), classes] += offsets.to(moved.dtype)
    return moved


def decode_moved(model, digit_caps, classes, offsets):
    """Move each image's capsule classes[n] by offsets[n] (moved_capsules) and decode that capsule:
    (N, 1, S, S). The one operation behind Figure 4, its measurement here, and the slider panel."""
    return model.decode(moved_capsules(digit_caps, classes, offsets), classes)


def random_directions(seed, dims=DIGIT_CAPS_DIM):
    """(dims, dims) random orthonormal rows: a rotation of the capsule's axes (the control)."""
    gaussian = torch.randn(dims, dims, generator=torch.Generator().manual_seed(seed))
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r))                          # uniform (Haar) over rotations
