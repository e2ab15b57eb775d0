"""Every command and helper answers bad input in one clear line and never leaves a broken set of
files (issue: table1, web_export, evaluate and the readers keep results true and whole)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from capsnet_lib import BaselineCNN, CapsNet, load_pretrained, save_checkpoint
from capsnet_lib.figures.dimensions import dimension_effects
from capsnet_lib.evaluate import main as evaluate_main
from capsnet_lib.data.translated import load_affnist
from capsnet_lib.figures.viz import perturb
from capsnet_lib.figures.web_export import export
from capsnet_lib.web_export import main as web_export_main

scipy_io = pytest.importorskip("scipy.io")


def affnist_file(path, images, labels):
    scipy_io.savemat(path, {"affNISTdata": {"image": images, "label_int": labels}})
    return path


GOOD = np.random.default_rng(0).integers(0, 256, (1600, 4)).astype(np.uint8)


@pytest.mark.parametrize("images, labels, message", [
    (GOOD.T.copy(), np.array([1, 2, 3, 4]), "looks stored transposed"),
    (GOOD / 255.0, np.array([1, 2, 3, 4]), "integer pixels 0..255"),
    (np.round(GOOD / 255.0), np.array([1, 2, 3, 4]), "only 0s and 1s"),
    (GOOD.astype(np.int16) - 128, np.array([1, 2, 3, 4]), "pixels 0..255"),
    (GOOD, np.array([1.5, 2, 3, 4]), "whole numbers 0..9"),
    (GOOD, np.array([1, 2, 3, 12]), "must be in 0..9"),
    (np.zeros((1600, 0), np.uint8), np.zeros(0, np.int64), "N >= 1"),
    (GOOD, np.array([1, 2, 3]), "holds 4 images but 3 labels"),
])
def test_a_malformed_affnist_file_is_refused_with_what_was_expected(tmp_path, images, labels, message):
    with pytest.raises(ValueError, match=message):
        load_affnist(affnist_file(tmp_path / "bad.mat", images, labels))


def test_a_well_formed_affnist_file_with_whole_float_values_still_loads(tmp_path):
    images, labels = load_affnist(affnist_file(tmp_path / "ok.mat", GOOD.astype(np.float64), np.array([1., 2, 3, 4])))
    assert images.dtype == torch.uint8 and torch.equal(images[0].flatten(), torch.as_tensor(GOOD[:, 0]))
    assert labels.tolist() == [1, 2, 3, 4]


def test_evaluate_on_a_folder_says_it_is_a_folder_and_names_the_best_pt(tmp_path, capsys):
    save_checkpoint(tmp_path / "best.pt", CapsNet())
    assert evaluate_main([str(tmp_path), "--device", "cpu", "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "best.pt" in err and "does not exist" not in err


def test_a_failed_web_export_leaves_a_good_export_untouched_and_a_new_folder_empty(tmp_path, mnist_root, capsys):
    good = tmp_path / "good"
    assert web_export_main(["--out", str(good), "--digits", "3", "--no-download"]) == 0
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "wide.pt", CapsNet(image_size=40))
    save_checkpoint(tmp_path / "baseline.pt", BaselineCNN())
    for checkpoint, message in (("wide.pt", "28x28"), ("baseline.pt", "BaselineCNN")):
        for out in (good, tmp_path / "new"):
            assert web_export_main(["--out", str(out), "--checkpoint", str(tmp_path / checkpoint), "--digits", "3",
                                    "--no-download"]) == 2
            assert message in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_a_web_export_that_fails_mid_write_leaves_the_old_set(tmp_path, monkeypatch, mnist_root):
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    export(load_pretrained(), images, torch.tensor([1, 2]), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []

    def failing_write(path, write, binary=True):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        with open(path, "wb") as f:
            write(f)
    monkeypatch.setattr("capsnet_lib.figures.web_export.atomic_write", failing_write)
    with pytest.raises(OSError):
        export(load_pretrained(), torch.full((2, 28, 28), 255, dtype=torch.uint8), torch.tensor([3, 4]), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.fixture(scope="module")
def model():
    return load_pretrained()


@pytest.mark.parametrize("capsules, message", [
    (torch.zeros(10, 8), "shape"),
    (torch.zeros(10, 16, dtype=torch.int64), "floating-point"),
    (torch.full((10, 16), float("nan")), "inf or nan"),
])
def test_figure_helpers_refuse_capsules_of_the_wrong_shape_dtype_or_values(model, capsules, message):
    with pytest.raises((ValueError, TypeError), match=message):
        perturb(model, capsules, 3)
    with pytest.raises((ValueError, TypeError), match=message):
        dimension_effects(model, capsules[None], torch.tensor([3]))
    with pytest.raises((ValueError, TypeError), match=message):
        model.decode(capsules[None])


def test_figure_helpers_refuse_a_baseline_model_or_a_class_out_of_range(model):
    with pytest.raises(TypeError, match="needs a CapsNet with a decoder, got a BaselineCNN"):
        perturb(BaselineCNN(), torch.zeros(10, 16), 3)
    with pytest.raises(ValueError, match="no decoder"):
        dimension_effects(CapsNet(reconstruction=False), torch.zeros(1, 10, 16), torch.tensor([3]))
    with pytest.raises(ValueError, match="class in 0..9"):
        perturb(model, torch.zeros(10, 16), 10)


def test_the_panel_refuses_a_baseline_model_and_images_of_the_wrong_shape(model):
    panel = pytest.importorskip("capsnet_lib.figures.panel")
    with pytest.raises(TypeError, match="BaselineCNN"):
        panel.perturbation_panel(BaselineCNN(), torch.zeros(2, 1, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        panel.perturbation_panel(model, torch.zeros(2, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="labels must have shape"):
        panel.perturbation_panel(model, torch.zeros(2, 1, 28, 28), torch.tensor([1, 2, 3]))


def test_after_a_torchrun_process_group_is_left_only_rank_0_counts_as_main(monkeypatch):
    from capsnet_lib.training import distributed
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert distributed.is_main_process()


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_evaluate_refuses_a_checkpoint_with_nan_or_inf_weights_in_one_line(tmp_path, capsys, bad_value):
    model = CapsNet(reconstruction=False)
    with torch.no_grad():
        model.digit_caps.W[0, 0, 0] = bad_value          # checksummed as saved: not corruption, a diverged run
    save_checkpoint(tmp_path / "best.pt", model)
    assert evaluate_main([str(tmp_path / "best.pt"), "--device", "cpu", "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "nan or inf weights (digit_caps.W)" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--steps", "-1"], ["--steps", "0"], ["--batch-size", "0"]])
def test_the_step_benchmark_refuses_a_count_below_one_before_timing_anything(option):
    script = Path(__file__).parent.parent / "benchmarks" / "train_step.py"
    result = subprocess.run([sys.executable, str(script), *option], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"{option[0]} must be >= 1, got {option[1]}" in result.stderr, result.stderr
    assert "images/s" not in result.stdout
