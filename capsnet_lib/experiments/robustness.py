"""Sec. 5.2: accuracy on affine-transformed digits, overall and against each transform parameter.

A model trained on translated 40x40 MNIST is tested on our affNIST-style set (data/translated.py):
each test digit rotated, sheared and scaled by its own random parameters. `affine_results` gives
which digits a model gets right together with those parameters, so accuracy can be read against
rotation, shear and scale (`binned_accuracy`); `python -m capsnet_lib.robustness` writes the table.
"""
import math

from ..data.tasks import TEST_SETS, fixed_generator
from ..data.translated import affine_transformed
from ..training.evaluation import correct_on


BIN_EDGES = {"rotation_degrees": [-20 + 5 * k for k in range(9)],       # 8 bins of 5 degrees
             "shear": [round(-0.2 + 0.05 * k, 2) for k in range(9)],        # 8 bins of 0.05
             "scale": [0.8, 0.9, 1.0, 1.1, 1.2]}                            # 4 bins of 0.1
COLUMNS = ("model", "measure", "low", "high", "images", "accuracy")


def affine_results(model, digits, labels, precision="fp32", batch_size=500):
    """Our affNIST-style set made from uint8 test digits (N, 28, 28) with the fixed seed (the set
    `evaluate --dataset affnist_style` uses), and the model's answers on it.

    Returns {'correct': (N,) bool, 'rotation_degrees', 'shear', 'scale': (N,) each}, where scale is
    sqrt(scale_x * scale_y). Runs on the digits' device."""
    images, params = affine_transformed(digits, fixed_generator(digits.device))
    correct = correct_on(TEST_SETS["affnist_style"], model, images[:, None], labels, precision, batch_size)
    return {"correct": correct, "rotation_degrees": params["rotation_degrees"], "shear": params["shear"],
            "scale": (params["scale_x"] * params["scale_y"]).sqrt()}


def binned_accuracy(correct, values, edges):
    """[(low, high, images, accuracy)] of the images whose value lies in each bin [low, high)
    (the last bin includes its high end); an empty bin has accuracy nan."""
    rows = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (values >= low) & ((values <= high) if k == len(edges) - 2 else (values < high))
        n = int(inside.sum())
        rows.append((low, high, n, correct[inside].float().mean().item() if n else math.nan))
    return rows


def robustness_rows(name, model, digits, labels, precision="fp32"):
    """The CSV rows of one model: translated test accuracy, affNIST-style accuracy, and its bins."""
    task = TEST_SETS["translated40"]
    translated = correct_on(task, model, *task.fixed_set(digits, labels, digits.device), precision)
    results = affine_results(model, digits, labels, precision)
    overall = lambda measure, right: dict(model=name, measure=measure, low="", high="", images=right.numel(),
                                          accuracy=round(right.float().mean().item(), 6))
    rows = [overall("translated_test", translated), overall("affine_test", results["correct"])]
    for measure, edges in BIN_EDGES.items():
        rows += [dict(model=name, measure=measure, low=low, high=high, images=n, accuracy=round(acc, 6))
                 for low, high, n, acc in binned_accuracy(results["correct"], results[measure], edges)]
    return rows
