"""The learning-rate schedules, checked against PyTorch's own schedulers, and their resume rules."""
import pytest
import torch

import capsnet_lib as cl
from capsnet_lib.training.schedules import steps_per_epoch
from capsnet_lib.training.loop import run_training
from test_train import tiny


def lrs(schedule_of, steps):
    """The lr before each of `steps` optimizer steps, for a schedule built by schedule_of(optimizer)."""
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=2e-3)
    schedule, seen = schedule_of(optimizer), []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen


@pytest.mark.parametrize("name, reference", [
    ("cosine", lambda optimizer, total: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)),
    ("linear", lambda optimizer, total: torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=total)),
])
def test_the_annealing_schedules_match_pytorchs_and_end_at_zero(name, reference):
    config = cl.TrainConfig(lr=2e-3, schedule=name, epochs=3, batch_size=100, train_limit=1000)   # 30 steps
    total = 3 * steps_per_epoch(config)
    ours = lrs(lambda optimizer: cl.make_schedule(optimizer, config), total + 1)
    theirs = lrs(lambda optimizer: reference(optimizer, total), total + 1)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours[total // 2] == pytest.approx(1e-3)     # half way: half the lr
    assert ours[-1] == 0.0


def test_the_warm_up_rises_linearly_then_hands_over_to_the_schedule():
    config = cl.TrainConfig(lr=2e-3, schedule="cosine", warmup_steps=4, epochs=1, batch_size=100, train_limit=1400)
    seen = lrs(lambda optimizer: cl.make_schedule(optimizer, config), 15)
    assert seen[:5] == pytest.approx([2e-3 * k / 5 for k in (1, 2, 3, 4)] + [2e-3])
    assert seen[5] < seen[4] and seen[14] == 0.0        # 10 cosine steps from the full lr down to 0


def test_the_paper_schedule_ignores_the_length_of_the_run():
    short, long = (cl.TrainConfig(lr=1e-3, epochs=epochs) for epochs in (2, 30))
    assert lrs(lambda o: cl.make_schedule(o, short), 50) == lrs(lambda o: cl.make_schedule(o, long), 50)


@pytest.mark.parametrize("changes, message", [
    (dict(schedule="onecycle"), "schedule must be one of exponential, cosine, linear"),
    (dict(warmup_steps=-1), "warmup_steps must be >= 0"),
    (dict(warmup_steps=16), r"warmup_steps \(16\) must be shorter than the run \(16 steps\)"),
])
def test_unknown_schedules_and_negative_warm_ups_are_refused(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        run_training(tiny(tmp_path, **changes))


def test_an_annealing_run_resumes_only_with_its_own_length(tmp_path, mnist_root):
    """More epochs would stretch the cosine: that is another run, so resume refuses it; the same
    length resumes to the uninterrupted run's weights."""
    run_training(tiny(tmp_path / "whole", schedule="cosine", warmup_steps=3))                    # 2 epochs
    run_training(tiny(tmp_path / "split", schedule="cosine", warmup_steps=3, max_steps=11))
    with pytest.raises(ValueError, match="epochs was 2, now 3"):
        run_training(tiny(tmp_path / "split", schedule="cosine", warmup_steps=3, resume=True, epochs=3))
    run_training(tiny(tmp_path / "split", schedule="cosine", warmup_steps=3, resume=True))
    whole, split = (cl.load_checkpoint(tmp_path / name / "last.pt") for name in ("whole", "split"))
    assert [row["lr"] for row in split.extra["history"]] == [row["lr"] for row in whole.extra["history"]]
    assert whole.extra["history"][-1]["lr"] == 0.0
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(weight, split.model.state_dict()[name]), f"{name} differs after the resume"


def test_a_run_of_the_paper_schedule_refuses_a_cosine_resume(tmp_path, mnist_root):
    run_training(tiny(tmp_path, epochs=1))
    with pytest.raises(ValueError, match="schedule was 'exponential', now 'cosine'"):
        run_training(tiny(tmp_path, epochs=2, resume=True, schedule="cosine"))


# --- named recipes ---------------------------------------------------------------------------------

def test_the_paper_recipe_is_the_configs_default():
    from capsnet_lib.training.recipes import RECIPES
    assert cl.TrainConfig.from_recipe("paper") == cl.TrainConfig()
    assert all(getattr(cl.TrainConfig(), name) == value for name, value in RECIPES["paper"].items())


def test_a_recipe_fills_only_the_flags_not_given_and_the_checkpoint_records_it(tmp_path, mnist_root):
    from capsnet_lib.cli import build_parser, config_from_args
    parser = build_parser("python -m capsnet_lib.train", "")
    fast = config_from_args(parser.parse_args(["--recipe", "fast"]))
    assert (fast.recipe, fast.schedule, fast.lr, fast.epochs, fast.warmup_steps) == ("fast", "cosine", 3e-3, 6, 200)
    changed = config_from_args(parser.parse_args(["--recipe", "fast", "--lr", "2e-3", "--epochs", "2"]))
    assert (changed.lr, changed.epochs, changed.schedule) == (2e-3, 2, "cosine")
    assert config_from_args(parser.parse_args([])) == cl.TrainConfig()
    run_training(cl.TrainConfig.from_recipe("fast", warmup_steps=3, epochs=1, batch_size=32, train_limit=256,
                                            val_limit=64, out=str(tmp_path), download=False, progress=False,
                                            device="cpu"))
    saved = cl.load_checkpoint(tmp_path / "best.pt").extra["train_config"]
    assert (saved["recipe"], saved["schedule"], saved["lr"]) == ("fast", "cosine", 3e-3)


def test_sweep_and_table1_take_the_recipe(tmp_path, monkeypatch):
    import capsnet_lib.sweep as sweep
    from capsnet_lib.table1 import build_table1_parser, run_configs
    configs = run_configs(build_table1_parser().parse_args(["--recipe", "fast", "--seeds", "1"]), ["routing3_recon"])
    assert [(c.recipe, c.schedule, c.lr) for c in configs.values()] == [("fast", "cosine", 3e-3)]
    swept = []
    monkeypatch.setattr(sweep, "run_sweep", lambda configs, parallel, log: swept.extend(configs) or {})
    assert sweep.main(["--seeds", "0", "1", "--recipe", "fast", "--out", str(tmp_path)]) == 0
    assert [(c.seed, c.recipe, c.schedule, c.epochs) for c in swept] == [(0, "fast", "cosine", 6), (1, "fast", "cosine", 6)]


def test_an_unknown_recipe_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="recipe must be one of paper, fast, got 'slow'"):
        run_training(tiny(tmp_path, recipe="slow"))
