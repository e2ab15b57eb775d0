"""capsnet_lib.training.ensemble: K members trained as one step are K lone runs."""
import csv

import pytest
import torch

from capsnet_lib import load_checkpoint
from capsnet_lib.data.mnist import load_mnist
from capsnet_lib.training.ensemble import build_ensemble, ensemble_step, train_ensemble
from capsnet_lib.evaluate import main as evaluate_main
from capsnet_lib.training.runtime import setup_runtime
from capsnet_lib.data.tasks import TASKS
from capsnet_lib.training.config import TrainConfig
from capsnet_lib.training.loop import (epoch_generator, make_model, make_optimizer, objective, run_training,
                                      train_step)
from capsnet_lib.training.schedules import make_schedule

MEMBERS = [dict(seed=0), dict(seed=1, reconstruction=False), dict(seed=2, reconstruction_weight=0.001)]


def tiny(out, **changes):
    settings = dict(epochs=1, batch_size=16, train_limit=32, val_limit=16, out=str(out), download=False,
                    progress=False, device="cpu", precision="fp32")
    return TrainConfig(**{**settings, **changes})


def lone_losses(config, train_x, train_y, steps):
    torch.manual_seed(config.seed)
    model = make_model(config)
    optimizer, runtime = make_optimizer(model, config), setup_runtime("cpu", "fp32")
    schedule = make_schedule(optimizer, config)
    losses = []
    batches = TASKS["mnist"].batches(train_x, train_y, config.batch_size, epoch_generator(config, 0, train_x.device))
    for _, (images, labels) in zip(range(steps), batches):
        losses.append(train_step(model, optimizer, images, labels, runtime.precision, objective(config)).item())
        schedule.step()
    return losses


def test_an_ensemble_step_gives_each_member_the_losses_of_its_lone_run(tmp_path, mnist_root):
    configs = [tiny(tmp_path / str(k), **m, train_limit=128) for k, m in enumerate(MEMBERS)]
    train_x, train_y = (t[:128] for t in load_mnist("train", mnist_root, download=False))
    steps, runtime = 8, setup_runtime("cpu", "fp32")
    ensemble = build_ensemble(configs, runtime.device)
    streams = [TASKS["mnist"].batches(train_x, train_y, 16, epoch_generator(c, 0, train_x.device)) for c in configs]
    together = []
    for _, batch in zip(range(steps), zip(*streams)):
        images, labels = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
        together.append(ensemble_step(ensemble, images, labels, runtime))
    together = torch.stack(together)                                    # (steps, K)
    assert together.shape == (steps, 3)
    for k, config in enumerate(configs):
        alone = torch.tensor(lone_losses(config, train_x, train_y, steps))
        gap = (together[:, k] - alone).abs().max().item()
        assert gap < 1e-4, f"member {k} ({MEMBERS[k]}): losses differ from its lone run by up to {gap:.2e}"
    # a control: the members really differ (seeds, reconstruction), so the comparison could fail
    assert (together[:, 0] - together[:, 1]).abs().max() > 1e-2


def test_each_member_writes_a_lone_runs_folder_that_resumes(tmp_path, mnist_root):
    configs = [tiny(tmp_path / "ens" / str(k), **m, epochs=2) for k, m in enumerate(MEMBERS)]
    trained = train_ensemble([tiny(c.out, **m, epochs=1) for c, m in zip(configs, MEMBERS)], log=lambda line: None)
    assert all(len(rows) == 1 for rows in trained.values())
    resumed = train_ensemble([tiny(c.out, **m, epochs=2, resume=True) for c, m in zip(configs, MEMBERS)],
                             log=lambda line: None)
    assert [[r["epoch"] for r in rows] for rows in resumed.values()] == [[2], [2], [2]]
    for k, config in enumerate(configs):
        metrics = list(csv.DictReader(open(tmp_path / "ens" / str(k) / "metrics.csv")))
        assert [int(r["epoch"]) for r in metrics] == [1, 2]
        last = load_checkpoint(tmp_path / "ens" / str(k) / "last.pt")
        assert last.config["reconstruction"] == config.reconstruction
        assert last.extra["train_config"]["seed"] == config.seed and last.extra["ensemble_size"] == 3
    # a lone run can take over a member's folder: train --resume accepts its last.pt
    lone = run_training(tiny(tmp_path / "ens" / "1", **MEMBERS[1], epochs=3, resume=True))
    assert [r["epoch"] for r in lone] == [1, 2, 3]          # the history it continued, then epoch 3
    assert evaluate_main([str(tmp_path / "ens" / "0" / "best.pt"), "--device", "cpu", "--no-download", "--limit", "100"]) == 0


def test_a_resumed_ensemble_equals_an_uninterrupted_one(tmp_path, mnist_root):
    whole = [tiny(tmp_path / "whole" / str(k), **m, epochs=2) for k, m in enumerate(MEMBERS)]
    train_ensemble(whole, log=lambda line: None)
    split = [tiny(tmp_path / "split" / str(k), **m, epochs=1) for k, m in enumerate(MEMBERS)]
    train_ensemble(split, log=lambda line: None)
    train_ensemble([tiny(c.out, **m, epochs=2, resume=True) for c, m in zip(split, MEMBERS)], log=lambda line: None)
    for k in range(3):
        a = load_checkpoint(tmp_path / "whole" / str(k) / "last.pt").model.state_dict()
        b = load_checkpoint(tmp_path / "split" / str(k) / "last.pt").model.state_dict()
        for name in a:
            assert torch.equal(a[name], b[name]), f"member {k}: {name} differs after resuming"


def test_an_ensemble_refuses_members_that_cannot_share_a_step(tmp_path):
    with pytest.raises(ValueError, match="routing_iterations"):
        train_ensemble([tiny(tmp_path / "a"), tiny(tmp_path / "b", routing_iterations=1)])
    with pytest.raises(ValueError, match="baseline_cnn"):
        train_ensemble([tiny(tmp_path / "a", model="baseline_cnn")])
    with pytest.raises(ValueError, match="own output folder"):
        train_ensemble([tiny(tmp_path / "a"), tiny(tmp_path / "a", seed=1)])


def test_a_deadline_stops_an_ensemble_after_a_saved_epoch(tmp_path, mnist_root):
    configs = [tiny(tmp_path / str(k), seed=k, epochs=5, deadline=0.0) for k in range(2)]
    trained = train_ensemble(configs, log=lambda line: None)
    assert [len(rows) for rows in trained.values()] == [1, 1]
    assert load_checkpoint(tmp_path / "0" / "last.pt").extra["epoch"] == 1
