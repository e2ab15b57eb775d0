"""Many independent trainings at once (run_sweep), one GPU kept busy; `python -m capsnet_lib.sweep` runs it.

One CapsNet run at batch 128 leaves most of a large GPU idle: its step is bound by the host
launching small kernels, not by the GPU. Several runs at once keep it busier. Each run here is a
plain `run_training(config)` in its own thread (PyTorch releases the GIL while it works, so the
runs' host work overlaps); every run writes exactly what `python -m capsnet_lib.train` writes
(metrics.csv, best.pt, last.pt) into its own folder, and is resumable the same way: a sweep
started again skips finished runs and continues unfinished ones from their last.pt, and refuses
(before any training) a folder whose run was trained with other settings than the sweep's.
On a machine with several GPUs the runs are spread over them, `parallel` per GPU.
"""
import csv
import json
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

from ..training.checkpoint import load_checkpoint
from ..training.device import pick_device
from ..training.loop import run_training
from ..training.run_folder import existing_run_files, setting_differences

SETTINGS_FILE = "config.json"       # a run's settings, small enough to commit beside its results
MOVE_AWAY = "move the folder away (or choose another --out) to train these settings"


def epochs_done(config):
    """How many epochs the run in config.out has saved (0 for a new run)."""
    metrics = Path(config.out) / "metrics.csv"
    if not metrics.is_file() or not (Path(config.out) / "last.pt").is_file():
        return 0
    with open(metrics) as f:
        rows = list(csv.DictReader(f))
    return int(rows[-1]["epoch"]) if rows else 0


def recorded_settings(out):
    """The train_config a run in `out` was trained with: from its config.json, else from its last.pt
    or best.pt; None if the folder records none."""
    out = Path(out)
    if (out / SETTINGS_FILE).is_file():
        try:
            return json.loads((out / SETTINGS_FILE).read_text())
        except ValueError as error:
            raise ValueError(f"{out / SETTINGS_FILE} is damaged ({error}); delete it: the run's "
                             "checkpoints still record its settings") from None
    for name in ("last.pt", "best.pt"):
        if (out / name).is_file():
            return load_checkpoint(out / name).extra.get("train_config", {})
    return None


def check_run_folder(config):
    """Refuse, in one line, a folder whose run this sweep would neither skip nor continue: one trained
    with other settings than `config`'s (its results would be reported as theirs), or one with
    results but no last.pt to continue from."""
    saved = recorded_settings(config.out)
    differences = [] if saved is None else setting_differences(saved, config)
    if differences:
        raise ValueError(f"{config.out} holds a run with other settings than this command's "
                         f"({'; '.join(differences)}); {MOVE_AWAY}")
    found = existing_run_files(config.out)
    if found and "last.pt" not in found:
        raise ValueError(f"{config.out} holds {', '.join(found)} but no last.pt to continue from; {MOVE_AWAY}")


def devices_for(device_name):
    """The devices a sweep spreads over: every visible GPU for 'auto'/'cuda', else the one named."""
    device = pick_device(device_name)
    if device.type == "cuda" and device.index is None:
        return [torch.device("cuda", k) for k in range(torch.cuda.device_count())]
    return [device]


def run_sweep(configs, parallel=1, log=print, on_finished=None):
    """Train every config (each with its own `out`), `parallel` at a time on each device.

    Finished runs are skipped; unfinished ones resume. `on_finished(config)` is called as each run
    trained now finishes its epochs (table1 tests it then, so a later kill cannot lose it). Returns
    {out: the metrics rows of the epochs trained by this call} ([] for a run finished earlier).
    """
    outs = [str(Path(c.out)) for c in configs]
    if len(set(outs)) != len(outs):
        raise ValueError("every run of a sweep needs its own output folder; these repeat: "
                         + ", ".join(sorted({o for o in outs if outs.count(o) > 1})))
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    for config in configs:
        check_run_folder(config)
    done_before = {c.out: epochs_done(c) for c in configs}
    todo = [c for c in configs if done_before[c.out] < c.epochs]
    for c in configs:
        if c not in todo:
            log(f"{c.out}: finished earlier, skipped")
    # One slot per (device, parallel run); a thread takes a free slot's device for each run.
    free = queue.SimpleQueue()
    slots = [d for d in (devices_for(todo[0].device) if todo else []) for _ in range(parallel)]
    for device in slots:
        free.put(device)

    def one_run(config):
        device = free.get()
        try:
            history = _run_on(config, device, log)
        finally:
            free.put(device)
        if on_finished is not None and epochs_done(config) >= config.epochs:
            on_finished(config)
        return history

    results = {c.out: [] for c in configs}
    with ThreadPoolExecutor(max_workers=max(len(slots), 1)) as pool:
        for config, history in zip(todo, pool.map(one_run, todo)):
            results[config.out] = history[done_before[config.out]:]
    return results


def _run_on(config, device, log):
    config = replace(config, device=str(device), resume=True)
    started = time.perf_counter()
    history = run_training(config)
    best = max(history, key=lambda row: row["val_accuracy"]) if history else None
    log(f"{config.out}: done in {time.perf_counter() - started:.1f} s"
        + (f", best validation accuracy {best['val_accuracy']:.4%} at epoch {best['epoch']}" if best else ""))
    return history
