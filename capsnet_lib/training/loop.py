"""The training loop: train a model epoch by epoch, validate, save, resume (run_training).

Writes to config.out: metrics.csv (one row per epoch), best.pt (highest validation accuracy) and
last.pt (with optimizer, schedule and step, for resume). Each epoch's shuffling and shifts come
from a generator seeded by (seed, epoch), so a resumed run continues exactly where an
uninterrupted one would have been.
"""
import functools
import math
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.mnist import load_mnist
from ..data.tasks import TASKS
from ..model import BaselineCNN, CapsNet
from . import distributed, run_folder
from .averaging import WeightAverage
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import hardware_name, pick_device
from .evaluation import accuracy
from .files import atomic_write_csv, remove_stale_temp_files
from .precision import autocast
from .runtime import fused_adam, setup_runtime
from .schedules import make_schedule

METRICS = ("epoch", "step", "train_loss", "val_accuracy", "lr", "epoch_seconds", "images_per_second",
           "val_seconds")
EMA_METRICS = ("live_val_accuracy",)   # with --ema, val_accuracy is the average's, and this the live weights'
RESUME_STATE = ("epoch", "step", "best", "history", "optimizer", "schedule", "train_config", "precision")
_seed_lock = threading.Lock()


def make_model(config):
    """The model a TrainConfig asks for, built from the global RNG (seed it first)."""
    if config.model == "baseline_cnn":
        return BaselineCNN(image_size=TASKS[config.dataset].image_size)
    return CapsNet(config.routing_iterations, config.reconstruction, config.routing_detach, config.routing_bias,
                   TASKS[config.dataset].image_size)


def make_optimizer(model, config):
    """Adam over the model's parameters at config.lr. `model` may also be a list of parameters
    (ensemble.py passes its stacked weights)."""
    parameters = list(model.parameters()) if isinstance(model, torch.nn.Module) else list(model)
    return torch.optim.Adam(parameters, lr=config.lr, fused=fused_adam(parameters[0].device))


def objective(config):
    """The loss a config trains: its task's (MNIST's margin + 0.0005 x reconstruction by default),
    as loss_fn(model, images, targets) -> a scalar."""
    return functools.partial(TASKS[config.dataset].loss, reconstruction_weight=config.reconstruction_weight)


