"""--time-budget: how many epochs fit in a wall-clock budget, measured before training starts.

The plan is made once: a few steps of each job are timed on random batches, the epochs that fit
are fixed, and the ordinary deterministic schedule is trained for that many epochs, so the same
run is reproduced later by `--epochs N` alone. The budget's end is also a deadline: a run that
is slower than measured stops after the epoch in which it passes, with everything saved.
"""
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..data.mnist import VALIDATION_SIZE
from ..data.tasks import TASKS
from . import run_folder
from .ensemble import build_ensemble, ensemble_accuracies, ensemble_step, step_key
from .files import atomic_write_text
from .loop import make_model, make_optimizer, objective, train_step
from .runtime import setup_runtime
from .schedules import steps_per_epoch


def _timed(step, device, steps):
    step()                                             # warm-up: allocations, kernel choices
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps


def epoch_seconds(configs, steps=3):
    """Seconds one epoch (training and validation) of `configs` takes: an ensemble if there are
    several, else a lone run. Measured on batches of random digits shaped by the run's task (28x28
    MNIST, 40x40 translated, 36x36 pairs), then thrown away."""
    config = configs[0]
    runtime = setup_runtime(config.device, config.precision)
    device, batch, k = runtime.device, config.batch_size, len(configs)
    task = TASKS[config.dataset]
    train_steps = steps_per_epoch(config)
    val_size = min(config.val_limit or VALIDATION_SIZE, VALIDATION_SIZE, 500)      # one evaluation batch at most
    val_batches = min(config.val_limit or VALIDATION_SIZE, VALIDATION_SIZE) / val_size
    digits = lambda n: (torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, device=device),
                        torch.randint(0, 10, (n,), device=device))
    val_images, val_targets = task.fixed_set(*digits(val_size), device)
    if k > 1:
        images = torch.rand(k, batch, 1, 28, 28, device=device)          # ensembles train mnist only
        labels = torch.randint(0, 10, (k, batch), device=device)
        ensemble = build_ensemble(configs, device)
        step = lambda: ensemble_step(ensemble, images, labels, runtime)
        validate = lambda: ensemble_accuracies(ensemble, val_images, val_targets, runtime)
    else:
        images, targets = next(iter(task.batches(*digits(batch), batch, torch.Generator(device=device))))
        model = runtime.move_model(make_model(config))
        optimizer, loss_fn = make_optimizer(model, config), objective(config)
        step = lambda: train_step(model, optimizer, runtime.images(images), targets, runtime.precision, loss_fn)
        validate = torch.no_grad()(lambda: task.correct(model.eval(), runtime.images(val_images), val_targets).sum().item())
    seconds = train_steps * _timed(step, device, steps)
    return seconds + val_batches * _timed(validate, device, 1)


def check_time_budget(budget):
    """Refuse a budget that is not a positive number of seconds, before anything is measured."""
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"--time-budget must be a number of seconds > 0, got {budget}")


def epochs_that_fit(seconds_per_epoch, budget, max_epochs):
    """The most epochs, at most max_epochs, whose estimated time fits in `budget` seconds."""
    fit = int(budget // seconds_per_epoch)
    if fit < 1:
        raise ValueError(f"--time-budget: {budget:.0f} s left is shorter than one epoch ({seconds_per_epoch:.1f} s "
                         "measured); give more time, or fewer images with --train-limit")
    return min(fit, max_epochs)


def plan_epochs(jobs, budget, max_epochs, out, log):
    """Measure each job (a list of configs trained together; jobs of the same step shape once), fix
    the epochs that fit in `budget` seconds, write the plan to OUT/plan.json and log it.
    Returns (epochs, the deadline as a time.time())."""
    started, by_shape, measured = time.time(), {}, []
    for job in jobs:
        shape = (step_key(job[0]), tuple(c.reconstruction for c in job))
        if shape not in by_shape:
            by_shape[shape] = epoch_seconds(job)
        measured.append((job, by_shape[shape]))
    per_epoch, spent = sum(seconds for _, seconds in measured), time.time() - started
    if spent >= budget:
        raise ValueError(f"measuring the jobs took {spent:.0f} s, all of --time-budget {budget:g} s; give more time")
    epochs = epochs_that_fit(per_epoch, budget - spent, max_epochs)
    record = {"time_budget_seconds": budget, "epochs": epochs, "estimated_seconds": round(epochs * per_epoch, 1),
              "jobs": [{"runs": [str(c.out) for c in job], "seconds_per_epoch_measured": round(seconds, 3)}
                       for job, seconds in measured], "reproduce_with": f"--epochs {epochs}"}
    atomic_write_text(Path(out) / "plan.json", json.dumps(record, indent=1))
    log(f"time budget {budget:g} s: {len(measured)} job(s), {per_epoch:.1f} s per epoch measured, so {epochs} "
        f"epochs (--epochs {epochs} reproduces them without a budget)")
    return epochs, started + budget


def plan_run(config, budget):
    """A lone run's config with the epochs that fit in `budget` seconds and its deadline (plan_epochs)."""
    check_time_budget(budget)
    config.check()
    if config.resume:
        raise ValueError("--time-budget plans a new run; continue one with --resume --epochs N")
    run_folder.make_writable(config.out)
    run_folder.claim(config.out, False, config.overwrite)       # refuse an occupied folder before measuring
    epochs, deadline = plan_epochs([[config]], budget, config.epochs, config.out,
                                   log=lambda line: print(line, file=sys.stderr))
    return replace(config, epochs=epochs, deadline=deadline)
