"""Learning-rate schedules, stepped once per batch.

Every schedule may start with a linear warm-up from ~0 to lr0 over warmup_steps (default 0).
- exponential (the paper's, from the authors' code): lr0 * lr_decay ** (step / lr_decay_steps).
  It never ends: after 30 epochs of MNIST the lr is still 0.77 x lr0.
- cosine: lr0 * (1 + cos(pi t)) / 2, where t goes from 0 to 1 over the steps after the warm-up,
  so the lr reaches 0 at the run's last step.
- linear: lr0 * (1 - t).

The annealing schedules depend on the run's length (epochs x steps per epoch): a run that
anneals over 6 epochs is a different run from one that anneals over 8 (see run_folder.py).
"""
import math

import torch

from ..data.mnist import TRAIN_SIZE

SCHEDULES = ("exponential", "cosine", "linear")


def steps_per_epoch(config):
    """Optimizer steps in one epoch of `config` (every task draws from MNIST's training split)."""
    return math.ceil(min(config.train_limit or TRAIN_SIZE, TRAIN_SIZE) / config.batch_size)


def lr_factor(config, step, total_steps):
    """The lr at `step` as a fraction of config.lr."""
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    if config.schedule == "exponential":
        return config.lr_decay ** (step / config.lr_decay_steps)
    t = min((step - config.warmup_steps) / max(total_steps - config.warmup_steps, 1), 1.0)
    return (1 + math.cos(math.pi * t)) / 2 if config.schedule == "cosine" else 1 - t


def make_schedule(optimizer, config):
    """A LambdaLR that sets config.schedule's lr before every step."""
    total_steps = config.epochs * steps_per_epoch(config)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, total_steps))