def train_step(model, optimizer, images, labels, precision, loss_fn=TASKS["mnist"].loss):
    """One step: forward (with the model's routing iterations), the loss (MNIST's margin + 0.0005 x
    reconstruction by default; `objective(config)` gives a run's), backward, Adam. Returns the
    loss, detached."""
    with autocast(images.device, precision):
        loss = loss_fn(model, images, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def run_training(config, on_epoch_end=None):
    """Train as `config` says; returns the metrics history (a list of dicts, one per epoch).
    `on_epoch_end(row)` is called after each epoch (the training notebook draws curves there).

    Under torchrun (WORLD_SIZE > 1) every process runs this; see distributed.py."""
    config.check()
    device = pick_device(config.device)
    parallel = distributed.world_size() > 1
    if parallel:
        device = distributed.join(device)
    try:
        if not distributed.is_main_process():       # rank 0 owns the folder
            return _train(config, device, parallel, on_epoch_end)
        run_folder.make_writable(config.out)
        with run_folder.locked(config.out):
            replaced = run_folder.claim(config.out, config.resume, config.overwrite)
            remove_stale_temp_files(config.out)
            if replaced:
                print(f"--overwrite: replacing {', '.join(replaced)} in {config.out}", file=sys.stderr)
                for name in replaced:
                    (Path(config.out) / name).unlink()
            return _train(config, device, parallel, on_epoch_end)
    finally:
        if parallel:
            distributed.leave()


@dataclass
class RunState:
    """Where a run stands between epochs: what the loop carries, and what last.pt keeps to resume it."""
    history: list = field(default_factory=list)   # one metrics row per finished epoch
    step: int = 0                                 # optimizer steps so far
    epoch: int = 0                                # epochs finished; the next one to train
    best: float = -1.0                            # the best validation accuracy of a finished epoch so far
    progress: dict = None                         # an epoch cut short by --max-steps: {steps, loss_sum, images}


@dataclass
class Loop:
    """A run's moving parts, built once and trained epoch by epoch."""
    config: TrainConfig
    runtime: object                               # runtime.Runtime: device, precision, layout
    model: torch.nn.Module                        # what the steps train: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    schedule: object                              # a torch.optim.lr_scheduler
    state: RunState
    average: WeightAverage = None                 # with config.ema: the weights validated and saved as best.pt


def _train(config, device, parallel, on_epoch_end):
    runtime = setup_runtime(device, config.precision)
    main_process, out = distributed.is_main_process(), Path(config.out)
    with _seed_lock:   # the global RNG initialises the weights; sweep threads take turns
        torch.manual_seed(config.seed)
        model = runtime.move_model(make_model(config))
    optimizer = make_optimizer(model, config)
    average = WeightAverage(model, config.ema) if config.ema is not None else None
    loop = Loop(config, runtime, model, optimizer, make_schedule(optimizer, config), RunState(), average)
    resuming = config.resume and (out / "last.pt").is_file() and not config.overwrite
    if resuming:
        loop.state = _resume(out, loop)
    if main_process and resuming:
        history = loop.state.history                # a kill between last.pt and metrics.csv
        atomic_write_csv(out / "metrics.csv", metrics_columns(history), history)
    if main_process:
        print(f"training on {device} in {runtime.precision} (asked: {config.precision})"
              f"{f', {distributed.world_size()} processes' if parallel else ''}; "
              f"epochs {loop.state.epoch + 1}..{config.epochs}, output in {out}", file=sys.stderr)
    (train_x, train_y), (val_x, val_y) = _load_splits(config, device)
    task = TASKS[config.dataset]
    val_images, val_targets = task.fixed_set(val_x, val_y, device)
    if parallel:
        if config.dataset != "mnist":
            raise ValueError(f"data-parallel training (torchrun) runs the mnist dataset only, not {config.dataset}")
        check_shardable(train_x.shape[0], config.batch_size, distributed.world_size())
        loop.model = torch.nn.parallel.DistributedDataParallel(model)
    while loop.state.epoch < config.epochs:
        if config.max_steps is not None and loop.state.step >= config.max_steps:
            break
        row = _epoch(loop, train_x, train_y, lambda: _validate(task, _validated(loop, model), val_images, val_targets,
                                                                  runtime.precision))
        if not main_process:
            continue
        _save(out, model, loop.state, _optimization(loop), run_meta(config, runtime),
              None if average is None else average.module)
        loop.state.best = finished_best(loop.state)
        live = f" (live weights {row['live_val_accuracy']:.4%})" if "live_val_accuracy" in row else ""
        print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}, val accuracy {row['val_accuracy']:.4%}{live}, "
              f"{row['epoch_seconds']:.2f} s + {row['val_seconds']:.2f} s validation, "
              f"{row['images_per_second']:.0f} images/s", file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if past_deadline(config, row["epoch"]):
            print(f"deadline reached after epoch {row['epoch']} of {config.epochs}: stopped, everything saved",
                  file=sys.stderr)
            break
    return loop.state.history


def _epoch(loop, train_x, train_y, validate):
    """Train one epoch (or finish one a resume left open), then validate on the main process.
    Appends its metrics row to the state's history and returns it (None on other processes)."""
    state, config, device = loop.state, loop.config, train_x.device
    number, started = state.epoch + 1, time.perf_counter()         # the epoch's 1-based number, for its row
    carried = state.progress or {"steps": 0, "loss_sum": 0.0, "images": 0}
    loss_sum, trained_now, epoch_steps = _train_epoch(loop, train_x, train_y, carried,
                                                      config.progress and distributed.is_main_process())
    loss_sum, seen = distributed.average(loss_sum), carried["images"] + trained_now
    complete = epoch_steps == math.ceil(train_x.shape[0] / config.batch_size)
    seconds = _synchronized_clock(device) - started
    check_finite(loss_sum, loop.model, state.step, state.epoch)
    state.progress = None if complete else {"steps": epoch_steps, "loss_sum": loss_sum.item(), "images": seen}
    state.epoch += complete
    if not distributed.is_main_process():
        return None
    row = {"epoch": number, "step": state.step,
           "train_loss": round(loss_sum.item() / max(epoch_steps, 1), 6), **validate(),
           "lr": float(loop.optimizer.param_groups[0]["lr"]), "epoch_seconds": round(seconds, 3),
           "images_per_second": round(trained_now / seconds, 1)}
    state.history.append(row)
    return row


