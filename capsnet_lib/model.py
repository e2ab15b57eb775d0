"""The assembled CapsNet (Sec. 4, Fig. 1-2), its decoder, and the paper's baseline CNN."""
import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .capsules import DigitCaps, PrimaryCaps, capsule_length

NUM_CLASSES = 10
DIGIT_CAPS_DIM = 16                 # the pose of a digit capsule (Sec. 4)
IMAGE_SHAPE = (1, 28, 28)


def check_images(images, image_size=IMAGE_SHAPE[-1]):
    """Raise a clear error unless `images` is a float tensor of shape (B, 1, S, S), S = image_size
    (28 for MNIST), finite. Any floating dtype is accepted; the models compute in their own."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point in [0, 1], got dtype {images.dtype}; "
                        "convert uint8 pixels with images.float() / 255")
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, image_size, image_size):
        raise ValueError(f"images must have shape (B, 1, {image_size}, {image_size}), got {tuple(images.shape)}")
    # Only on the CPU: on a GPU the check would force a host sync every step.
    if images.device.type == "cpu" and not torch.isfinite(images).all():
        bad = (~torch.isfinite(images)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"images hold inf or nan pixels (images {bad[:5]}{' ...' if len(bad) > 5 else ''}); "
                         "a capsule length of nan would silently predict class 0")


def check_labels(labels, batch_size):
    """Raise a clear error unless `labels` holds `batch_size` class indices in 0..9 (any integer
    dtype; the models use them as int64)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of class indices, got dtype {labels.dtype}")
    if labels.shape != (batch_size,):
        raise ValueError(f"labels must have shape ({batch_size},) to match the images, "
                         f"got {tuple(labels.shape)}")
    # Range check only on the CPU: on a GPU it would force a host sync every step.
    if labels.device.type == "cpu" and batch_size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must be in 0..{NUM_CLASSES - 1}, "
                         f"got values from {labels.min().item()} to {labels.max().item()}")


def check_digit_caps(digit_caps):
    """Raise a clear error unless `digit_caps` is a float tensor (B, 10, 16) of finite values (the
    finiteness only on the CPU, where it costs no host sync): a nan capsule decodes to a nan image."""
    if not isinstance(digit_caps, torch.Tensor) or not digit_caps.is_floating_point():
        raise TypeError(f"digit capsules must be a floating-point tensor (B, {NUM_CLASSES}, {DIGIT_CAPS_DIM}), got "
                        f"{getattr(digit_caps, 'dtype', type(digit_caps).__name__)}")
    if digit_caps.dim() != 3 or tuple(digit_caps.shape[1:]) != (NUM_CLASSES, DIGIT_CAPS_DIM):
        raise ValueError(f"digit_caps must have shape (B, {NUM_CLASSES}, {DIGIT_CAPS_DIM}), "
                         f"got {tuple(digit_caps.shape)}")
    if digit_caps.device.type == "cpu" and not torch.isfinite(digit_caps).all():
        raise ValueError("digit capsules hold inf or nan values; they would decode to nan images")


def require_decoder(model):
    """Raise a clear error unless `model` is a CapsNet with a decoder (Figures 3 and 4 need one)."""
    if not isinstance(model, CapsNet):
        raise TypeError(f"this needs a CapsNet with a decoder, got a {type(model).__name__}")
    if model.decoder is None:
        raise ValueError("this needs a CapsNet with a decoder, and this one has no decoder "
                         "(it was built with reconstruction=False)")


