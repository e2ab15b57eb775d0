"""capsnet_lib: the Capsule Network of "Dynamic Routing Between Capsules" (Sabour et al., 2017).

The model, its training and evaluation are importable from here (`import capsnet_lib as cl`).
The package, by what it holds:
- the model, as the paper builds it: capsules (squash, PrimaryCaps, routing, DigitCaps), model
  (CapsNet, the decoder, the baseline CNN), losses (margin and reconstruction); exercises (the
  notebooks' exercise checks);
- kernels/: fast paths the model chooses inside its forward (strided_conv);
- data/: MNIST (mnist), translated digits and the affine test set (translated), MultiMNIST
  (multimnist), and each dataset's loss and scoring (tasks);
- training/: config, recipes, schedules, loop, runtime (device, precision, layout), checkpoint,
  evaluation, distributed, ensemble, budget;
- experiments/: sweep, table1, robustness (Sec. 5.2);
- figures/: viz (Figures 3-5), dimensions (what each capsule dimension does), panel (the Fig. 4
  slider widget), web_export (the web page's data);
- the commands, each a parser and a main: `python -m capsnet_lib.train`, evaluate, sweep, table1,
  robustness, web_export, download (cli holds what they share).
"""
from .capsules import DigitCaps, PrimaryCaps, capsule_length, dynamic_routing, squash
from .data.mnist import batches, load_mnist, random_shift, to_float
from .losses import AUTHORS_RECONSTRUCTION_WEIGHT, RECONSTRUCTION_WEIGHT, capsnet_loss, margin_loss, reconstruction_loss
from .model import NUM_CLASSES, BaselineCNN, CapsNet, CapsNetConfig, CapsNetOutput, Decoder
from .training.checkpoint import Checkpoint, load_checkpoint, load_pretrained, save_checkpoint
from .training.config import TrainConfig
from .training.device import pick_device
from .training.evaluation import error_report, predict
from .training.loop import make_optimizer, run_training, train_step
from .training.precision import autocast, resolve_precision
from .training.runtime import Runtime, setup_runtime, tune_cpu_allocator
from .training.schedules import make_schedule

__all__ = [
    "squash", "capsule_length", "PrimaryCaps", "dynamic_routing", "DigitCaps",
    "margin_loss", "reconstruction_loss", "capsnet_loss", "RECONSTRUCTION_WEIGHT", "AUTHORS_RECONSTRUCTION_WEIGHT",
    "Decoder", "CapsNet", "CapsNetConfig", "CapsNetOutput", "BaselineCNN", "NUM_CLASSES",
    "load_mnist", "random_shift", "batches", "to_float",
    "pick_device", "resolve_precision", "autocast", "Runtime", "setup_runtime", "tune_cpu_allocator",
    "TrainConfig", "run_training", "train_step", "make_optimizer", "make_schedule",
    "predict", "error_report",
    "save_checkpoint", "load_checkpoint", "load_pretrained", "Checkpoint",
]
