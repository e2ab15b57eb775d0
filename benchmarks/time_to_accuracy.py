"""Time to accuracy: training images and wall seconds until validation accuracy first reaches
99.0%, 99.3% and 99.5%, for the paper's recipe (the baseline) and the fast one, several seeds.

Train and report (resumable: finished runs are read, not retrained):
    python benchmarks/time_to_accuracy.py --seeds 0 1 2 --out runs/time_to_accuracy
    ... --ema 0.999    also the fast recipe with an EMA of the weights ("fast-ema", training/averaging.py)
    ... --test         then each run's best.pt on the test set, once (test.json beside it), as a column
    ... --ensemble     train each recipe's seeds as one batched ensemble (a GPU's way; fast-ema alone)
Report runs trained elsewhere (a run folder, or a metrics.csv such as the shipped model's):
    python benchmarks/time_to_accuracy.py --runs paper=capsnet_lib/pretrained/capsnet_mnist_metrics.csv fast=runs/x

Seconds count training and validation as metrics.csv logged them: they hold only on the machine
named, and only if nothing else ran beside the training. An ensemble's members log the seconds of
the whole ensemble's epoch.
"""
import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capsnet_lib.cli import reports_errors  # noqa: E402
from capsnet_lib.data.mnist import TRAIN_SIZE  # noqa: E402
from capsnet_lib.experiments.table1 import TEST_SIZE, current_test_result, evaluate_once, library_commit  # noqa: E402
from capsnet_lib.training.ensemble import train_ensemble  # noqa: E402
from capsnet_lib import TrainConfig, run_training  # noqa: E402

THRESHOLDS = (0.990, 0.993, 0.995)


def read_metrics(path):
    """The rows of a run folder's metrics.csv (or of a metrics CSV itself), numbers as floats;
    a file without rows, without an epoch or val_accuracy column, or with a word for a number is
    refused in one line that names it."""
    path = Path(path)
    path = path / "metrics.csv" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"no metrics at {path}: give a run folder holding metrics.csv, or a metrics CSV")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    missing = [name for name in ("epoch", "val_accuracy") if not rows or name not in rows[0]]
    if missing:
        raise ValueError(f"{path} is not a metrics CSV: {'it has no rows' if not rows else 'no ' + ' or '.join(missing)}"
                         " (expected a header with epoch and val_accuracy, and a row per epoch)")
    try:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in rows]
    except ValueError as error:
        raise ValueError(f"{path} holds a value that is not a number ({error})") from None


def time_to(rows, threshold, images_per_epoch=TRAIN_SIZE):
    """(training images, seconds) until validation accuracy first reaches `threshold`; None if never."""
    seconds = 0.0
    for row in rows:
        seconds += row.get("epoch_seconds", 0.0) + row.get("val_seconds", 0.0)
        if row["val_accuracy"] >= threshold:
            return int(row["epoch"]) * images_per_epoch, seconds
    return None


def test_accuracy(path):
    """The test accuracy in a run folder's test.json (written by --test or table1) while it describes
    the folder's best.pt, or None."""
    path = Path(path)
    result = current_test_result(path) if path.is_dir() else None
    return None if result is None else 1 - result["test_errors"] / result["test_images"]


def table(runs):
    """Lines of the report: one per (name, run folder, training images per epoch), then each name's
    mean where every seed got there; test accuracy where the run has a test.json."""
    head = f"{'recipe':<9}{'run':<44}{'epochs':>7}{'best val':>10}{'test':>8}" + "".join(
        f"{f'to {t:.1%}: images':>20}{'s':>8}" for t in THRESHOLDS)
    lines = [head]
    by_name = {}
    for name, path, images_per_epoch in runs:
        rows, test = read_metrics(path), test_accuracy(path)
        reached = [time_to(rows, t, images_per_epoch) for t in THRESHOLDS]
        by_name.setdefault(name, []).append((reached, test))
        cells = "".join(f"{r[0]:>20,}{r[1]:>8.0f}" if r else f"{'not reached':>20}{'':>8}" for r in reached)
        lines.append(f"{name:<9}{str(path)[-43:]:<44}{len(rows):>7}{max(r['val_accuracy'] for r in rows):>10.2%}"
                     f"{'' if test is None else f'{test:.2%}':>8}{cells}")
    for name, runs_of_name in by_name.items():
        tests = [test for _, test in runs_of_name]
        cells = f"{f'{sum(tests) / len(tests):.3%}' if None not in tests else '':>8}"
        for k in range(len(THRESHOLDS)):
            got = [reached[k] for reached, _ in runs_of_name]
            cells += (f"{sum(g[0] for g in got) / len(got):>20,.0f}{sum(g[1] for g in got) / len(got):>8.0f}"
                      if all(got) else f"{f'{sum(map(bool, got))} of {len(got)} runs':>20}{'':>8}")
        lines.append(f"{name:<9}{f'mean of {len(runs_of_name)}':<44}{'':>7}{'':>10}{cells}")
    stale = [str(path) for _, path, _ in runs if (Path(path) / "test.json").is_file() and test_accuracy(path) is None]
    lines += [f"(not shown: {path}/test.json describes an earlier best.pt; --test measures this one)" for path in stale]
    return lines


