"""`python -m capsnet_lib.evaluate CHECKPOINT`: test accuracy, error count, per-class errors.

The test set is for reporting only; choose checkpoints on the validation split (the training loop does).
--dataset evaluates a model trained on translated 40x40 MNIST on that test set, or on our
affNIST-style set, and a MultiMNIST model on MultiMNIST pairs (each a fixed set, see data/tasks.py);
--affnist FILE on a real affNIST .mat file.
"""
import argparse
import sys

from .cli import reports_errors
from .data.mnist import DATA_ENV_VAR, load_mnist, to_float
from .data.tasks import TEST_SETS
from .data.translated import load_affnist
from .model import IMAGE_SHAPE
from .training.checkpoint import load_checkpoint
from .training.evaluation import accuracy, error_report, predict
from .training.precision import PRECISIONS
from .training.runtime import setup_runtime, tune_cpu_allocator


@reports_errors
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m capsnet_lib.evaluate", description=__doc__)
    p.add_argument("checkpoint", help="a .pt file written by capsnet_lib (e.g. runs/capsnet/best.pt)")
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--data-root", default=None, help=f"MNIST root (default: ${DATA_ENV_VAR} or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--dataset", default="mnist", choices=list(TEST_SETS),
                   help="mnist; translated40 or affnist_style (40x40, Sec. 5.2); multimnist (36x36, Sec. 6)")
    p.add_argument("--affnist", default=None, metavar="FILE", help="a real affNIST .mat file to evaluate on "
                   "instead (40x40; needs scipy)")
    p.add_argument("--limit", type=int, default=None, help="only the first N digits of the split, or images of "
                   "the file (quick checks; a generated set is then built from those digits)")
    args = p.parse_args(argv)
    tune_cpu_allocator()     # a process-wide setting: the command owns its process (see training/runtime.py)
    for name in ("batch_size", "limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    runtime = setup_runtime(args.device, args.precision)
    model = runtime.move_model(load_checkpoint(args.checkpoint).model)
    task = TEST_SETS["affnist_style" if args.affnist else args.dataset]
    size = getattr(getattr(model, "config", None), "image_size", IMAGE_SHAPE[-1])
    if size != task.image_size:
        raise ValueError(f"this checkpoint's model takes {size}x{size} images, but "
                         f"{'affNIST' if args.affnist else args.dataset} has {task.image_size}x{task.image_size}")
    if args.dataset != "mnist" or args.affnist:
        return _report_generated(args, task, model, runtime)
    images, labels = (t[:args.limit] for t in load_mnist(args.split, args.data_root, args.download))
    report = error_report(predict(model, images.to(runtime.device), args.batch_size, runtime.precision), labels)
    print(f"{args.split} accuracy: {report['accuracy']:.4%} ({report['errors']} errors in "
          f"{report['total']} images; {runtime.device}, {runtime.precision})")
    print("errors per true class: " + ", ".join(f"{k}: {n}" for k, n in enumerate(report["errors_per_class"])))
    return 0


def _report_generated(args, task, model, runtime):
    """Accuracy on a generated test set (or a real affNIST file); prints it, returns 0."""
    if args.affnist:
        images, labels = (t[:args.limit] for t in load_affnist(args.affnist))
        images, targets, what = to_float(images).to(runtime.device), labels.to(runtime.device), f"affNIST file {args.affnist}"
    else:
        digits, labels = (t[:args.limit] for t in load_mnist(args.split, args.data_root, args.download))
        images, targets = task.fixed_set(digits, labels, runtime.device)
        what = f"{args.dataset} ({args.split} digits)"
    right = accuracy(task, model, images, targets, runtime.precision, args.batch_size)
    print(f"accuracy on {what}: {right:.4%} of {images.shape[0]} images ({runtime.device}, {runtime.precision})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
