"""The paper's Table 1 as runs and results: its rows, one test evaluation per finished run, the summary.

`python -m capsnet_lib.table1` trains the rows (each with several seeds, by experiments/sweep.py or
as ensembles) and writes the CSVs; this module holds what it does with them:
- the epoch is selected on the 5,000 validation images (best.pt, written by the training loop);
- once a run has finished all its epochs, its best.pt is evaluated on the 10,000 test images
  exactly once, and the result is stored beside it in test.json; later calls only read it.
A run's folder keeps what a repository can hold: metrics.csv, test.json and config.json (the settings
it was trained with). Without its checkpoints (a fresh clone) it still counts as finished, and a run
whose recorded settings are not the table's is refused in one line, never reported as the table's.
"""
import csv
import json
import os
import statistics
import subprocess
from dataclasses import replace
from pathlib import Path

from ..data.mnist import load_mnist
from ..losses import AUTHORS_RECONSTRUCTION_WEIGHT
from ..training.budget import plan_epochs
from ..training.checkpoint import load_checkpoint, tensor_checksum
from ..training.ensemble import step_key, train_ensemble
from ..training.evaluation import error_report, predict
from ..training.files import atomic_write_text
from ..training.run_folder import setting_differences
from ..training.runtime import setup_runtime
from .sweep import MOVE_AWAY, SETTINGS_FILE, check_run_folder, epochs_done, recorded_settings, run_sweep


# row: (what it is, TrainConfig fields, the paper's test error in % as (mean, std); std None where
# the paper gives none)


ROWS = {
    "baseline":         ("baseline CNN (Sec. 5)", dict(model="baseline_cnn"), (0.39, None)),
    "routing1":         ("CapsNet, 1 routing iteration, no reconstruction",
                         dict(routing_iterations=1, reconstruction=False), (0.34, 0.032)),
    "routing1_recon":   ("CapsNet, 1 routing iteration, reconstruction",
                         dict(routing_iterations=1, reconstruction=True), (0.29, 0.011)),
    "routing3":         ("CapsNet, 3 routing iterations, no reconstruction",
                         dict(routing_iterations=3, reconstruction=False), (0.35, 0.036)),
    "routing3_recon":   ("CapsNet, 3 routing iterations, reconstruction",
                         dict(routing_iterations=3, reconstruction=True), (0.25, 0.005)),
}
ROUTING_ROWS = {
    "routing3_recon":   ("library: detached routing, no bias, reconstruction 0.0005 (Procedure 1)",
                         dict(routing_iterations=3, reconstruction=True), (0.25, 0.005)),
    "no_detach":        ("gradient through every routing iteration",
                         dict(routing_iterations=3, reconstruction=True, routing_detach=False), (None, None)),
    "authors_code":     ("the authors' code: no detach, bias on s_j, margin Eq. 4 / 20 (= reconstruction 0.01)",
                         dict(routing_iterations=3, reconstruction=True, routing_detach=False, routing_bias=True,
                              reconstruction_weight=AUTHORS_RECONSTRUCTION_WEIGHT), (None, None)),
}
TABLES = {"table1": ROWS, "routing": ROUTING_ROWS}
TEST_SIZE = 10_000
PROTOCOL = "epoch selected on 5,000 validation images; test set evaluated once per finished run"
# Where and how a run ran, left out of config.json: paths, the device asked for, process flags.
MACHINE_SETTINGS = ("out", "data_root", "device", "resume", "overwrite", "progress", "download", "deadline")
RUN_FIELDS = ("row", "seed", "epochs", "best_epoch", "val_accuracy", "test_error_percent", "test_errors",
              "test_images", "train_seconds", "ensemble_size", "hardware", "commit")
SUMMARY_FIELDS = ("row", "what", "runs", "test_error_mean", "test_error_std", "paper_mean", "paper_std",
                  "parameters", "epochs", "train_seconds_per_run", "hardware", "commit", "protocol")


