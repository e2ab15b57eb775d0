"""capsnet_lib.sweep: concurrent runs equal single runs, and a sweep resumes where it stopped."""
import csv

import pytest
import torch

from capsnet_lib import load_checkpoint
from capsnet_lib.experiments.sweep import run_sweep
from capsnet_lib.sweep import main as sweep_main
from capsnet_lib.training.loop import run_training
from test_train import tiny as tiny_run


def tiny(out, **changes):
    """test_train's tiny run, one epoch of 4 steps."""
    return tiny_run(out, **{"epochs": 1, "train_limit": 128, **changes})


def final_weights(out):
    return load_checkpoint(out / "last.pt").model.state_dict()


def test_concurrent_runs_equal_the_same_runs_trained_alone(tmp_path, mnist_root):
    configs = [tiny(tmp_path / "sweep" / f"seed{seed}", seed=seed) for seed in (0, 1)]
    run_sweep(configs, parallel=2, log=lambda line: None)
    for seed in (0, 1):
        run_training(tiny(tmp_path / "alone" / f"seed{seed}", seed=seed))
        swept, alone = final_weights(tmp_path / "sweep" / f"seed{seed}"), final_weights(tmp_path / "alone" / f"seed{seed}")
        for name in alone:
            assert torch.equal(swept[name], alone[name]), f"seed {seed}: {name} differs from the run trained alone"
    assert not torch.equal(final_weights(tmp_path / "sweep" / "seed0")["conv1.weight"],
                           final_weights(tmp_path / "sweep" / "seed1")["conv1.weight"]), "the seeds were mixed up"


def test_a_sweep_started_again_skips_finished_runs_and_extends_unfinished_ones(tmp_path, mnist_root):
    lines = []
    run_sweep([tiny(tmp_path / "a"), tiny(tmp_path / "b", seed=1)], parallel=2, log=lines.append)
    trained = run_sweep([tiny(tmp_path / "a"), tiny(tmp_path / "b", seed=1, epochs=2)], parallel=2, log=lines.append)
    assert trained[str(tmp_path / "a")] == [], "a finished run was trained again"
    assert [row["epoch"] for row in trained[str(tmp_path / "b")]] == [2]
    assert any("finished earlier, skipped" in line for line in lines)
    rows = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    with pytest.raises(ValueError, match=r"holds a run with other settings .*lr was 0.001, now 0.01.*move the folder"):
        run_sweep([tiny(tmp_path / "a", lr=0.01)], log=lines.append)      # never skipped as if it were this run


def test_a_sweep_refuses_two_runs_in_one_folder(tmp_path):
    with pytest.raises(ValueError, match="its own output folder"):
        run_sweep([tiny(tmp_path / "same"), tiny(tmp_path / "same", seed=1)])


def test_sweep_cli_writes_one_folder_per_seed(tmp_path, mnist_root, capsys):
    argv = ["--seeds", "3", "4", "--parallel", "2", "--out", str(tmp_path), "--epochs", "1", "--batch-size", "32",
            "--train-limit", "64", "--val-limit", "32", "--device", "cpu", "--no-download"]
    assert sweep_main(argv) == 0
    for seed in (3, 4):
        extra = load_checkpoint(tmp_path / f"seed{seed}" / "last.pt").extra
        assert extra["train_config"]["seed"] == seed and extra["epoch"] == 1
    assert "2 runs (2 trained now)" in capsys.readouterr().out
    assert sweep_main(argv[:2] + ["--parallel", "0"] + argv[5:]) == 2