def candidates(args):
    """{name: (recipe, changes)}: the paper's recipe at --paper-epochs, the fast one, and with --ema
    the fast one with an average of the weights."""
    fast = {} if args.warmup_steps is None else {"warmup_steps": args.warmup_steps}
    found = {"paper": ("paper", {"epochs": args.paper_epochs}), "fast": ("fast", fast)}
    if args.ema is not None:
        found["fast-ema"] = ("fast", {**fast, "ema": args.ema})
    return found


def train_runs(args):
    """Train (or resume, or skip if finished) OUT/<name>/seed<N> for every candidate, and with
    --test evaluate each best.pt once; their folders."""
    runs, images_per_epoch = [], min(args.train_limit or TRAIN_SIZE, TRAIN_SIZE)
    commit = library_commit() if args.test else None
    for name, (recipe, changes) in candidates(args).items():
        configs = [TrainConfig.from_recipe(recipe, seed=seed, out=str(Path(args.out) / name / f"seed{seed}"),
                                           resume=True, data_root=args.data_root, train_limit=args.train_limit,
                                           val_limit=args.val_limit, device=args.device, **changes)
                   for seed in args.seeds]
        if args.ensemble and "ema" not in changes:
            train_ensemble(configs)
        else:
            for config in configs:
                run_training(config)
        for config in configs:
            if args.test:
                evaluate_once(config, commit, args.test_limit)
            runs.append((name, Path(config.out), images_per_epoch))
    return runs


def check_arguments(args):
    """Refuse, before any training, what would report one run twice or test the wrong images."""
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds repeats a seed ({' '.join(map(str, args.seeds))}): each seed is one run, "
                         "give each once")
    if args.runs and len(set(args.runs)) != len(args.runs):
        raise ValueError(f"--runs names a run twice: {' '.join(r for r in dict.fromkeys(args.runs) if args.runs.count(r) > 1)}")
    if args.test_limit is not None and not args.test:
        raise ValueError("--test-limit goes with --test (it says how many test images --test evaluates)")
    if args.test_limit is not None and not 1 <= args.test_limit <= TEST_SIZE:
        raise ValueError(f"--test-limit must be in 1..{TEST_SIZE:,} (the test set's size), got {args.test_limit}")


@reports_errors
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", metavar="NAME=PATH", help="report these runs; train nothing")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/time_to_accuracy")
    p.add_argument("--paper-epochs", type=int, default=16,
                   help="epochs of the paper's recipe (the shipped run first passed 99.5%% at 16)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--train-limit", type=int, default=None, help="the first N training images (quick runs)")
    p.add_argument("--val-limit", type=int, default=None, help="the first N validation images (quick runs)")
    p.add_argument("--warmup-steps", type=int, default=None, help="the fast recipe's warm-up (quick runs need fewer)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="also train the fast recipe with an EMA of the weights at this decay (fast-ema)")
    p.add_argument("--test", action="store_true", help="evaluate each run's best.pt on the test set, once")
    p.add_argument("--test-limit", type=int, default=None, help="with --test: the first N test images (quick runs)")
    p.add_argument("--ensemble", action="store_true",
                   help="train each recipe's seeds as one batched ensemble (fast on a GPU; not for fast-ema)")
    args = p.parse_args(argv)
    check_arguments(args)
    if args.runs:
        if any("=" not in run for run in args.runs):
            raise ValueError(f"--runs takes NAME=PATH pairs, got {args.runs}")
        runs = [(*run.split("=", 1), TRAIN_SIZE) for run in args.runs]
    else:
        runs = train_runs(args)
    lines = table(runs)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