class Decoder(nn.Module):
    """Fig. 2: the masked digit capsules (10 x 16) -> 512 -> 1024 -> 784 pixels (S x S for
    another image size S)."""

    def __init__(self, num_caps=NUM_CLASSES, caps_dim=DIGIT_CAPS_DIM, image_size=IMAGE_SHAPE[-1]):
        super().__init__()
        self.image_shape = (1, image_size, image_size)
        self.net = nn.Sequential(
            nn.Linear(num_caps * caps_dim, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, math.prod(self.image_shape)), nn.Sigmoid(),
        )

    def forward(self, digit_caps, labels=None):
        """digit_caps (B, 10, 16) -> images (B, 1, S, S) (S = 28 for MNIST).

        Keeps one capsule and zeroes the rest: the one named by `labels` if given (training
        uses the true label), else the longest one (the prediction).
        """
        if labels is None:
            labels = capsule_length(digit_caps).argmax(dim=1)
        mask = F.one_hot(labels, digit_caps.shape[1]).to(digit_caps.dtype)   # (B, 10)
        pixels = self.net((digit_caps * mask.unsqueeze(-1)).flatten(1))      # (B, S * S)
        return pixels.view(-1, *self.image_shape)


@dataclass
class CapsNetConfig:
    routing_iterations: int = 3
    reconstruction: bool = True
    routing_detach: bool = True      # only the last routing iteration carries gradient (see dynamic_routing)
    routing_bias: bool = False       # a learned bias on s_j, as in the authors' code (not in the paper)
    image_size: int = 28             # 40 for translated MNIST, 36 for MultiMNIST (Sec. 5.2, 6)


@dataclass
class CapsNetOutput:
    digit_caps: torch.Tensor                 # (B, 10, 16) float32
    lengths: torch.Tensor                    # (B, 10) float32, class "probabilities"
    coupling: torch.Tensor                   # (B, I, 10) coupling coefficients c_ij; I = 1152 for 28x28
    reconstructions: Optional[torch.Tensor]  # (B, 1, S, S), None without a decoder


def primary_grid(image_size):
    """The side of the PrimaryCaps grid for S x S images: Conv1 (9x9) leaves S - 8, the PrimaryCaps
    convolution (9x9, stride 2) (S - 17) // 2 + 1. 6 for MNIST's 28, 12 for 40, 10 for 36."""
    return (image_size - 17) // 2 + 1


