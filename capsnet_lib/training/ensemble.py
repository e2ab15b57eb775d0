"""Train K CapsNets as one step: one forward, one backward, one Adam step over stacked weights.

Why: on a large GPU one CapsNet at batch 128 leaves the GPU waiting for the host to launch small
kernels (H200: 26k images/s for the whole step, 150k for its PrimaryCaps convolution alone).
`torch.func.vmap` runs the K members' steps as one, so every kernel does K members' work.

Each member is exactly a lone `python -m capsnet_lib.train` run of its config:
- its initial weights: torch.manual_seed(seed), then the model, as the training loop builds it (loop.make_model);
- its data: its own generator seeded by (seed, epoch) (loop.epoch_generator), so it sees a lone
  run's batch order and shifts;
- its Adam: Adam is elementwise, so one Adam over the stacked weights is K lone Adams;
- its folder: metrics.csv, best.pt and last.pt as the training command writes them, so evaluate,
  load_checkpoint, table1 and `train --resume` read it as a lone run's.
Members share what one step shares: the architecture (routing iterations, detach, bias), the data
set (MNIST), batch size, learning rate and schedule, epochs, precision and device. Seeds differ,
and so may the reconstruction loss: a member without it is trained with a decoder at weight 0 and
saved without one. Its encoder gets exactly a lone run's gradients (0 x the reconstruction term),
and its initial weights are a lone run's, because the decoder is built last.

On a CPU the arithmetic, not launching, is the limit: there an ensemble is no faster than its
members trained one after another. It is for GPUs.
"""
import contextlib
import math
import sys
import time
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from ..data.tasks import TASKS
from ..losses import capsnet_loss
from ..model import check_images, check_labels
from . import distributed, run_folder
from .config import TrainConfig
from .files import atomic_write_csv, remove_stale_temp_files
from .loop import (RunState, _load_splits, _save, _seed_lock, _synchronized_clock, check_finite, epoch_generator,
                   load_resumable, make_model, make_optimizer, metrics_columns, past_deadline, run_meta)
from .runtime import setup_runtime
from .schedules import make_schedule

MEMBER_FIELDS = ("seed", "out", "reconstruction", "reconstruction_weight")   # what may differ between members
SHARED_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name not in MEMBER_FIELDS)


def check_ensemble(configs):
    """Refuse a set of configs that cannot be trained as one step, saying which setting differs."""
    if not configs:
        raise ValueError("an ensemble needs at least one member")
    for config in configs:
        config.check()
    first = configs[0]
    if first.ema is not None:
        raise ValueError("an ensemble does not average weights (--ema); train such runs one by one")
    differ = sorted({f"{name} ({getattr(first, name)!r} in {first.out}, {getattr(c, name)!r} in {c.out})"
                     for c in configs[1:] for name in SHARED_FIELDS if getattr(c, name) != getattr(first, name)})
    if differ:
        raise ValueError("an ensemble's members must share every setting but seed, out and the reconstruction "
                         "loss; these differ: " + "; ".join(differ))
    outs = [str(Path(c.out)) for c in configs]
    if len(set(outs)) != len(outs):
        raise ValueError("every member of an ensemble needs its own output folder; these repeat: "
                         + ", ".join(sorted({o for o in outs if outs.count(o) > 1})))
    if first.model != "capsnet" or first.dataset != "mnist":
        raise ValueError(f"ensembles train CapsNets on mnist, not {first.model} on {first.dataset}; "
                         "train it alone (python -m capsnet_lib.train or .sweep)")
    if first.max_steps is not None:
        raise ValueError("an ensemble stops at whole epochs: use --epochs (or --train-limit) instead of --max-steps")
    if distributed.world_size() > 1:
        raise ValueError("an ensemble runs in one process, not under torchrun")


def step_key(config):
    """Configs with the same key can be members of one ensemble (their step is the same program)."""
    return tuple(getattr(config, name) for name in SHARED_FIELDS)


