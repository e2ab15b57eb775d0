"""`python -m capsnet_lib.train`: train a CapsNet on MNIST, select it on the validation split.

Writes to --out: metrics.csv (one row per epoch), best.pt (highest validation accuracy) and
last.pt (with optimizer, schedule and step, for --resume). Each epoch's shuffling and shifts
come from a generator seeded by (seed, epoch), so a resumed run continues exactly where an
uninterrupted one would have been.
"""
import sys

from .cli import build_parser, config_from_args, reports_errors
from .training import distributed
from .training.budget import plan_run
from .training.loop import run_training
from .training.runtime import tune_cpu_allocator


@reports_errors
def main(argv=None):
    parser = build_parser("python -m capsnet_lib.train", __doc__)
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="measure a few steps, train the epochs that fit (at most --epochs), stop by then")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    tune_cpu_allocator()     # a process-wide setting: the command owns its process, a library call does not
    if args.time_budget is not None:
        config = plan_run(config, args.time_budget)
    history = run_training(config)
    if history and distributed.is_main_process():     # other ranks hold no rows of this call's epochs
        best = max(history, key=lambda row: row["val_accuracy"])
        print(f"best validation accuracy {best['val_accuracy']:.4%} at epoch {best['epoch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
