"""Sec. 5.2's data: MNIST digits on a 40x40 black background, and affine-transformed test digits.

- `translated`: each 28x28 digit placed at a random position of a 40x40 canvas (the training and
  the translated test set of Sec. 5.2).
- `affine_transformed`: our affNIST-style test set (not affNIST itself): each digit, centred on the
  canvas, gets a random rotation, shear and scaling in the ranges AFFNIST_STYLE, then a random
  translation that keeps all of its ink on the canvas. AFFNIST_STYLE is our reading of the ranges
  affNIST's page gives (rotation up to 20 degrees either way, shear up to 0.2, scaling 0.8 to 1.2
  along each axis, any translation that keeps the digit in the 40x40 frame).
- `load_affnist`: the real affNIST test file (affNIST's .mat format), where a user has it.

Everything is generated on the images' device from a seeded torch.Generator, so a fixed seed gives
a fixed test set.
"""
import torch
import torch.nn.functional as F

from .mnist import shift

CANVAS = 40
AFFNIST_STYLE = {"rotation_degrees": 20.0, "shear": 0.2, "scale": (0.8, 1.2)}


def place(images, top, left, size=CANVAS):
    """Put images (N, h, w) on a zero canvas (N, size, size), image n with its top-left corner at
    (top[n], left[n]). One scatter for the batch; any dtype, any device."""
    n, h, w = images.shape
    if top.min() < 0 or left.min() < 0 or top.max() > size - h or left.max() > size - w:
        raise ValueError(f"offsets must keep the {h}x{w} images inside the {size}x{size} canvas")
    canvas = images.new_zeros(n, size, size)
    rows = (top[:, None] + torch.arange(h, device=images.device))[:, :, None]      # (N, h, 1)
    cols = (left[:, None] + torch.arange(w, device=images.device))[:, None, :]     # (N, 1, w)
    canvas[torch.arange(n, device=images.device)[:, None, None], rows, cols] = images
    return canvas


def translated(images, generator=None, size=CANVAS):
    """uint8 digits (N, 28, 28) -> (N, size, size), each at a uniformly random position."""
    n, h, w = images.shape
    top = torch.randint(0, size - h + 1, (n,), generator=generator, device=images.device)
    left = torch.randint(0, size - w + 1, (n,), generator=generator, device=images.device)
    return place(images, top, left, size)