def evaluate_once(config, commit, test_limit=None):
    """The test result of a run's best.pt: read from test.json while it describes that checkpoint
    (its weights' checksum, the epochs trained, the test images), else measured now and stored
    there atomically, so the test set is looked at once per checkpoint. `test_limit` evaluates only
    the first N test images (quick runs; the count is recorded)."""
    out = Path(config.out)
    checkpoint = load_checkpoint(out / "best.pt")
    differences = setting_differences(checkpoint.extra.get("train_config", {}), config)
    if differences:
        raise ValueError(f"{out / 'best.pt'} is not this run's model ({'; '.join(differences)}); {MOVE_AWAY}")
    record = {k: v for k, v in checkpoint.extra["train_config"].items() if k not in MACHINE_SETTINGS}
    atomic_write_text(out / SETTINGS_FILE, json.dumps({**record, "precision": checkpoint.extra["precision"]}, indent=1))
    source = {"checkpoint_checksum": tensor_checksum(checkpoint.model.state_dict()), "epochs": epochs_done(config),
              "test_images": test_limit or TEST_SIZE}
    stored = read_test_result(out / "test.json")
    if stored is not None and all(stored.get(key) == value for key, value in source.items()):
        return stored
    runtime = setup_runtime(config.device, "fp32")
    images, labels = (t[:test_limit] for t in load_mnist("test", config.data_root, config.download))
    report = error_report(predict(runtime.move_model(checkpoint.model), images.to(runtime.device)), labels)
    with open(out / "metrics.csv") as f:
        seconds = sum(float(r["epoch_seconds"]) + float(r.get("val_seconds") or 0) for r in csv.DictReader(f))
    result = {"best_epoch": checkpoint.extra["epoch"], "val_accuracy": checkpoint.extra["val_accuracy"],
              "test_error_percent": round(100 * (1 - report["accuracy"]), 4), "test_errors": report["errors"],
              "train_seconds": round(seconds, 1), "ensemble_size": checkpoint.extra.get("ensemble_size", 1),
              "hardware": checkpoint.extra.get("hardware", ""), "commit": commit,
              "parameters": sum(p.numel() for p in checkpoint.model.parameters()), **source}
    atomic_write_text(out / "test.json", json.dumps(result, indent=1))
    return result


def committed_result(config, test_images):
    """The test result of a finished run that kept no best.pt (its folder as committed: metrics.csv,
    test.json, config.json), or None where there is no such run. Refused in one line: a stored run
    of other settings, epochs or test images than the table's, since it can be neither reported
    nor continued."""
    out = Path(config.out)
    stored = None if (out / "best.pt").is_file() else read_test_result(out / "test.json")
    if stored is None:
        return None         # nothing stored, or a checkpoint that evaluate_once checks it against
    saved = recorded_settings(out)
    if saved is None:
        raise ValueError(f"{out / 'test.json'} has no {SETTINGS_FILE} beside it saying what it was trained with; "
                         f"{MOVE_AWAY}")
    differences = setting_differences(saved, config) + [
        f"{name} was {stored[name]}, now {wanted}" for name, wanted in (("epochs", config.epochs),
                                                                         ("test_images", test_images))
        if stored[name] != wanted]
    if differences:
        raise ValueError(f"{out} holds a finished run with other settings than this command's "
                         f"({'; '.join(differences)}) and no checkpoint to continue or test; {MOVE_AWAY}")
    return stored


def reuse_note(runs):
    """'; reuses results/recipe_search/fast (seed0, seed1, seed2)' for runs that are another
    experiment's, committed there (their test.json names it in reused_from); '' for none."""
    folders = sorted(Path(r["reused_from"]) for r in runs if r.get("reused_from"))
    parents = sorted({folder.parent.as_posix() for folder in folders})
    return "".join(f"; reuses {parent} ({', '.join(f.name for f in folders if f.parent.as_posix() == parent)})"
                   for parent in parents)


def read_test_result(path):
    """A stored test.json, checked: None if there is none, a one-line error naming the file if it is
    damaged or contradicts itself (delete it and run the command again to measure it anew)."""
    path = Path(path)
    if not path.is_file():
        return None
    remedy = "delete it and run the command again to measure it anew"
    try:
        result = json.loads(path.read_text())
        errors, images, percent = result["test_errors"], result["test_images"], result["test_error_percent"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}); {remedy}") from None
    if not (isinstance(errors, int) and isinstance(images, int) and 0 <= errors <= images and images > 0):
        raise ValueError(f"{path} is damaged: {errors!r} errors in {images!r} test images; {remedy}")
    if abs(percent - 100 * errors / images) > 1e-3:
        raise ValueError(f"{path} contradicts itself: test_error_percent {percent} but {errors} errors in {images} "
                         f"images ({100 * errors / images:.4f}%); {remedy}")
    return result


