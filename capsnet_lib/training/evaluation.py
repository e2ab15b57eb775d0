"""Evaluation: predictions, accuracy and error reports, in batches, in eval mode.

The test set is for reporting only; choose checkpoints on the validation split (the training loop does).
"""
import torch

from ..data.mnist import to_float
from ..data.tasks import select
from ..model import NUM_CLASSES, predicted_classes
from .precision import autocast
from .runtime import in_layout


@torch.no_grad()
def in_batches(model, images, work, batch_size=500, precision="fp32"):
    """[work(rows, index) for each batch of `images`], with the model in eval mode (restored after)
    and the precision's autocast."""
    was_training = model.training
    model.eval()
    try:
        results = []
        for start in range(0, images.shape[0], batch_size):
            index = slice(start, start + batch_size)
            with autocast(images.device, precision):
                results.append(work(images[index], index))
        return results
    finally:
        model.train(was_training)


def predict(model, images, batch_size=500, precision="fp32"):
    """Predicted classes (N,) for uint8 images (N, 28, 28), on the images' device: the longest
    digit capsule of a CapsNet, the largest logit of the baseline CNN."""
    classes = lambda rows, _: predicted_classes(model, in_layout(to_float(rows)))
    return torch.cat(in_batches(model, images, classes, batch_size, precision))


def correct_on(task, model, images, targets, precision="fp32", batch_size=500):
    """(N,) bool: which images of a task's fixed set (task.fixed_set) the model gets right. Stays
    on the device: no host sync per batch."""
    right = lambda rows, index: task.correct(model, rows, select(targets, index))
    return torch.cat(in_batches(model, images, right, batch_size, precision))


def accuracy(task, model, images, targets, precision="fp32", batch_size=500):
    """The fraction of a task's fixed set that the model gets right (in the runtime's layout)."""
    return correct_on(task, model, in_layout(images), targets, precision, batch_size).sum().item() / images.shape[0]


def error_report(predictions, labels):
    """{'accuracy', 'errors', 'total', 'errors_per_class': [10 counts by true class]}."""
    wrong = predictions.cpu() != labels.cpu()
    per_class = torch.bincount(labels.cpu()[wrong], minlength=NUM_CLASSES)
    return {"accuracy": 1.0 - wrong.float().mean().item(), "errors": int(wrong.sum()),
            "total": labels.numel(), "errors_per_class": per_class.tolist()}
