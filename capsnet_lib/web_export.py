"""`python -m capsnet_lib.web_export`: what the web page of Figure 4 needs to run with no Python.

    python -m capsnet_lib.web_export --out docs/_static/figure4

Writes decoder.bin, decoder.json and digits.json, from the shipped model (or --checkpoint) and the
first --digits test images; figures/web_export.py describes their format.
"""
import argparse
import sys

from .cli import reports_errors
from .data.mnist import DATA_ENV_VAR, load_mnist
from .figures.web_export import export
from .training.checkpoint import load_checkpoint, load_pretrained


@reports_errors
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m capsnet_lib.web_export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/_static/figure4", help="folder for the three files")
    p.add_argument("--checkpoint", default=None, help="a CapsNet checkpoint with a decoder (default: the shipped model)")
    p.add_argument("--digits", type=int, default=100, help="how many test digits, from the first (default 100)")
    p.add_argument("--data-root", default=None, help=f"MNIST root (default: ${DATA_ENV_VAR} or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false")
    args = p.parse_args(argv)
    if not 1 <= args.digits <= 10_000:
        raise ValueError(f"--digits must be in 1..10000, got {args.digits}")
    model = load_checkpoint(args.checkpoint).model if args.checkpoint else load_pretrained()
    images, labels = load_mnist("test", args.data_root, args.download)
    sizes = export(model, images[:args.digits], labels[:args.digits], args.out)
    print(", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()) + f" in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
