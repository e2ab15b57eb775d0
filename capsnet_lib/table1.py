"""`python -m capsnet_lib.table1`: the paper's Table 1, MNIST test error as mean ± std over seeds.

    python -m capsnet_lib.table1 --seeds 3 --epochs 50 --out results/table1
    python -m capsnet_lib.table1 --table routing --seeds 3 --epochs 50 --out results/routing

The second command compares, on the headline row (3 iterations + reconstruction), the library's
routing with two variants: backpropagating through every routing iteration, and the authors'
released code (no stop-gradient, a learned bias on s_j, and their margin loss's extra 0.5 factor,
which under Adam equals doubling the reconstruction weight to 0.001).

Five rows, each trained with several seeds by capsnet_lib.sweep (resumable: run the command again
to continue an interrupted table): the baseline CNN of Sec. 5, and CapsNet with 1 or 3 routing
iterations, with or without the reconstruction loss. The protocol, the same for every run:
- the epoch is selected on the 5,000 validation images (best.pt, written by capsnet_lib.train);
- once a run has finished all its epochs, its best.pt is evaluated on the 10,000 test images
  exactly once, and the result is stored beside it in test.json; later calls only read it.
Writes OUT/<row>/seed<N>/ (a training run plus test.json), OUT/runs.csv (one line per run) and
OUT/summary.csv (one line per row, beside the paper's numbers).
"""
import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

from .checkpoint import load_checkpoint
from .data import load_mnist
from .evaluate import error_report, predict
from .files import atomic_write_text
from .runtime import setup_runtime, tune_cpu_allocator
from .sweep import epochs_done, run_sweep
from .train import build_parser, config_from_args

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
    "authors_code":     ("the authors' code: no detach, bias on s_j, margin x 0.5 (= reconstruction 0.001)",
                         dict(routing_iterations=3, reconstruction=True, routing_detach=False, routing_bias=True,
                              reconstruction_weight=0.001), (None, None)),
}
TABLES = {"table1": ROWS, "routing": ROUTING_ROWS}
PROTOCOL = "epoch selected on 5,000 validation images; test set evaluated once per finished run"
RUN_FIELDS = ("row", "seed", "epochs", "best_epoch", "val_accuracy", "test_error_percent", "test_errors",
              "test_images", "train_seconds", "hardware", "commit")
SUMMARY_FIELDS = ("row", "what", "runs", "test_error_mean", "test_error_std", "paper_mean", "paper_std",
                  "parameters", "epochs", "train_seconds_per_run", "hardware", "commit", "protocol")


def run_configs(args, rows, table=ROWS):
    """One TrainConfig per (row, seed), each in OUT/<row>/seed<N>."""
    return {(row, seed): config_from_args(args, seed=seed, out=str(Path(args.out) / row / f"seed{seed}"),
                                          progress=False, **table[row][1])
            for row in rows for seed in range(args.seeds)}


def evaluate_once(config, commit, test_limit=None):
    """The test result of a finished run: read from test.json, or measured now and stored there
    (atomically) so that the test set is never looked at twice for the same run. `test_limit`
    evaluates only the first N test images (quick runs; the count is recorded)."""
    path = Path(config.out) / "test.json"
    if path.is_file():
        return json.loads(path.read_text())
    checkpoint = load_checkpoint(Path(config.out) / "best.pt")
    runtime = setup_runtime(config.device, "fp32")
    images, labels = (t[:test_limit] for t in load_mnist("test", config.data_root, config.download))
    report = error_report(predict(runtime.model(checkpoint.model), images.to(runtime.device)), labels)
    with open(Path(config.out) / "metrics.csv") as f:
        seconds = sum(float(r["epoch_seconds"]) + float(r.get("val_seconds") or 0) for r in csv.DictReader(f))
    result = {"best_epoch": checkpoint.extra["epoch"], "val_accuracy": checkpoint.extra["val_accuracy"],
              "test_error_percent": round(100 * (1 - report["accuracy"]), 4), "test_errors": report["errors"],
              "test_images": report["total"], "train_seconds": round(seconds, 1), "hardware": checkpoint.extra.get("hardware", ""),
              "commit": commit, "parameters": sum(p.numel() for p in checkpoint.model.parameters())}
    atomic_write_text(path, json.dumps(result, indent=1))
    return result


