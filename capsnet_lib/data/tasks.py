"""What a training run learns from: MNIST (Sec. 5), translated 40x40 MNIST (Sec. 5.2) or MultiMNIST
(Sec. 6). A task turns the raw uint8 MNIST digits of a split into batches, a loss and an accuracy;
the training loop and evaluation stay the same for all three.

The validation and test sets of the generated tasks are fixed: made once from the split's digits
with a generator seeded by FIXED_SEED, so every run is selected and tested on the same images.
"""
import torch
import torch.nn.functional as F

from ..losses import RECONSTRUCTION_WEIGHT, capsnet_loss
from ..model import BaselineCNN, predicted_classes
from .mnist import batches, to_float
from .multimnist import pairs, two_digit_correct, two_digit_margin_loss, two_digit_reconstruction_loss
from .translated import affine_transformed, translated

FIXED_SEED = 2017


def fixed_generator(device):
    """The generator every fixed validation and test set is drawn from."""
    return torch.Generator(device=device).manual_seed(FIXED_SEED)


def shuffled(n, batch_size, generator, device):
    """The indices of each batch of one epoch over n items, in a random order."""
    order = torch.randperm(n, generator=generator, device=device)
    return (order[start:start + batch_size] for start in range(0, n, batch_size))


class Mnist:
    """Sec. 5: 28x28 digits, shifted by up to 2 pixels for training."""
    image_size = 28

    def batches(self, images, labels, batch_size, generator):
        """(float images (B, 1, S, S), targets) in a shuffled order, augmented."""
        return batches(images, labels, batch_size, shuffle=True, augment=True, generator=generator)

    def fixed_set(self, images, labels, device):
        """The split's evaluation set: float images (N, 1, S, S) and targets."""
        return to_float(images.to(device)), labels.to(device)

    def loss(self, model, images, targets, reconstruction_weight=RECONSTRUCTION_WEIGHT):
        """A CapsNet's margin + 0.0005 x reconstruction loss, or the baseline's cross-entropy."""
        if isinstance(getattr(model, "module", model), BaselineCNN):      # model may be wrapped by DDP
            return F.cross_entropy(model(images).float(), targets)
        return capsnet_loss(model(images, targets), images, targets, reconstruction_weight)

    def correct(self, model, images, targets):
        """(B,) bool: which images the model gets right (the longest capsule, or the largest logit)."""
        return predicted_classes(model, images) == targets


class Translated(Mnist):
    """Sec. 5.2: each digit at a random position of a 40x40 black canvas (the placement is the
    augmentation)."""
    image_size = 40

    def batches(self, images, labels, batch_size, generator):
        for index in shuffled(images.shape[0], batch_size, generator, images.device):
            yield to_float(translated(images[index], generator)), labels[index]

    def fixed_set(self, images, labels, device):
        return to_float(translated(images.to(device), fixed_generator(device))), labels.to(device)


class AffineTest(Translated):
    """Our affNIST-style test set: only for evaluating a model trained on Translated."""

    def fixed_set(self, images, labels, device):
        return affine_transformed(images.to(device), fixed_generator(device))[0][:, None], labels.to(device)


class MultiMnist:
    """Sec. 6: two overlapping digits in 36x36; both must be named, each is reconstructed from
    its own capsule."""
    image_size = 36

    def batches(self, images, labels, batch_size, generator):
        for index in shuffled(images.shape[0], batch_size, generator, images.device):
            one_class = bool((labels[index] == labels[index[0]]).all())     # e.g. a last batch of one digit
            batch = pairs(images[index], labels[index], generator, pool=(images, labels) if one_class else None)
            yield batch["images"], batch

    def fixed_set(self, images, labels, device):
        batch = pairs(images.to(device), labels.to(device), fixed_generator(device))
        return batch["images"], batch

    def loss(self, model, images, batch, reconstruction_weight=RECONSTRUCTION_WEIGHT):
        out = model(images)
        loss = two_digit_margin_loss(out.lengths, batch["labels"])
        if model.decoder is not None:
            loss = loss + reconstruction_weight * two_digit_reconstruction_loss(model, out.digit_caps, batch)
        return loss

    def correct(self, model, images, batch):
        return two_digit_correct(model(images).lengths, batch["labels"])


TASKS = {"mnist": Mnist(), "translated40": Translated(), "multimnist": MultiMnist()}
TEST_SETS = {"mnist": Mnist(), "translated40": Translated(), "affnist_style": AffineTest(),
             "multimnist": MultiMnist()}


def select(targets, index):
    """Rows `index` of a task's targets (a label tensor, or MultiMNIST's batch dict)."""
    if isinstance(targets, dict):
        return {key: value[index] for key, value in targets.items()}
    return targets[index]