@dataclass
class Ensemble:
    """The training state of K members: everything a lone run keeps, stacked along a first axis K."""
    configs: list
    base: torch.nn.Module       # the architecture; functional_call swaps the stacked weights in
    params: dict                # name -> (K, ...) weights, in base.named_parameters() order
    weights: torch.Tensor       # (K,) each member's reconstruction weight (0 without reconstruction)
    members: list               # each member as a lone model (its own architecture), for saving
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    epoch: int = 0
    best: list = None           # best validation accuracy per member
    histories: list = None      # metrics rows per member

    @property
    def size(self):
        return len(self.configs)


def build_ensemble(configs, device):
    """Fresh members, each initialised as its lone run would be."""
    full = [replace(c, reconstruction=True) for c in configs]      # a decoder for every member (see above)
    with _seed_lock:
        stacked = []
        for config in full:
            torch.manual_seed(config.seed)
            stacked.append(make_model(config).to(device))
        members = [make_model(c).to(device) for c in configs]
    base = make_model(full[0]).to(device)
    base.primary_caps.conv.polyphase = False      # its autograd Function has no vmap rule
    params, buffers = stack_module_state(stacked)
    assert not buffers, "CapsNet has no buffers to stack"
    weights = torch.tensor([c.reconstruction_weight if c.reconstruction else 0.0 for c in configs], device=device)
    optimizer = make_optimizer(list(params.values()), configs[0])
    return Ensemble(configs, base, params, weights, members, optimizer, make_schedule(optimizer, configs[0]),
                    best=[-1.0] * len(configs), histories=[[] for _ in configs])


def _member_loss(base, params, images, labels, weight):
    """One member's loss, as train_step computes it: margin + weight x reconstruction (Eq. 4, Sec. 4.1)."""
    output = functional_call(base, params, (images, labels), {"check_inputs": False})
    return capsnet_loss(output, images, labels, weight)


def ensemble_step(ensemble, images, labels, runtime):
    """One step of every member. images (K, B, 1, 28, 28), labels (K, B) -> losses (K,), detached."""
    if images.device.type == "cpu":            # the checks a lone step makes, once for the stacked batch
        check_images(images.flatten(0, 1))
        check_labels(labels.flatten(), labels.numel())
    with runtime.autocast():
        losses = vmap(partial(_member_loss, ensemble.base))(ensemble.params, images, labels, ensemble.weights)
    ensemble.optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()                    # member k's weights get d(loss_k): members do not mix
    ensemble.optimizer.step()
    ensemble.schedule.step()
    ensemble.step += 1
    return losses.detach()