def summarize(results, configs, table=ROWS):
    """One summary line per row from the runs' test results {(row, seed): result}."""
    lines = []
    for row, (what, _, (paper_mean, paper_std)) in table.items():
        runs = [(results[key], configs[key]) for key in sorted(results) if key[0] == row]
        if not runs:
            continue
        errors = [r["test_error_percent"] for r, _ in runs]
        lines.append({"row": row, "what": what, "runs": len(runs), "test_error_mean": round(statistics.mean(errors), 4),
                      "test_error_std": round(statistics.stdev(errors), 4) if len(errors) > 1 else "",
                      "paper_mean": "" if paper_mean is None else paper_mean,
                      "paper_std": "" if paper_std is None else paper_std,
                      "parameters": runs[0][0]["parameters"], "epochs": runs[0][1].epochs,
                      "train_seconds_per_run": round(statistics.mean(r["train_seconds"] for r, _ in runs), 1),
                      "hardware": "; ".join(sorted({r["hardware"] for r, _ in runs})),
                      "commit": "; ".join(sorted({r["commit"] for r, _ in runs})), "protocol": PROTOCOL})
    return lines


def write_csv(path, fieldnames, lines):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(lines)
    atomic_write_text(path, buffer.getvalue())


def library_commit():
    """The git commit of this checkout, or 'unknown' outside one."""
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def main(argv=None):
    parser = build_parser(exclude=("seed", "resume", "overwrite", "progress", "max_steps", "model",
                                   "routing_iterations", "reconstruction", "reconstruction_weight",
                                   "routing_detach", "routing_bias"),   # the rows set these
                          prog="python -m capsnet_lib.table1", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="runs per row, with seeds 0..N-1 (default 3)")
    parser.add_argument("--table", default="table1", choices=list(TABLES),
                        help="table1: the paper's five rows; routing: the headline row's routing variants")
    parser.add_argument("--rows", nargs="+", choices=sorted({r for t in TABLES.values() for r in t}),
                        help="a subset of the table's rows (default: all)")
    parser.add_argument("--parallel", type=int, default=3, help="runs at once on each device (default 3)")
    parser.add_argument("--test-limit", type=int, default=None, help="test only the first N images (quick runs)")
    parser.set_defaults(out="results/table1")
    args = parser.parse_args(argv)
    tune_cpu_allocator()     # see train.main
    try:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        table = TABLES[args.table]
        unknown = sorted(set(args.rows or []) - set(table))
        if unknown:
            raise ValueError(f"rows {', '.join(unknown)} are not in --table {args.table}: choose from {', '.join(table)}")
        configs = run_configs(args, args.rows or list(table), table)
        for config in configs.values():
            config.check()
        run_sweep(list(configs.values()), args.parallel, log=lambda line: print(line, file=sys.stderr))
        commit = library_commit()
        results = {key: evaluate_once(config, commit, args.test_limit) for key, config in configs.items()
                   if epochs_done(config) >= config.epochs}
    except (ValueError, TypeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_csv(Path(args.out) / "runs.csv", RUN_FIELDS,
              [{"row": row, "seed": seed, "epochs": configs[row, seed].epochs, **result}
               for (row, seed), result in sorted(results.items())])
    summary = summarize(results, configs, table)
    write_csv(Path(args.out) / "summary.csv", SUMMARY_FIELDS, summary)
    print(f"{'row':<16} {'runs':>4} {'test error %':>16} {'paper %':>14}")
    for line in summary:
        ours = f"{line['test_error_mean']:.3f}" + (f" ± {line['test_error_std']:.3f}" if line["test_error_std"] != "" else "")
        paper = "" if line["paper_mean"] == "" else f"{line['paper_mean']:.2f}" + (
            f" ± {line['paper_std']:.3f}" if line["paper_std"] != "" else "")
        print(f"{line['row']:<16} {line['runs']:>4} {ours:>16} {paper:>14}")
    print(f"({PROTOCOL}; per-run results in {Path(args.out) / 'runs.csv'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
