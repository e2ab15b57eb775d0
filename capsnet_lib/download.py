"""`python -m capsnet_lib.download [--data-root DIR]`: fetch MNIST once (a no-op if it is there).

A command of its own, not `python -m capsnet_lib.data.mnist`: the package imports data/mnist.py, and running
an already imported module as a script makes Python warn about it.
"""
import argparse
import sys

from .cli import reports_errors
from .data.mnist import DATA_ENV_VAR, DEFAULT_DATA_ROOT, SPLITS, data_root, load_mnist


@reports_errors
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m capsnet_lib.download", description=__doc__)
    parser.add_argument("--data-root", default=None, help=f"default: ${DATA_ENV_VAR} or ./{DEFAULT_DATA_ROOT}")
    args = parser.parse_args(argv)
    for split in SPLITS:
        images, _ = load_mnist(split, args.data_root)
        print(f"{split}: {images.shape[0]} images")
    print(f"MNIST ready in {data_root(args.data_root) / 'MNIST' / 'raw'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