def past_deadline(config, epochs_done):
    """True when config.deadline has passed and epochs remain: the run stops, saved and resumable."""
    return config.deadline is not None and time.time() >= config.deadline and epochs_done < config.epochs


def _load_splits(config, device):
    """(train images, labels) and (validation images, labels) on the device, cut to the limits."""
    return [tuple(t[:limit].to(device) for t in load_mnist(split, config.data_root, config.download))
            for split, limit in (("train", config.train_limit), ("val", config.val_limit))]


def _validated(loop, model):
    """What an epoch validates: `model` (the live weights, not a DDP wrapper), or with config.ema
    the average first and then the live weights too."""
    return (model,) if loop.average is None else (loop.average.module, model)


def _validate(task, models, images, targets, precision):
    """{'val_accuracy', 'val_seconds'} on the task's fixed validation set: the accuracy of models[0],
    the weights a run selects and saves; with a second model (the live weights beside their
    average), its accuracy as 'live_val_accuracy'. The seconds are both validations'."""
    started = _synchronized_clock(images.device)
    right = [round(accuracy(task, model, images, targets, precision), 6) for model in models]
    row = {"val_accuracy": right[0], "val_seconds": round(_synchronized_clock(images.device) - started, 3)}
    return row if len(models) == 1 else {**row, "live_val_accuracy": right[1]}


def metrics_columns(history):
    """metrics.csv's header: METRICS, and EMA_METRICS in a run with --ema."""
    return METRICS + tuple(name for name in EMA_METRICS if history and name in history[-1])


def load_resumable(out, model, config, precision, device):
    """OUT/last.pt loaded into `model`; returns its training state, refusing a file that lacks one,
    other settings than `config`'s, or another precision."""
    state = load_checkpoint(out / "last.pt", model=model, map_location=device).extra
    missing = sorted(set(RESUME_STATE) - set(state))
    if missing:
        raise ValueError(f"{out / 'last.pt'} cannot be resumed: it lacks {', '.join(missing)} "
                         "(is it a copy of a best.pt?)")
    run_folder.check_resumable(state["train_config"], config)
    if state["precision"] != precision:
        raise ValueError(f"cannot resume a run trained in {state['precision']} in {precision}; "
                         f"pass --precision {state['precision']}")
    return state


def _resume(out, loop):
    """Load OUT/last.pt into the loop's model, optimizer and schedule, refusing what cannot be
    resumed. Returns its RunState."""
    runtime = loop.runtime
    state = load_resumable(out, loop.model, loop.config, runtime.precision, runtime.device)
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.schedule.load_state_dict(state["schedule"])
    if loop.average is not None:
        loop.average.load_state_dict(state["average"])
    progress = state.get("epoch_progress")
    # An epoch stopped by --max-steps is finished on resume; its provisional row is replaced.
    history = state["history"][:-1] if progress else state["history"]
    return RunState(list(history), state["step"], state["epoch"], state["best"], progress)


def epoch_generator(config, epoch, device):
    """The generator of one epoch's shuffling and shifts: seeded by (seed, epoch) alone, so a
    resumed run, a sweep's run and an ensemble's member draw a lone run's batches."""
    return torch.Generator(device=device).manual_seed(config.seed * 100_003 + epoch)


