import csv
import subprocess
import sys

import pytest
import torch

import capsnet_lib.training.loop as loop
from capsnet_lib import load_checkpoint
from capsnet_lib.evaluate import main as evaluate_main
from capsnet_lib.train import main as train_main
from capsnet_lib.training.config import TrainConfig
from capsnet_lib.training.loop import run_training


def tiny(out, **changes):
    """A run of 8 steps per epoch on 256 images, validated on 64."""
    settings = dict(epochs=2, batch_size=32, train_limit=256, val_limit=64, out=str(out),
                    download=False, progress=False, device="cpu")
    settings.update(changes)
    return TrainConfig(**settings)


def weights(path):
    return load_checkpoint(path).model.state_dict()


def assert_same_weights(a, b):
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


def run_killed_in_epoch_two(config, monkeypatch):
    """Run a tiny config (8 steps an epoch) until it is killed at step 3 of epoch 2 (KeyboardInterrupt)."""
    real_step, calls = loop.train_step, []

    def killed_in_epoch_two(*args, **options):
        calls.append(1)
        if len(calls) == 11:                      # step 3 of epoch 2
            raise KeyboardInterrupt
        return real_step(*args, **options)
    monkeypatch.setattr(loop, "train_step", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_training(config)
    monkeypatch.undo()


def test_same_seed_gives_the_same_losses_bit_for_bit(tmp_path, mnist_root):
    first = run_training(tiny(tmp_path / "a", epochs=1))
    second = run_training(tiny(tmp_path / "b", epochs=1))
    assert first[0]["train_loss"] == second[0]["train_loss"]
    assert_same_weights(weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt"))


def test_resume_continues_exactly_where_the_run_stopped(tmp_path, mnist_root):
    run_training(tiny(tmp_path / "whole"))
    run_training(tiny(tmp_path / "split", epochs=1))
    resumed = run_training(tiny(tmp_path / "split", resume=True))
    assert [row["epoch"] for row in resumed] == [1, 2]
    assert_same_weights(weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "split" / "last.pt"))
    state = load_checkpoint(tmp_path / "split" / "last.pt").extra
    assert state["step"] == 16 and state["schedule"]["last_epoch"] == 16


def test_a_run_killed_mid_epoch_resumes_from_its_last_checkpoint(tmp_path, mnist_root, monkeypatch):
    run_training(tiny(tmp_path / "whole"))
    run_killed_in_epoch_two(tiny(tmp_path / "killed"), monkeypatch)
    assert load_checkpoint(tmp_path / "killed" / "last.pt").extra["epoch"] == 1
    run_training(tiny(tmp_path / "killed", resume=True))
    assert_same_weights(weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "killed" / "last.pt"))


def test_model_selection_uses_validation_never_test(tmp_path, mnist_root, monkeypatch):
    asked = []
    real_load = loop.load_mnist
    monkeypatch.setattr(loop, "load_mnist", lambda split, *a: asked.append(split) or real_load(split, *a))
    history = run_training(tiny(tmp_path / "run", epochs=3))
    assert sorted(set(asked)) == ["train", "val"]
    best = load_checkpoint(tmp_path / "run" / "best.pt").extra
    assert best["val_accuracy"] == max(row["val_accuracy"] for row in history)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert list(rows[0]) == list(loop.METRICS) and len(rows) == 3


def test_short_training_run_beats_90_percent_validation_accuracy(tmp_path, mnist_root):
    steps, val_images = 120, 1000
    history = run_training(TrainConfig(epochs=1, batch_size=32, max_steps=steps, val_limit=val_images, out=str(tmp_path),
                                       download=False, progress=False, device="cpu"))
    accuracy = history[-1]["val_accuracy"]
    print(f"{steps} steps of 32: validation accuracy {accuracy:.4f} on {val_images:,} images")
    assert accuracy > 0.90, f"expected > 90% validation accuracy after {steps} steps, got {accuracy:.2%}"


def test_train_cli_reports_a_missing_data_root_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "capsnet_lib.train", "--data-root", str(tmp_path),
                             "--no-download", "--out", str(tmp_path / "out"), "--device", "cpu"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: MNIST not found: expected the files" in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--routing-iterations", "0"], "routing_iterations must be an integer in 1..100"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--device", "cuda:banana"], "unknown device"),
])
def test_train_cli_rejects_bad_settings(tmp_path, capsys, argv, message):
    assert train_main(argv + ["--out", str(tmp_path), "--no-download"]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    assert evaluate_main([str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


def test_evaluate_cli_prints_accuracy_and_per_class_errors(tmp_path, mnist_root, capsys):
    run_training(tiny(tmp_path, epochs=1))
    assert evaluate_main([str(tmp_path / "best.pt"), "--split", "val", "--no-download", "--device", "cpu",
                          "--limit", "300"]) == 0
    out = capsys.readouterr().out
    assert "val accuracy:" in out and "errors in 300 images" in out
    assert out.count(": ") >= 10 and "errors per true class: 0:" in out


def test_the_routing_and_loss_options_reach_the_trained_model(tmp_path, mnist_root):
    out = tmp_path / "authors"
    assert train_main(["--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--train-limit", "16",
                       "--val-limit", "8", "--device", "cpu", "--no-download", "--no-progress",
                       "--data-root", str(mnist_root), "--out", str(out), "--no-routing-detach", "--routing-bias",
                       "--reconstruction-weight", "0.001"]) == 0
    saved = load_checkpoint(out / "last.pt")
    assert saved.config["routing_detach"] is False and saved.config["routing_bias"] is True
    assert saved.model.digit_caps.bias is not None
    assert saved.extra["train_config"]["reconstruction_weight"] == 0.001