def transform(images, rotation_degrees, shear, scale_x, scale_y):
    """Float images (N, S, S) in [0, 1], each turned about the canvas centre by its own
    A = rotation @ shear @ scale (angles in degrees, counter-clockwise; shear moves x by shear * y).
    Bilinear, zeros outside. Each parameter is a tensor (N,)."""
    angle = torch.deg2rad(rotation_degrees)
    cos, sin, one, zero = angle.cos(), angle.sin(), torch.ones_like(angle), torch.zeros_like(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)   # (N, 2, 2)
    shearing = torch.stack([torch.stack([one, shear], -1), torch.stack([zero, one], -1)], -2)
    scaling = torch.stack([torch.stack([scale_x, zero], -1), torch.stack([zero, scale_y], -1)], -2)
    forward = rotation @ shearing @ scaling
    # Image rows grow downwards: flip y so that a positive angle turns the digit counter-clockwise.
    flip = torch.diag(torch.tensor([1.0, -1.0], device=images.device))
    forward = flip @ forward @ flip
    # grid_sample asks, for every output pixel, where to read: the inverse map.
    theta = torch.cat([torch.linalg.inv(forward), torch.zeros(len(images), 2, 1, device=images.device)], dim=2)
    grid = F.affine_grid(theta, (len(images), 1, *images.shape[-2:]), align_corners=False)
    return F.grid_sample(images[:, None].float(), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def shift_inside(images, generator=None):
    """Move each float image (N, S, S) by a random whole-pixel (dy, dx) that keeps all its ink
    (nonzero pixels) on the canvas."""
    n, size, _ = images.shape
    ink = images > 0
    rows, cols = ink.any(dim=2), ink.any(dim=1)                                  # (N, S) each
    index = torch.arange(size, device=images.device)
    first = lambda mask: torch.where(mask, index, size).amin(dim=1)
    last = lambda mask: torch.where(mask, index, -1).amax(dim=1)
    uniform = lambda low, high: low + (torch.rand(n, generator=generator, device=images.device)
                                       * (high - low + 1)).floor().long().clamp(max=high - low)
    dy = uniform(-first(rows), size - 1 - last(rows))
    dx = uniform(-first(cols), size - 1 - last(cols))
    return shift(images, dy, dx, size)


def affine_transformed(images, generator=None, size=CANVAS, ranges=AFFNIST_STYLE):
    """uint8 digits (N, 28, 28) -> (float images (N, size, size) in [0, 1], the parameters used).

    Our affNIST-style set: centre on the canvas, transform with parameters drawn uniformly from
    `ranges`, then translate anywhere that keeps the ink on the canvas."""
    n = images.shape[0]
    margin = (size - images.shape[-1]) // 2
    centred = place(images, torch.full((n,), margin, device=images.device),
                    torch.full((n,), margin, device=images.device), size).float() / 255
    draw = lambda low, high: low + (high - low) * torch.rand(n, generator=generator, device=images.device)
    low, high = ranges["scale"]
    params = {"rotation_degrees": draw(-ranges["rotation_degrees"], ranges["rotation_degrees"]),
              "shear": draw(-ranges["shear"], ranges["shear"]), "scale_x": draw(low, high),
              "scale_y": draw(low, high)}
    return shift_inside(transform(centred, **params), generator), params


def load_affnist(path):
    """The images (N, 40, 40) uint8 and labels (N,) int64 of an affNIST .mat file (e.g. test.mat of
    affNIST's 'transformed' set). Needs scipy; each column of `image` is one digit, row by row."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("reading affNIST's .mat files needs scipy: pip install scipy") from None
    try:
        data = loadmat(path, squeeze_me=True, struct_as_record=False)["affNISTdata"]
        images, labels = data.image, data.label_int
    except (KeyError, AttributeError, ValueError, OSError) as error:
        raise ValueError(f"{path} is not an affNIST .mat file (it needs affNISTdata.image and "
                         f"affNISTdata.label_int): {error}") from None
    images, labels = _checked_affnist_images(images, path), _checked_affnist_labels(labels, path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{path} holds {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def _checked_affnist_images(images, path):
    """affNISTdata.image as (N, 40, 40) uint8: stored as (1600, N) integers in 0..255 (a single
    image squeezed to (1600,))."""
    import numpy as np

    pixels = CANVAS * CANVAS
    images = np.asarray(images)
    if images.ndim == 1 and images.shape[0] == pixels:
        images = images[:, None]
    if images.ndim != 2 or images.shape[0] != pixels or images.shape[1] == 0:
        transposed = images.ndim == 2 and images.shape[1] == pixels and images.shape[0] != pixels
        raise ValueError(f"{path}: affNISTdata.image must be ({pixels}, N) with N >= 1, one 40x40 digit per column, "
                         f"got shape {images.shape}" + ("; it looks stored transposed" if transposed else ""))
    if images.dtype.kind not in "ui" and not (images.dtype.kind == "f" and np.all(images == np.round(images))):
        raise ValueError(f"{path}: affNISTdata.image must hold integer pixels 0..255, got {images.dtype} values "
                         f"from {images.min():g} to {images.max():g}")
    if images.min() < 0 or images.max() > 255:
        raise ValueError(f"{path}: affNISTdata.image must hold pixels 0..255, got values from {images.min():g} to "
                         f"{images.max():g}")
    if images.max() <= 1:
        raise ValueError(f"{path}: affNISTdata.image holds only 0s and 1s; affNIST pixels are 0..255 "
                         "(were they scaled to [0, 1]?)")
    return torch.as_tensor(images.T.reshape(-1, CANVAS, CANVAS).astype("uint8"))


def _checked_affnist_labels(labels, path):
    """affNISTdata.label_int as (N,) int64: whole numbers 0..9."""
    import numpy as np

    labels = np.atleast_1d(np.asarray(labels))
    if labels.ndim != 1 or labels.dtype.kind not in "uif" or (labels.dtype.kind == "f" and not np.all(labels == np.round(labels))):
        raise ValueError(f"{path}: affNISTdata.label_int must be N whole numbers 0..9, got {labels.dtype} of shape "
                         f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: affNISTdata.label_int must be in 0..9, got values from {labels.min():g} to "
                         f"{labels.max():g}")
    return torch.as_tensor(labels.astype("int64"))