@torch.no_grad()
def ensemble_accuracies(ensemble, images, labels, runtime, batch_size=500):
    """(K,) fraction of `images` (N, 1, 28, 28) each member classifies right (longest capsule)."""
    lengths = lambda params, x: functional_call(ensemble.base, params, (x,), {"check_inputs": False}).lengths
    right = torch.zeros(ensemble.size, device=images.device)
    for start in range(0, images.shape[0], batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        with runtime.autocast():
            predicted = vmap(lengths, in_dims=(0, None))(ensemble.params, x).argmax(dim=-1)   # (K, b)
        right += (predicted == y).sum(dim=1)
    return (right / images.shape[0]).tolist()


def _train_epoch(ensemble, train_x, train_y, runtime, show_progress):
    """One epoch of every member, each on its own shuffled, shifted batches. Returns (K,) summed losses."""
    config, epoch = ensemble.configs[0], ensemble.epoch
    streams = [TASKS["mnist"].batches(train_x, train_y, config.batch_size, epoch_generator(c, epoch, train_x.device))
               for c in ensemble.configs]
    loss_sum = torch.zeros(ensemble.size, device=train_x.device)
    bar = tqdm(zip(*streams), total=math.ceil(train_x.shape[0] / config.batch_size), disable=not show_progress,
               desc=f"ensemble of {ensemble.size}, epoch {epoch + 1}/{config.epochs}", leave=False)
    for batch in bar:
        images = torch.stack([images for images, _ in batch])      # (K, B, 1, 28, 28)
        labels = torch.stack([labels for _, labels in batch])      # (K, B)
        loss_sum += ensemble_step(ensemble, images, labels, runtime)
    bar.close()
    return loss_sum


def member_optimizer_state(ensemble, k, stacked):
    """Member k's Adam state as a lone run's optimizer.state_dict() (its own parameters only), cut
    from `stacked`, the ensemble's optimizer.state_dict()."""
    index = {name: i for i, name in enumerate(ensemble.params)}
    names = [name for name, _ in ensemble.members[k].named_parameters()]
    state = {j: {key: value if key == "step" else value[k] for key, value in stacked["state"][index[name]].items()}
             for j, name in enumerate(names) if index[name] in stacked["state"]}
    return {"state": state, "param_groups": [{**stacked["param_groups"][0], "params": list(range(len(names)))}]}


def _save_members(ensemble, rows, runtime):
    """Each member's folder as a lone run's after this epoch (best.pt if it improved, last.pt, metrics.csv)."""
    schedule_state, optimizer_state = ensemble.schedule.state_dict(), ensemble.optimizer.state_dict()
    for k, (config, member, row) in enumerate(zip(ensemble.configs, ensemble.members, rows)):
        with torch.no_grad():
            for name, weight in member.named_parameters():
                weight.copy_(ensemble.params[name][k])
        ensemble.histories[k].append(row)
        state = RunState(ensemble.histories[k], ensemble.step, ensemble.epoch, ensemble.best[k])
        optimization = {"optimizer": member_optimizer_state(ensemble, k, optimizer_state), "schedule": schedule_state}
        _save(Path(config.out), member, state, optimization, run_meta(config, runtime, ensemble_size=ensemble.size))
        ensemble.best[k] = max(ensemble.best[k], row["val_accuracy"])


def saved_states(configs, members, runtime):
    """Each member's last.pt loaded into its lone model: its training state, or None for a member
    with no last.pt. Its metrics.csv is rewritten from that state, as a lone run's resume does (a
    kill between a member's last.pt and its metrics.csv)."""
    states = []
    for config, member in zip(configs, members):
        out = Path(config.out)
        if not (config.resume and (out / "last.pt").is_file()):
            states.append(None)
            continue
        state = load_resumable(out, member, config, runtime.precision, runtime.device)
        if state.get("epoch_progress"):
            raise ValueError(f"{out / 'last.pt'} was stopped inside an epoch; resume it alone: "
                             f"python -m capsnet_lib.train --resume --out {config.out}")
        atomic_write_csv(out / "metrics.csv", metrics_columns(state["history"]), state["history"])
        states.append(state)
    return states


def resume_ensemble(ensemble, states):
    """Stack the members' saved states (saved_states, all at one epoch) into the ensemble."""
    _stack_optimizer_states(ensemble, [s["optimizer"] for s in states])
    with torch.no_grad():
        for k, member in enumerate(ensemble.members):
            for name, weight in member.named_parameters():
                ensemble.params[name][k].copy_(weight)
    ensemble.schedule.load_state_dict(states[0]["schedule"])
    ensemble.step, ensemble.epoch = states[0]["step"], states[0]["epoch"]
    ensemble.best = [s["best"] for s in states]
    ensemble.histories = [list(s["history"]) for s in states]


def _stack_optimizer_states(ensemble, member_states):
    """The stacked Adam state from K lone ones. A member without a decoder has none for it: zeros,
    which is what Adam keeps for weights whose gradient has always been 0."""
    member_names = [[n for n, _ in member.named_parameters()] for member in ensemble.members]
    stacked_state = {}
    for i, (name, stacked) in enumerate(ensemble.params.items()):
        per_member = [saved["state"].get(names.index(name)) if name in names else None
                      for names, saved in zip(member_names, member_states)]
        present = [s for s in per_member if s is not None]
        if not present:
            continue
        zeros = torch.zeros_like(stacked[0])
        stacked_state[i] = {"step": present[0]["step"].clone()}
        for key in ("exp_avg", "exp_avg_sq"):
            stacked_state[i][key] = torch.stack([s[key] if s is not None else zeros for s in per_member])
    group = {**member_states[0]["param_groups"][0], "params": list(range(len(ensemble.params)))}
    ensemble.optimizer.load_state_dict({"state": stacked_state, "param_groups": [group]})


def train_ensemble(configs, log=lambda line: print(line, file=sys.stderr)):
    """Train every config as a member of one batched step (configs[0].deadline, if set, stops it
    after the epoch in which that time passes). Each member's folder is claimed as a lone run's:
    an existing run is refused unless the configs say resume (then the members continue from their
    last.pt) or overwrite. Members that stand at different epochs (a kill inside an epoch's
    per-member saves) continue as one ensemble per epoch, the members behind first: a member's
    training is its lone run's whatever ensemble it is in. Returns {out: the metrics rows of the
    epochs trained now}."""
    check_ensemble(configs)
    first = configs[0]
    runtime = setup_runtime(first.device, first.precision)
    with contextlib.ExitStack() as locks:
        for config in configs:
            run_folder.make_writable(config.out)
            locks.enter_context(run_folder.locked(config.out))
            for name in run_folder.claim(config.out, config.resume, config.overwrite):
                (Path(config.out) / name).unlink()
            remove_stale_temp_files(config.out)
        with _seed_lock:   # the global RNG initialises the weights; sweep threads take turns
            members = [make_model(c).to(runtime.device) for c in configs]
        states = saved_states(configs, members, runtime)
        by_epoch = {}
        for member in zip(configs, states, members):
            by_epoch.setdefault(0 if member[1] is None else member[1]["epoch"], []).append(member)
        if len(by_epoch) > 1:
            log("the ensemble's members stand at epochs " + ", ".join(
                f"{epoch} ({len(group)})" for epoch, group in sorted(by_epoch.items())) + "; each epoch's members "
                "continue as an ensemble of their own")
        trained = {}
        for epoch, group in sorted(by_epoch.items()):
            group_configs, group_states, group_members = zip(*group)
            ensemble = build_ensemble(list(group_configs), runtime.device)
            if epoch > 0:
                ensemble.members = list(group_members)
                resume_ensemble(ensemble, group_states)
            trained.update(_train(ensemble, runtime, log))
        return {c.out: trained[c.out] for c in configs}


def _train(ensemble, runtime, log):
    config = ensemble.configs[0]
    (train_x, train_y), (val_x, val_y) = _load_splits(config, runtime.device)
    val_images, val_labels = TASKS["mnist"].fixed_set(val_x, val_y, runtime.device)
    done_before = [len(h) for h in ensemble.histories]
    log(f"ensemble of {ensemble.size} on {runtime.device} in {runtime.precision}: epochs "
        f"{ensemble.epoch + 1}..{config.epochs}")
    while ensemble.epoch < config.epochs:
        started = time.perf_counter()
        loss_sum = _train_epoch(ensemble, train_x, train_y, runtime, config.progress)
        seconds = _synchronized_clock(runtime.device) - started
        for member, member_loss in zip(ensemble.configs, loss_sum):
            try:
                check_finite(member_loss, None, ensemble.step, ensemble.epoch)
            except ValueError as error:
                raise ValueError(f"member {member.out}: {error}") from None
        val_started = _synchronized_clock(runtime.device)
        accuracies = ensemble_accuracies(ensemble, val_images, val_labels, runtime)
        val_seconds = _synchronized_clock(runtime.device) - val_started
        steps = math.ceil(train_x.shape[0] / config.batch_size)
        ensemble.epoch += 1
        rows = [{"epoch": ensemble.epoch, "step": ensemble.step, "train_loss": round(loss.item() / steps, 6),
                 "val_accuracy": round(accuracy, 6), "lr": float(ensemble.optimizer.param_groups[0]["lr"]),
                 "epoch_seconds": round(seconds, 3), "images_per_second": round(train_x.shape[0] / seconds, 1),
                 "val_seconds": round(val_seconds, 3)} for loss, accuracy in zip(loss_sum, accuracies)]
        _save_members(ensemble, rows, runtime)
        log(f"ensemble epoch {ensemble.epoch}: {ensemble.size * train_x.shape[0] / seconds:,.0f} images/s in "
            f"aggregate, {seconds:.2f} s + {val_seconds:.2f} s validation; val accuracy "
            + " ".join(f"{a:.2%}" for a in accuracies))
        if past_deadline(config, ensemble.epoch):
            log(f"deadline reached after epoch {ensemble.epoch} of {config.epochs}: stopped, everything saved")
            break
    return {c.out: h[n:] for c, h, n in zip(ensemble.configs, ensemble.histories, done_before)}
