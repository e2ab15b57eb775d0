"""TrainConfig: one training run's settings and their checks (TrainConfig.check, run before any work)."""
import math
from dataclasses import dataclass

from ..capsules import check_routing_iterations
from ..data.tasks import TASKS
from ..losses import RECONSTRUCTION_WEIGHT
from .recipes import check_recipe, recipe_settings
from .schedules import SCHEDULES, steps_per_epoch

MODELS = ("capsnet", "baseline_cnn")
MAX_SEED = 2**32 - 1                # torch.manual_seed's range


@dataclass
class TrainConfig:
    """One training run. The optimisation settings default to the paper's recipe; use
    TrainConfig.from_recipe("fast", ...) for another (recipes.py)."""
    recipe: str = "paper"           # the name of the recipe the settings below came from (a label)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "exponential"   # the paper's; or "cosine" or "linear" to 0 at the last step (schedules.py)
    lr_decay: float = 0.96          # exponential: lr = lr * lr_decay ** (step / lr_decay_steps)
    lr_decay_steps: int = 2000
    warmup_steps: int = 0           # a linear warm-up from ~0 to lr over this many steps
    ema: float = None               # validate and save an EMA of the weights with this decay (averaging.py)
    model: str = "capsnet"          # or "baseline_cnn", the paper's CNN of Sec. 5
    dataset: str = "mnist"          # or "translated40" (Sec. 5.2) or "multimnist" (Sec. 6); see data/tasks.py
    routing_iterations: int = 3
    reconstruction: bool = True
    reconstruction_weight: float = RECONSTRUCTION_WEIGHT   # 0.0005 (Sec. 4.1); see notebook 04 for 0.001
    routing_detach: bool = True     # gradient through the last routing iteration only (dynamic_routing)
    routing_bias: bool = False      # a learned bias on s_j, as in the authors' code
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    data_root: str = None
    out: str = "runs/capsnet"
    resume: bool = False
    max_steps: int = None           # stop after this many optimizer steps in all (quick runs)
    train_limit: int = None         # use only the first N training images (quick runs)
    val_limit: int = None           # use only the first N validation images (quick runs)
    download: bool = True
    progress: bool = True
    overwrite: bool = False         # start again in a folder that holds a run, replacing it
    deadline: float = None          # a time.time(): stop after the epoch in which it passes (--time-budget)

    @classmethod
    def from_recipe(cls, recipe, **changes):
        """A config with `recipe`'s optimisation settings, and `changes` on top."""
        return cls(recipe=recipe, **recipe_settings(recipe, **changes))

    def check(self):
        """Every option checked once, here: a bad value is refused before any work, in one line."""
        check_recipe(self.recipe)
        check_routing_iterations(self.routing_iterations)
        for name in ("epochs", "batch_size", "lr_decay_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        run_steps = self.epochs * steps_per_epoch(self)
        if self.warmup_steps and self.warmup_steps >= run_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be shorter than the run ({run_steps} steps); "
                             "pass a smaller --warmup-steps")
        for name in ("max_steps", "train_limit", "val_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 when given, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.lr_decay) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay must be in (0, 1] (1 keeps the lr constant), got {self.lr_decay}")
        if self.ema is not None and not (math.isfinite(self.ema) and 0 < self.ema < 1):
            raise ValueError(f"ema must be a decay in (0, 1), such as 0.999, when given; got {self.ema}")
        if not (math.isfinite(self.reconstruction_weight) and self.reconstruction_weight >= 0):
            raise ValueError(f"reconstruction_weight must be a finite number >= 0, got {self.reconstruction_weight}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.dataset not in TASKS:
            raise ValueError(f"dataset must be one of {', '.join(TASKS)}, got {self.dataset!r}")
        if self.model == "baseline_cnn" and self.dataset == "multimnist":
            raise ValueError("the baseline CNN names one digit per image; dataset multimnist trains a capsnet")
