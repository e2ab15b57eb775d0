"""`python -m capsnet_lib.sweep`: many independent trainings at once, one GPU kept busy.

Each run writes exactly what `python -m capsnet_lib.train` writes into OUT/seed<N>, and is resumable
the same way: a sweep started again skips finished runs and continues unfinished ones. On a machine
with several GPUs the runs are spread over them, `--parallel` per GPU (experiments/sweep.py says why).

    python -m capsnet_lib.sweep --seeds 0 1 2 --parallel 3 --out runs/sweep --epochs 30
"""
import sys
import time
from pathlib import Path

from .cli import build_parser, config_from_args, reports_errors
from .experiments.sweep import run_sweep
from .training.runtime import tune_cpu_allocator


@reports_errors
def main(argv=None):
    parser = build_parser(exclude=("seed", "resume", "overwrite", "progress", "max_steps"),
                          prog="python -m capsnet_lib.sweep", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="one run per seed, in OUT/seed<N>")
    parser.add_argument("--parallel", type=int, default=3, help="runs at once on each device (default 3)")
    args = parser.parse_args(argv)
    tune_cpu_allocator()     # see train.main
    configs = [config_from_args(args, seed=seed, out=str(Path(args.out) / f"seed{seed}"), progress=False)
               for seed in args.seeds]
    for config in configs:
        config.check()
    started = time.perf_counter()
    results = run_sweep(configs, args.parallel, log=lambda line: print(line, file=sys.stderr))
    images = sum(row["images_per_second"] * row["epoch_seconds"] for rows in results.values() for row in rows)
    seconds = time.perf_counter() - started
    print(f"{len(configs)} runs ({sum(bool(rows) for rows in results.values())} trained now) in {seconds:.1f} s: "
          f"{images / seconds:,.0f} training images/s in aggregate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
