"""Sec. 5.2's robustness curves (robustness.py) and Sec. 6's Figure 5 (multimnist.redraw_pair, viz)."""
import math

import pytest
import torch

from capsnet_lib import BaselineCNN, CapsNet, load_mnist, save_checkpoint
from capsnet_lib.training.evaluation import accuracy
from capsnet_lib.data.multimnist import redraw_pair
from capsnet_lib.experiments.robustness import BIN_EDGES, affine_results, binned_accuracy
from capsnet_lib.robustness import main as robustness_main
from capsnet_lib.data.tasks import TEST_SETS
from capsnet_lib.data.translated import AFFNIST_STYLE
from capsnet_lib.figures.viz import two_colour_overlay


def test_binned_accuracy_counts_each_value_once_with_the_last_edge_inside():
    values = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    correct = torch.tensor([True, False, True, True, False, True])
    rows = binned_accuracy(correct, values, [-1.0, 0.0, 1.0])
    assert rows[0] == (-1.0, 0.0, 2, 0.5)                      # -1 and -0.5
    assert rows[1] == (0.0, 1.0, 3, pytest.approx(2 / 3))      # 0, 0.5 and 1 (the last edge is inside)
    assert math.isnan(binned_accuracy(correct, values, [5.0, 6.0])[0][3])


def test_affine_results_are_the_evaluated_affine_set_with_its_parameters(mnist_root, seeded):
    digits, labels = (t[:30] for t in load_mnist("val", mnist_root, download=False))
    model = BaselineCNN(image_size=40).eval()
    results = affine_results(model, digits, labels, batch_size=7)
    task = TEST_SETS["affnist_style"]
    assert results["correct"].float().mean().item() == pytest.approx(
        accuracy(task, model, *task.fixed_set(digits, labels, torch.device("cpu"))))
    assert results["rotation_degrees"].abs().max() <= AFFNIST_STYLE["rotation_degrees"]
    assert results["shear"].abs().max() <= AFFNIST_STYLE["shear"]
    assert 0.8 <= results["scale"].min() and results["scale"].max() <= 1.2


def test_the_robustness_command_writes_every_bin_and_refuses_a_28x28_model(tmp_path, mnist_root, capsys, seeded):
    save_checkpoint(tmp_path / "capsnet.pt", CapsNet(image_size=40))
    save_checkpoint(tmp_path / "cnn.pt", BaselineCNN(image_size=40))
    common = ["--data-root", str(mnist_root), "--no-download", "--limit", "12"]
    out = tmp_path / "robustness.csv"
    assert robustness_main([str(tmp_path / "capsnet.pt"), str(tmp_path / "cnn.pt"), "--out", str(out)] + common) == 0
    lines = out.read_text().splitlines()
    per_model = 2 + sum(len(edges) - 1 for edges in BIN_EDGES.values())
    assert len(lines) == 1 + 2 * per_model
    for model in ("capsnet", "baseline_cnn"):
        for measure in BIN_EDGES:
            counts = [int(line.split(",")[4]) for line in lines if line.startswith(f"{model},{measure},")]
            assert sum(counts) == 12, f"{model}'s {measure} bins must hold every digit once"
    save_checkpoint(tmp_path / "mnist.pt", CapsNet())
    assert robustness_main([str(tmp_path / "mnist.pt"), "--out", str(out)] + common) == 2
    assert "Sec. 5.2's models take 40x40" in capsys.readouterr().err


def test_redraw_pair_decodes_each_asked_class_from_its_own_capsule(seeded):
    model = CapsNet(image_size=36).eval()
    images = torch.rand(3, 1, 36, 36)
    with torch.no_grad():
        out = model(images)
        classes, first, second = redraw_pair(model, images)
        assert torch.equal(classes, out.lengths.topk(2, dim=1).indices)
        asked = torch.tensor([[0, 9], [1, 2], [3, 4]])
        _, first, second = redraw_pair(model, images, asked)
        alone = out.digit_caps * torch.nn.functional.one_hot(asked[:, 1], 10)[..., None]   # capsule 9, 2, 4 only
        assert torch.allclose(second, model.decoder.net(alone.flatten(1)).view_as(second), atol=1e-6)
        assert not torch.allclose(first, second)


def test_the_two_colour_overlay_puts_each_reconstruction_in_its_own_channel():
    image, first, second = torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)
    first[0, 0, 0], second[0, 3, 3] = 1.0, 1.0
    rgb = two_colour_overlay(image, first, second)
    assert rgb.shape == (4, 4, 3)
    assert tuple(rgb[0, 0]) == (1.0, 0.0, 0.0) and tuple(rgb[3, 3]) == (0.0, 1.0, 0.0)


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_the_robustness_command_refuses_a_limit_below_one_before_loading_anything(tmp_path, capsys, limit):
    out = tmp_path / "robustness.csv"
    assert robustness_main([str(tmp_path / "missing.pt"), "--out", str(out), "--limit", limit, "--no-download"]) == 2
    assert f"--limit must be >= 1 (the first N test digits), got {limit}" in capsys.readouterr().err
    assert not out.exists()