class CapsNet(nn.Module):
    """Conv1 (256, 9x9) -> PrimaryCaps (32 x 6 x 6 capsules of 8D for 28x28) -> DigitCaps (10 of 16D).

    image_size S: for S x S images the PrimaryCaps grid is primary_grid(S) square, and the decoder
    draws S x S pixels; 28 (MNIST) unless a config says otherwise."""

    def __init__(self, routing_iterations=3, reconstruction=True, routing_detach=True, routing_bias=False,
                 image_size=28):
        super().__init__()
        for name, value in (("routing_detach", routing_detach), ("routing_bias", routing_bias)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if not isinstance(image_size, int) or isinstance(image_size, bool) or not 17 <= image_size <= 512:
            raise ValueError(f"image_size must be a whole number of pixels in 17..512, got {image_size!r}")
        self.config = CapsNetConfig(routing_iterations, bool(reconstruction), routing_detach, routing_bias, image_size)
        self.conv1 = nn.Conv2d(1, 256, kernel_size=9)
        self.primary_caps = PrimaryCaps()
        num_primary = self.primary_caps.num_types * primary_grid(image_size) ** 2
        self.digit_caps = DigitCaps((num_primary, self.primary_caps.caps_dim), (NUM_CLASSES, DIGIT_CAPS_DIM),
                                    routing_iterations, detach=routing_detach, bias=routing_bias)
        self.decoder = Decoder(image_size=image_size) if reconstruction else None

    def forward(self, images, labels=None, check_inputs=True):
        """check_inputs=False skips the input checks, for a caller that has checked already
        (training/ensemble.py checks a stacked batch once: data-dependent checks cannot run under vmap)."""
        if check_inputs:
            check_images(images, self.config.image_size)
        if labels is not None:
            if check_inputs:
                check_labels(labels, images.shape[0])
            labels = labels.long()
        x = F.relu(self.conv1(images.to(self.conv1.weight.dtype)))   # (B, 256, S - 8, S - 8): 20x20 for MNIST
        u = self.primary_caps(x)                            # (B, I, 8), I = 32 * primary_grid(S)^2: 1152
        v, c = self.digit_caps(u)                           # (B, 10, 16), (B, I, 10)
        lengths = capsule_length(v)                         # (B, 10)
        reconstructions = self.decoder(v, labels) if self.decoder is not None else None
        return CapsNetOutput(v, lengths, c, reconstructions)

    def decode(self, digit_caps, labels=None):
        """Reconstruct images from any (e.g. perturbed) digit capsules (B, 10, 16) (Fig. 4)."""
        require_decoder(self)
        check_digit_caps(digit_caps)
        if labels is not None:
            check_labels(labels, digit_caps.shape[0])
            labels = labels.long()
        return self.decoder(digit_caps, labels)

    def config_dict(self):
        return asdict(self.config)


@dataclass
class BaselineConfig:
    model: str = "baseline_cnn"     # tells a checkpoint of the baseline from a CapsNet's
    dropout: float = 0.5
    image_size: int = IMAGE_SHAPE[-1]


# image size -> (a 2x2 max-pool after conv1 and conv2?, the first FC layer's width)
BASELINE_SHAPES = {28: (False, 328), 40: (True, 840)}


class BaselineCNN(nn.Module):
    """Sec. 5 baseline: conv 256, 256, 128 (5x5, stride 1); FC 328, 192; dropout; 10-way softmax.

    'Same' padding and no pooling give the paper's 35.4M parameters at 28x28. For 40x40 (Sec. 5.2,
    where the paper compares with 'a traditional convolutional model with a similar number of
    parameters' and gives no layers) the same convolutions get a 2x2 max-pool after the first two
    and FC 840, 192: 13.4M parameters, against CapsNet's 13.5M at 40x40. forward returns logits;
    it is trained with softmax cross-entropy (tasks.Mnist.loss).
    """

    def __init__(self, dropout=0.5, image_size=IMAGE_SHAPE[-1]):
        super().__init__()
        if image_size not in BASELINE_SHAPES:
            raise ValueError(f"the baseline CNN is defined for {' and '.join(map(str, BASELINE_SHAPES))} pixel "
                             f"square images, got image_size {image_size}")
        self.config = BaselineConfig(dropout=dropout, image_size=image_size)
        pooled, width = BASELINE_SHAPES[image_size]
        pool = [nn.MaxPool2d(2)] if pooled else []          # none at 28x28: the paper's layer indices
        self.features = nn.Sequential(
            nn.Conv2d(1, 256, 5, padding=2), nn.ReLU(inplace=True), *pool,
            nn.Conv2d(256, 256, 5, padding=2), nn.ReLU(inplace=True), *pool,
            nn.Conv2d(256, 128, 5, padding=2), nn.ReLU(inplace=True),
        )
        side = image_size // 4 if pooled else image_size                # (B, 128, side, side) features
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * side * side, width), nn.ReLU(inplace=True),
            nn.Linear(width, 192), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(192, 10),
        )

    def forward(self, images):
        check_images(images, self.config.image_size)
        return self.classifier(self.features(images.to(self.features[0].weight.dtype)))

    def config_dict(self):
        return asdict(self.config)


def complete_config(config):
    """A config dict with every field its model has: the defaults filled in for fields added
    after it was saved (e.g. the shipped model's, which predates routing_detach). Raises
    TypeError for fields neither model has."""
    if config.get("model") == BaselineConfig.model:
        return asdict(BaselineConfig(**config))
    return asdict(CapsNetConfig(**config))


def model_from_config(config):
    """Rebuild a model from its config_dict(): a BaselineCNN if the config says so, else a
    CapsNet. Raises TypeError for fields neither model has."""
    config = complete_config(config)
    if config.pop("model", None) == BaselineConfig.model:
        return BaselineCNN(**config)
    return CapsNet(**config)


def predicted_classes(model, images):
    """(B, 1, 28, 28) -> (B,): the longest digit capsule of a CapsNet, the largest logit of the
    baseline."""
    if isinstance(model, BaselineCNN):
        return model(images).argmax(dim=1)
    return model(images).lengths.argmax(dim=1)