def current_test_result(out):
    """A run folder's test.json while it describes the folder's best.pt (its weights' checksum), else
    None: none stored, or one left from an earlier best.pt. A folder kept without best.pt (as
    committed) is described by its test.json alone."""
    out = Path(out)
    stored = read_test_result(out / "test.json")
    if stored is None or not (out / "best.pt").is_file():
        return stored
    checksum = tensor_checksum(load_checkpoint(out / "best.pt").model.state_dict())
    return stored if stored.get("checkpoint_checksum") == checksum else None


def stored_results(out, table):
    """{(row, seed): test result} of every run of the table's rows under OUT that has a test.json,
    so a call for some rows or seeds keeps the others in the CSVs."""
    results = {}
    for row in table:
        for path in sorted(Path(out).glob(f"{row}/seed*/test.json")):
            seed = path.parent.name[len("seed"):]
            if seed.isdigit():
                results[row, int(seed)] = read_test_result(path)
    return results


def summarize(results, table=ROWS):
    """One summary line per row from the runs' test results {(row, seed): result}."""
    lines = []
    for row, (what, _, (paper_mean, paper_std)) in table.items():
        runs = [results[key] for key in sorted(results) if key[0] == row]
        if not runs:
            continue
        errors = [r["test_error_percent"] for r in runs]
        joined = lambda key: "; ".join(sorted({str(r.get(key, "")) for r in runs}))
        lines.append({"row": row, "what": what, "runs": len(runs), "test_error_mean": round(statistics.mean(errors), 4),
                      "test_error_std": round(statistics.stdev(errors), 4) if len(errors) > 1 else "",
                      "paper_mean": "" if paper_mean is None else paper_mean,
                      "paper_std": "" if paper_std is None else paper_std,
                      "parameters": runs[0]["parameters"], "epochs": joined("epochs"),
                      "train_seconds_per_run": round(statistics.mean(r["train_seconds"] for r in runs), 1),
                      "hardware": joined("hardware"), "commit": joined("commit"),
                      "protocol": PROTOCOL + reuse_note(runs)})
    return lines


def library_commit():
    """$CAPSNET_COMMIT if set (a copy of the tree without .git, e.g. on a GPU machine), else the git
    commit of this checkout, or 'unknown' outside one."""
    if os.environ.get("CAPSNET_COMMIT"):
        return os.environ["CAPSNET_COMMIT"]
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def jobs(configs, ensemble):
    """The training jobs: with `ensemble`, the CapsNet runs grouped by step (ensemble.step_key)
    and every other run alone; else every run alone."""
    if not ensemble:
        return [[c] for c in configs]
    groups = {}
    for config in configs:
        key = step_key(config) + (epochs_done(config),) if config.model == "capsnet" else (config.out,)
        groups.setdefault(key, []).append(config)
    return list(groups.values())


def train_all(configs, options, log, on_finished=lambda config: None):
    """Train the unfinished runs {key: config} (resuming those begun), as the table command's
    `options` say: as ensembles where they can share a step if options.ensemble, the rest
    options.parallel at a time per device, within options.time_budget seconds if given (its plan is
    written to options.out); `on_finished(config)` as each run finishes its epochs. Returns the
    configs as trained (with the planned epochs)."""
    ensemble, todo = options.ensemble, [c for c in configs.values() if epochs_done(c) < c.epochs]
    if todo and options.time_budget is not None:
        epochs, deadline = plan_epochs(jobs(todo, ensemble), options.time_budget, todo[0].epochs, options.out, log)
        configs = {key: replace(c, epochs=epochs, deadline=deadline) for key, c in configs.items()}
        todo = [c for c in configs.values() if epochs_done(c) < c.epochs]
    for config in configs.values():
        if config not in todo:
            log(f"{config.out}: finished earlier, skipped")
    alone = []
    for job in jobs(todo, ensemble):
        if len(job) > 1 or (ensemble and job[0].model == "capsnet"):
            train_ensemble([replace(c, resume=True) for c in job], log=log)
            for config in job:
                if epochs_done(config) >= config.epochs:
                    on_finished(config)
        else:
            alone.extend(job)
    run_sweep(alone, options.parallel, log=log, on_finished=on_finished)
    return configs
