"""What the commands (`python -m capsnet_lib.<command>`) share: the training flags (train, sweep and
table1 take the same ones), and what every command does with a mistake in its input: one line on
stderr, naming what was wrong, and exit status 2; never a traceback."""
import argparse
import functools
import sys
from dataclasses import fields

from .data.mnist import DATA_ENV_VAR
from .data.tasks import TASKS
from .training.config import MODELS, TrainConfig
from .training.precision import PRECISIONS
from .training.recipes import RECIPES
from .training.schedules import SCHEDULES

USER_ERRORS = (ValueError, TypeError, OSError, ImportError)   # bad options, files, checkpoints, missing extras


def reports_errors(main):
    """Wrap a command's main(argv): a user error prints 'error: ...' and returns 2."""
    @functools.wraps(main)
    def command(argv=None):
        try:
            return main(argv)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return command


def build_parser(prog, description, exclude=()):
    """The training flags, less the TrainConfig fields named in `exclude` (a sweep sets those
    itself, and a flag it would silently override is better not offered)."""
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()

    def add(dest, *flags, **options):
        if dest not in exclude:
            p.add_argument(*flags, dest=dest, **options)
    add("recipe", "--recipe", default=d.recipe, choices=list(RECIPES),
        help="the optimisation settings not given below: paper (the default) or fast (training/recipes.py)")
    add("epochs", "--epochs", type=int, default=None, help="default: the recipe's (paper 30, fast 6)")
    add("batch_size", "--batch-size", type=int, default=None, help="default: the recipe's (128)")
    add("lr", "--lr", type=float, default=None, help="Adam learning rate (peak); default: the recipe's")
    add("schedule", "--schedule", default=None, choices=SCHEDULES,
        help="exponential (the paper's), or cosine or linear decay to 0 at the last step; default: the recipe's")
    add("lr_decay", "--lr-decay", type=float, default=None, help="exponential decay factor ...")
    add("lr_decay_steps", "--lr-decay-steps", type=int, default=None, help="... applied every this many steps")
    add("warmup_steps", "--warmup-steps", type=int, default=None, help="linear lr warm-up from ~0 over these steps")
    add("ema", "--ema", type=float, default=None, metavar="DECAY",
        help="validate and save an exponential moving average of the weights (e.g. 0.999); default: the recipe's")
    add("model", "--model", default=d.model, choices=MODELS, help="capsnet, or the paper's baseline CNN")
    add("dataset", "--dataset", default=d.dataset, choices=list(TASKS),
        help="mnist (Sec. 5), translated40 (Sec. 5.2) or multimnist (Sec. 6)")
    add("routing_iterations", "--routing-iterations", type=int, default=d.routing_iterations)
    add("reconstruction", "--no-reconstruction", action="store_false", help="train without the decoder and its loss")
    add("reconstruction_weight", "--reconstruction-weight", type=float, default=d.reconstruction_weight,
        help="weight of the summed squared reconstruction error (paper: 0.0005)")
    add("routing_detach", "--no-routing-detach", action="store_false",
        help="backpropagate through every routing iteration, as the authors' code does")
    add("routing_bias", "--routing-bias", action="store_true", help="a learned bias on s_j, as in the authors' code")
    add("seed", "--seed", type=int, default=d.seed)
    add("device", "--device", default=d.device, help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    add("precision", "--precision", default=d.precision, choices=PRECISIONS)
    add("data_root", "--data-root", default=None, help=f"MNIST root (default: ${DATA_ENV_VAR} or ./data)")
    add("download", "--no-download", action="store_false", help="never download MNIST")
    add("out", "--out", default=d.out, help="output folder for metrics.csv, best.pt, last.pt")
    add("resume", "--resume", action="store_true", help="continue the run in OUT from its last.pt")
    add("overwrite", "--overwrite", action="store_true", help="start again in an OUT that holds a run, replacing it")
    add("max_steps", "--max-steps", type=int, default=None, help="stop after this many steps (quick runs)")
    add("train_limit", "--train-limit", type=int, default=None, help="use the first N training images")
    add("val_limit", "--val-limit", type=int, default=None, help="use the first N validation images")
    add("progress", "--no-progress", action="store_false", help="no progress bars")
    return p


def config_from_args(args, **changes):
    """A TrainConfig from parsed flags: the recipe's settings where a flag was not given; fields
    without a flag keep their defaults or `changes`."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    given = {**given, **changes}
    return TrainConfig.from_recipe(given.pop("recipe", TrainConfig.recipe), **given)
