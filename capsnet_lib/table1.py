"""`python -m capsnet_lib.table1`: the paper's Table 1, MNIST test error as mean ± std over seeds.

    python -m capsnet_lib.table1 --seeds 3 --epochs 50 --out results/table1
    python -m capsnet_lib.table1 --table routing --seeds 3 --epochs 50 --out results/routing

The second command compares, on the headline row (3 iterations + reconstruction), the library's
routing with two variants: backpropagating through every routing iteration, and the authors'
released code (no stop-gradient, a learned bias on s_j, and their margin loss, Eq. 4 / 20, which
under Adam equals a reconstruction weight of 0.01: losses.AUTHORS_RECONSTRUCTION_WEIGHT).

Five rows, each trained with several seeds by experiments/sweep.py (resumable: run the command again
to continue an interrupted table): the baseline CNN of Sec. 5, and CapsNet with 1 or 3 routing
iterations, with or without the reconstruction loss. The protocol, the same for every run:
- the epoch is selected on the 5,000 validation images (best.pt, written by the training loop);
- once a run has finished all its epochs, its best.pt is evaluated on the 10,000 test images
  exactly once, and the result is stored beside it in test.json; later calls only read it.
Writes OUT/<row>/seed<N>/ (a training run plus test.json and config.json, its settings), OUT/runs.csv
(one line per run) and OUT/summary.csv (one line per row, beside the paper's numbers). The small files
are meant to be committed: a fresh clone continues the table from them (experiments/table1.py), and
`--report-only` rebuilds the CSVs from them.
"""
import sys
from pathlib import Path

from .cli import build_parser, config_from_args, reports_errors
from .experiments.sweep import check_run_folder, epochs_done
from .experiments.table1 import (PROTOCOL, ROWS, RUN_FIELDS, SUMMARY_FIELDS, TABLES, TEST_SIZE, committed_result,
                                 evaluate_once, library_commit, stored_results, summarize, train_all)
from .training.budget import check_time_budget
from .training.files import atomic_write_csv
from .training.runtime import tune_cpu_allocator



def run_configs(args, rows, table=ROWS):
    """One TrainConfig per (row, seed), each in OUT/<row>/seed<N>."""
    return {(row, seed): config_from_args(args, seed=seed, out=str(Path(args.out) / row / f"seed{seed}"),
                                          progress=False, **table[row][1])
            for row in rows for seed in range(args.seeds)}


def build_table1_parser():
    parser = build_parser(exclude=("seed", "resume", "overwrite", "progress", "max_steps", "model",
                                   "routing_iterations", "reconstruction", "reconstruction_weight",
                                   "routing_detach", "routing_bias", "deadline"),   # the rows set these
                          prog="python -m capsnet_lib.table1", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="runs per row, with seeds 0..N-1 (default 3)")
    parser.add_argument("--table", default="table1", choices=list(TABLES),
                        help="table1: the paper's five rows; routing: the headline row's routing variants")
    parser.add_argument("--rows", nargs="+", choices=sorted({r for t in TABLES.values() for r in t}),
                        help="a subset of the table's rows (default: all); the CSVs keep the others' results")
    parser.add_argument("--parallel", type=int, default=3, help="runs at once on each device (default 3)")
    parser.add_argument("--test-limit", type=int, default=None, help="test only the first N images (quick runs)")
    parser.add_argument("--ensemble", action="store_true",
                        help="train the CapsNet runs that can share a step as one ensemble (ensemble.py; for GPUs)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="measure each job, train the epochs that fit (at most --epochs), stop by then")
    parser.add_argument("--report-only", action="store_true",
                        help="train and test nothing: rebuild runs.csv and summary.csv from the test.json files in --out")
    parser.set_defaults(out="results/table1")
    return parser


def check_args(args):
    """Every option checked before any work."""
    for name in ("seeds", "parallel", "test_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.time_budget is not None:
        check_time_budget(args.time_budget)
    if args.test_limit is not None and args.test_limit > TEST_SIZE:
        raise ValueError(f"--test-limit must be at most the {TEST_SIZE} test images, got {args.test_limit}")
    unknown = sorted(set(args.rows or []) - set(TABLES[args.table]))
    if unknown:
        raise ValueError(f"rows {', '.join(unknown)} are not in --table {args.table}: "
                         f"choose from {', '.join(TABLES[args.table])}")


@reports_errors
def main(argv=None):
    args = build_table1_parser().parse_args(argv)
    tune_cpu_allocator()     # see train.main
    log = lambda line: print(line, file=sys.stderr)
    check_args(args)
    table = TABLES[args.table]
    if not args.report_only:
        run_table(args, table, log)
    summary = write_tables(args.out, table)
    print(f"{'row':<16} {'runs':>4} {'test error %':>16} {'paper %':>14}")
    for line in summary:
        ours = f"{line['test_error_mean']:.3f}" + (f" ± {line['test_error_std']:.3f}" if line["test_error_std"] != "" else "")
        paper = "" if line["paper_mean"] == "" else f"{line['paper_mean']:.2f}" + (
            f" ± {line['paper_std']:.3f}" if line["paper_std"] != "" else "")
        print(f"{line['row']:<16} {line['runs']:>4} {ours:>16} {paper:>14}")
    print(f"({PROTOCOL}; per-run results in {Path(args.out) / 'runs.csv'})")
    return 0


def run_table(args, table, log):
    """Train the table's missing runs and test each finished one once. Runs committed earlier (no
    checkpoint, a test.json of the table's settings) are only read; every other folder is checked
    for the table's settings before any training."""
    configs = run_configs(args, args.rows or list(table), table)
    for config in configs.values():
        config.check()
    committed = {key for key, config in configs.items() if committed_result(config, args.test_limit or TEST_SIZE)}
    for key in sorted(committed):
        log(f"{configs[key].out}: finished earlier (its results are stored), skipped")
    configs = {key: config for key, config in configs.items() if key not in committed}
    for config in configs.values():
        check_run_folder(config)
    commit = library_commit()
    test = lambda config: evaluate_once(config, commit, args.test_limit)
    configs = train_all(configs, args, log, on_finished=test)
    for config in configs.values():     # finished runs (read again), and runs a deadline stopped after an epoch
        if epochs_done(config) >= (1 if config.deadline is not None else config.epochs):
            test(config)


def write_tables(out, table):
    """OUT/runs.csv and OUT/summary.csv, rebuilt from every test.json of the table's rows under OUT;
    returns the summary lines."""
    results = stored_results(out, table)
    atomic_write_csv(Path(out) / "runs.csv", RUN_FIELDS,
                     [{"row": row, "seed": seed, **result} for (row, seed), result in sorted(results.items())])
    summary = summarize(results, table)
    atomic_write_csv(Path(out) / "summary.csv", SUMMARY_FIELDS, summary)
    return summary


if __name__ == "__main__":
    sys.exit(main())
