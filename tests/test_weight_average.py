"""--ema: an exponential moving average of the weights, validated and saved in their place."""
import csv

import pytest
import torch

import capsnet_lib.training.loop as loop
from capsnet_lib import load_checkpoint
from capsnet_lib.train import main as train_main
from capsnet_lib.training.averaging import WeightAverage
from capsnet_lib.training.ensemble import check_ensemble
from capsnet_lib.training.loop import run_training
from test_train import assert_same_weights, run_killed_in_epoch_two, tiny, weights


def test_the_average_follows_the_warmed_up_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average, expected = WeightAverage(model, decay=0.9), 0.0
    for n, value in enumerate([1.0, 2.0, 4.0, -3.0, 5.0, 7.0] * 5, start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model)
        keep = min(0.9, (1 + n) / (10 + n))
        expected = keep * expected + (1 - keep) * value
        assert average.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert average.updates == 30 and not average.module.weight.requires_grad


def test_the_first_updates_do_not_keep_the_initial_weights():
    # A plain EMA at 0.999 would still be 99.9% the initial weights after one step.
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update(model)
    assert average.module.weight.item() == pytest.approx(9 / 11)


def test_the_average_never_changes_the_training_and_is_what_best_pt_holds(tmp_path, mnist_root):
    plain = run_training(tiny(tmp_path / "plain", epochs=1))            # 8 steps
    averaged = run_training(tiny(tmp_path / "ema", epochs=1, ema=0.9))
    assert_same_weights(weights(tmp_path / "plain" / "last.pt"), weights(tmp_path / "ema" / "last.pt"))
    assert [row["live_val_accuracy"] for row in averaged] == [row["val_accuracy"] for row in plain]
    best = load_checkpoint(tmp_path / "ema" / "best.pt")
    saved_average = load_checkpoint(tmp_path / "ema" / "last.pt").extra["average"]
    assert best.extra["val_accuracy"] == averaged[0]["val_accuracy"]
    assert_same_weights(saved_average["weights"], best.model.state_dict())
    live = weights(tmp_path / "ema" / "last.pt")
    assert any(not torch.equal(live[name], saved_average["weights"][name]) for name in live)
    rows = list(csv.DictReader(open(tmp_path / "ema" / "metrics.csv")))
    assert list(rows[0]) == [*loop.METRICS, "live_val_accuracy"]


def test_a_run_with_an_average_killed_mid_epoch_resumes_it_exactly(tmp_path, mnist_root, monkeypatch):
    run_training(tiny(tmp_path / "whole", ema=0.9))
    run_killed_in_epoch_two(tiny(tmp_path / "killed", ema=0.9), monkeypatch)
    run_training(tiny(tmp_path / "killed", ema=0.9, resume=True))
    whole, killed = (load_checkpoint(tmp_path / name / "last.pt").extra["average"] for name in ("whole", "killed"))
    assert whole["updates"] == killed["updates"] == 16
    assert_same_weights(whole["weights"], killed["weights"])


def test_a_run_cannot_be_resumed_with_another_average(tmp_path, mnist_root):
    run_training(tiny(tmp_path / "run", epochs=1, ema=0.9))
    with pytest.raises(ValueError, match="ema was 0.9, now None"):
        run_training(tiny(tmp_path / "run", resume=True))


@pytest.mark.parametrize("decay", ["1.5", "0", "1", "nan"])
def test_train_cli_rejects_a_decay_outside_0_to_1(tmp_path, capsys, decay):
    assert train_main(["--ema", decay, "--out", str(tmp_path), "--no-download"]) == 2
    assert "ema must be a decay in (0, 1)" in capsys.readouterr().err


def test_an_ensemble_refuses_an_average(tmp_path):
    configs = [tiny(tmp_path / f"m{seed}", seed=seed, ema=0.999) for seed in (0, 1)]
    with pytest.raises(ValueError, match="does not average weights"):
        check_ensemble(configs)
