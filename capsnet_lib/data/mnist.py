"""MNIST as uint8 tensors, the paper's 2-pixel random shift, and the validation split.

The whole of MNIST is 55 MB as uint8, so it is held as one tensor on the training device and
batches are cut from it with tensor indexing: no DataLoader, no per-image Python.
"""
import os
from pathlib import Path

import torch
import torch.nn.functional as F

DATA_ENV_VAR = "CAPSNET_DATA"
DEFAULT_DATA_ROOT = "data"
VALIDATION_SIZE = 5000      # the last 5,000 training images; used for model selection only
TRAIN_SIZE = 60_000 - VALIDATION_SIZE       # the training images left to train on
SPLITS = ("train", "val", "test")
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def data_root(root=None):
    """The data root: the argument, else $CAPSNET_DATA, else ./data."""
    return Path(root or os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_ROOT)


def mnist_is_present(root=None):
    raw = data_root(root) / "MNIST" / "raw"
    return all((raw / name).is_file() for name in RAW_FILES)


def load_mnist(split, root=None, download=True):
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split: train (55,000), val (5,000)
    or test (10,000). Downloads through torchvision into the root if allowed and missing."""
    from torchvision.datasets import MNIST

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = data_root(root)
    if not mnist_is_present(root):
        if not download:
            raise FileNotFoundError(_missing_message(root))
        try:
            MNIST(str(root), train=True, download=True)
            MNIST(str(root), train=False, download=True)
        except Exception as error:  # no network, proxy, read-only folder, ...
            raise FileNotFoundError(f"{_missing_message(root)} The download failed: {error}") from None
    raw = root / "MNIST" / "raw"
    prefix = "t10k" if split == "test" else "train"
    count = check_idx_pair(raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte")
    dataset = MNIST(str(root), train=split != "test", download=False)
    images, labels = dataset.data, dataset.targets.long()
    if count and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{raw / f'{prefix}-labels-idx1-ubyte'} holds labels outside 0..9 "
                         f"(from {labels.min().item()} to {labels.max().item()}): the file is corrupt")
    if split != "test" and count <= VALIDATION_SIZE:
        raise ValueError(f"{raw / f'{prefix}-images-idx3-ubyte'} holds {count} images; the training split "
                         f"needs more than the {VALIDATION_SIZE} kept for validation")
    if split == "train":
        return images[:-VALIDATION_SIZE], labels[:-VALIDATION_SIZE]
    if split == "val":
        return images[-VALIDATION_SIZE:], labels[-VALIDATION_SIZE:]
    return images, labels


IDX_MAGIC = {"images": 2051, "labels": 2049}     # the IDX headers of MNIST's image and label files


def _idx_count(path, kind):
    """The item count in an IDX file's header, checked against its magic number and its size."""
    header_size = 16 if kind == "images" else 8
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(header_size)
    if len(header) < header_size:
        raise ValueError(f"{path} is {size} bytes, too short for an MNIST {kind} file: truncated or empty")
    magic, count = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    if magic != IDX_MAGIC[kind]:
        raise ValueError(f"{path} is not an MNIST {kind} file: magic number {magic}, expected {IDX_MAGIC[kind]}")
    item_bytes = 1
    if kind == "images":
        rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
        if (rows, cols) != (28, 28):
            raise ValueError(f"{path} holds {rows}x{cols} images; MNIST images are 28x28")
        item_bytes = 28 * 28
    if size != header_size + count * item_bytes:
        raise ValueError(f"{path} is {size} bytes, but its header announces {count} {kind} "
                         f"({header_size + count * item_bytes} bytes): the file is truncated or corrupt")
    return count


def check_idx_pair(images_path, labels_path):
    """Validate an MNIST images file and its labels file; returns their common count."""
    images, labels = _idx_count(images_path, "images"), _idx_count(labels_path, "labels")
    if images != labels:
        raise ValueError(f"{images_path} holds {images} images but {labels_path} holds {labels} labels; "
                         "images and labels would be misaligned")
    return images


def _missing_message(root):
    return (f"MNIST not found: expected the files {', '.join(RAW_FILES)} in {root / 'MNIST' / 'raw'}. "
            f"Point --data-root or ${DATA_ENV_VAR} at a folder holding MNIST/raw, or run "
            f"`python -m capsnet_lib.download --data-root {root}` on a machine with internet to download it.")


def to_float(images):
    """uint8 (B, 28, 28) -> float32 (B, 1, 28, 28) in [0, 1]."""
    return images.unsqueeze(1).float().div_(255.0)


def random_shift(images, max_shift=2, generator=None):
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling with 0.

    images: (B, H, W) or (B, C, H, W), any dtype.
    """
    offsets = torch.randint(0, 2 * max_shift + 1, (2, images.shape[0]), generator=generator, device=images.device)
    return shift(images, max_shift - offsets[0], max_shift - offsets[1], max_shift)


def shift(images, dy, dx, max_shift):
    """Move image b down by dy[b] and right by dx[b] pixels (|dy|, |dx| <= max_shift), filling with 0.

    images: (B, H, W) or (B, C, H, W), any dtype. One padded copy and one gather for the batch.
    """
    *lead, H, W = images.shape
    B = images.shape[0]
    padded = F.pad(images, (max_shift,) * 4)                              # (..., H+2m, W+2m)
    rows = (torch.arange(H, device=images.device) - dy[:, None] + max_shift)[:, :, None]   # (B, H, 1)
    cols = (torch.arange(W, device=images.device) - dx[:, None] + max_shift)[:, None, :]   # (B, 1, W)
    batch = torch.arange(B, device=images.device)[:, None, None]
    if len(lead) == 2:                                                    # (B, C, H, W)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    return padded[batch, rows, cols]


def batches(images, labels, batch_size, shuffle=False, augment=False, generator=None):
    """Yield (float images (B, 1, 28, 28), labels (B,)) from uint8 tensors on any device."""
    n = images.shape[0]
    order = (torch.randperm(n, generator=generator, device=images.device) if shuffle
             else torch.arange(n, device=images.device))
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        x = images[index]
        if augment:
            x = random_shift(x, generator=generator)
        yield to_float(x), labels[index]
