"""Sec. 6's MultiMNIST: two overlapping digits of different classes in one 36x36 image.

Each digit is padded to 36x36 and shifted by up to 4 pixels in each direction; the two are
added and clipped to 1, as the authors' generator adds and clips uint8 images at 255. The
paper's model must name both digits (its two longest capsules) and reconstructs each digit from
its own capsule. Generated on the fly, on the images' device, from a seeded generator.
"""
import torch
import torch.nn.functional as F

from ..losses import margin_loss_targets, reconstruction_loss
from .mnist import random_shift

SIZE, MAX_SHIFT = 36, 4


def partners(labels, generator=None, pool=None, tries=100):
    """For every digit, the index into `pool` (the labels to pair from; default `labels` itself) of
    a digit with a different label."""
    pool = labels if pool is None else pool
    choice = torch.randint(0, pool.shape[0], labels.shape, generator=generator, device=labels.device)
    for _ in range(tries):
        same = pool[choice] == labels
        if not same.any():
            return choice
        choice = torch.where(same, torch.randint(0, pool.shape[0], labels.shape, generator=generator,
                                                 device=labels.device), choice)
    raise ValueError("could not find a partner of another class for every digit; are all labels equal?")


def pairs(images, labels, generator=None, size=SIZE, max_shift=MAX_SHIFT, pool=None):
    """uint8 digits (N, 28, 28) and labels (N,) -> one MultiMNIST image per digit, its partner drawn
    from the same digits, or from `pool` = (images, labels) of the whole split if given.

    Returns a dict: images (N, 1, S, S) float in [0, 1], the overlay; first and second (N, 1, S, S),
    each digit alone where it sits in the overlay (the reconstruction targets); labels (N, 2), the two
    classes, always different."""
    pool_images, pool_labels = (images, labels) if pool is None else pool
    other = partners(labels, generator, pool_labels)
    pad = (size - images.shape[-1]) // 2
    padded = lambda x: F.pad(x.float() / 255, (pad, size - images.shape[-1] - pad) * 2)
    first = random_shift(padded(images), max_shift, generator)
    second = random_shift(padded(pool_images[other]), max_shift, generator)
    return {"images": (first + second).clamp(max=1.0)[:, None], "first": first[:, None], "second": second[:, None],
            "labels": torch.stack([labels, pool_labels[other]], dim=1)}


def present(label_pairs, num_classes=10):
    """(N, 2) class pairs -> (N, K) 0/1 targets T_k with both classes present."""
    return F.one_hot(label_pairs, num_classes).amax(dim=1).float()


def two_digit_margin_loss(lengths, label_pairs):
    """Eq. 4 with two present classes: T_k = 1 for both digits' classes."""
    return margin_loss_targets(lengths, present(label_pairs, lengths.shape[1]))


def two_digit_reconstruction_loss(model, digit_caps, batch):
    """Each digit reconstructed from its own capsule, against that digit alone (Sec. 6)."""
    first = model.decode(digit_caps, batch["labels"][:, 0])
    second = model.decode(digit_caps, batch["labels"][:, 1])
    return reconstruction_loss(first, batch["first"]) + reconstruction_loss(second, batch["second"])


def two_digit_correct(lengths, label_pairs):
    """(N,) bool: the two longest capsules are exactly the two digits (the paper's criterion)."""
    top_two = lengths.topk(2, dim=1).indices.sort(dim=1).values
    return (top_two == label_pairs.sort(dim=1).values).all(dim=1)


@torch.no_grad()
def redraw_pair(model, images, classes=None):
    """Fig. 5: each digit of an overlay redrawn from its own capsule.

    images (N, 1, S, S) -> (classes (N, 2), first (N, 1, S, S), second (N, 1, S, S)). classes are the
    two longest capsules (the model's answer) unless given; the paper also decodes a class that is
    not in the image, to show that the model does not draw what is not there."""
    out = model(images)
    if classes is None:
        classes = out.lengths.topk(2, dim=1).indices
    return classes, model.decode(out.digit_caps, classes[:, 0]), model.decode(out.digit_caps, classes[:, 1])