def _train_epoch(loop, train_x, train_y, carried, show_progress):
    """One pass over the shuffled, shifted training images (or until config.max_steps), counting
    loop.state.step. An epoch resumed after `carried["steps"]` steps draws and skips those batches,
    so it gets the same batches as an uninterrupted one, and continues its loss sum. Returns the
    summed loss (a device tensor), the images trained now and the epoch's step count."""
    config, runtime, state = loop.config, loop.runtime, loop.state
    device, parallel = train_x.device, distributed.world_size() > 1
    generator = epoch_generator(config, state.epoch, device)
    loop.model.train()
    skip = carried["steps"]
    loss_sum, seen, epoch_steps = torch.tensor(carried["loss_sum"], device=device), 0, skip
    task, loss_fn = TASKS[config.dataset], objective(config)
    bar = tqdm(task.batches(train_x, train_y, config.batch_size, generator),
               total=math.ceil(train_x.shape[0] / config.batch_size), desc=f"epoch {state.epoch + 1}/{config.epochs}",
               disable=not show_progress, leave=False)
    for k, (images, labels) in enumerate(bar):
        if k < skip:
            continue
        images, seen = runtime.images(images), seen + images.shape[0]
        if parallel:   # this process's rows; the weighted losses of all processes sum to the batch mean
            images, labels, weight = distributed.shard(images, labels)
            loss_sum += train_step(loop.model, loop.optimizer, images, labels, runtime.precision,
                                   lambda *batch: weight * loss_fn(*batch))
        else:
            loss = train_step(loop.model, loop.optimizer, images, labels, runtime.precision, loss_fn)
            if device.type == "cpu":      # free on a CPU; a GPU is checked once per epoch, without syncs
                check_finite(loss, None, state.step + 1, state.epoch)
            loss_sum += loss
        loop.schedule.step()
        if loop.average is not None:            # a DDP wrapper's parameters are its model's, in order
            loop.average.update(loop.model)
        state.step, epoch_steps = state.step + 1, epoch_steps + 1
        if epoch_steps % 50 == 0 and device.type == "cpu":   # a GPU is never made to wait for it
            bar.set_postfix(loss=f"{loss_sum.item() / epoch_steps:.4f}")
        if config.max_steps is not None and state.step >= config.max_steps:
            break
    bar.close()
    return loss_sum, seen, epoch_steps


def _optimization(loop):
    """The optimizer's and the schedule's state dicts (and the weight average's, with config.ema),
    as last.pt keeps them."""
    averaged = {} if loop.average is None else {"average": loop.average.state_dict()}
    return {"optimizer": loop.optimizer.state_dict(), "schedule": loop.schedule.state_dict(), **averaged}


def run_meta(config, runtime, **extra):
    """What both checkpoints record about a run: its settings, precision and hardware, and `extra`."""
    return {"precision": runtime.precision, "device": str(runtime.device), "hardware": hardware_name(runtime.device),
            "train_config": _plain(config), **extra}


def _save(out, model, state, optimization, meta, validated=None):
    """best.pt if the state's last row beat its best validation accuracy; last.pt and metrics.csv
    always. An epoch cut short by --max-steps (state.progress) counts as not done in last.pt, and
    a resume finishes it. `optimization` is _optimization's dict; `meta` (run_meta) goes into both.
    last.pt holds `model`, the live weights; best.pt holds `validated`, the weights the row's
    val_accuracy is of (the average, with --ema), by default `model`.

    A cut epoch's row writes best.pt only while no finished epoch has: a resume replaces that row
    with the finished epoch's, so best.pt ends as the uninterrupted run's, a row of metrics.csv."""
    row = state.history[-1]
    if row["val_accuracy"] > state.best and (state.progress is None or state.best < 0):
        best = model if validated is None else validated
        save_checkpoint(out / "best.pt", best, epoch=row["epoch"], val_accuracy=row["val_accuracy"], **meta)
    save_checkpoint(out / "last.pt", model, epoch=row["epoch"] - (state.progress is not None),
                    epoch_progress=state.progress, step=state.step, best=finished_best(state),
                    history=state.history, **optimization, **meta)
    atomic_write_csv(out / "metrics.csv", metrics_columns(state.history), state.history)


def finished_best(state):
    """The best validation accuracy of a finished epoch, counting the state's last row if it is one."""
    return state.best if state.progress is not None else max(state.best, state.history[-1]["val_accuracy"])


def check_finite(loss, model, step, epoch):
    """Stop a diverged run before anything non-finite is saved (best.pt, last.pt stay as they were)."""
    what = "the loss" if not torch.isfinite(loss).all() else "the weights" if model is not None and not all(
        torch.isfinite(p).all() for p in model.parameters()) else None
    if what:
        raise ValueError(f"training diverged: {what} became inf or nan by step {step} (epoch {epoch + 1}); "
                         "nothing of this epoch was saved. Try a lower --lr")


def check_shardable(num_images, batch_size, world):
    if batch_size < world:
        raise ValueError(f"batch_size ({batch_size}) must be at least the number of processes ({world})")
    if 0 < num_images % batch_size < world:
        raise ValueError(f"the last batch of an epoch would hold {num_images % batch_size} images, fewer than the "
                         f"{world} processes; choose a batch size that leaves at least {world}")


def _synchronized_clock(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _plain(config):
    return {k: v for k, v in asdict(config).items() if v is not None}


