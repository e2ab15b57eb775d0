"""`python -m capsnet_lib.robustness`: Sec. 5.2's accuracy on affine-transformed digits.

    python -m capsnet_lib.robustness CAPSNET.pt CNN.pt --out results/affine_robustness.csv

writes, for each model, its accuracy on the translated and the affNIST-style test sets and on bins
of rotation, shear and scale (the geometric mean of the two axes' scalings: the size change);
experiments/robustness.py computes them.
"""
import argparse
import sys

from .cli import reports_errors
from .data.mnist import DATA_ENV_VAR, load_mnist
from .data.translated import AFFNIST_STYLE
from .experiments.robustness import COLUMNS, robustness_rows
from .training.checkpoint import load_checkpoint
from .training.files import atomic_write_csv


@reports_errors
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m capsnet_lib.robustness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="models trained on --dataset translated40 (their best.pt)")
    p.add_argument("--names", nargs="+", default=None, help="a name per checkpoint (default: capsnet or baseline_cnn)")
    p.add_argument("--out", default="results/affine_robustness.csv")
    p.add_argument("--data-root", default=None, help=f"MNIST root (default: ${DATA_ENV_VAR} or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--limit", type=int, default=None, help="only the first N test digits (quick checks)")
    args = p.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.checkpoints):
        raise ValueError(f"--names gives {len(args.names)} names for {len(args.checkpoints)} checkpoints")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1 (the first N test digits), got {args.limit}")
    digits, labels = (t[:args.limit] for t in load_mnist("test", args.data_root, args.download))
    rows = []
    for k, path in enumerate(args.checkpoints):
        checkpoint = load_checkpoint(path)
        if checkpoint.config.get("image_size") != 40:
            raise ValueError(f"{path} takes {checkpoint.config.get('image_size')}x"
                             f"{checkpoint.config.get('image_size')} images; Sec. 5.2's models take 40x40")
        name = args.names[k] if args.names else checkpoint.config.get("model", "capsnet")
        model_rows = robustness_rows(name, checkpoint.model.eval(), digits, labels)
        print(f"{name}: translated test {model_rows[0]['accuracy']:.2%}, affNIST-style "
              f"{model_rows[1]['accuracy']:.2%} of {model_rows[1]['images']} digits ({path})")
        rows += model_rows
    atomic_write_csv(args.out, COLUMNS, rows)
    print(f"wrote {args.out} ({len(rows)} rows; the affNIST-style ranges: {AFFNIST_STYLE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
