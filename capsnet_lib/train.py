"""`python -m capsnet_lib.train`: train a CapsNet on MNIST, select it on the validation split.

Writes to --out: metrics.csv (one row per epoch), best.pt (highest validation accuracy) and
last.pt (with optimizer, schedule and step, for --resume). Each epoch's shuffling and shifts
come from a generator seeded by (seed, epoch), so a resumed run continues exactly where an
uninterrupted one would have been.
"""
import argparse
import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DATA_ENV_VAR, batches, load_mnist
from .device import PRECISIONS, autocast, pick_device, resolve_precision, tune_cpu_allocator
from .evaluate import predict
from .losses import capsnet_loss
from .model import CapsNet

METRICS = ("epoch", "step", "train_loss", "val_accuracy", "lr", "epoch_seconds", "images_per_second")


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.96          # lr = lr * lr_decay ** (step / lr_decay_steps)
    lr_decay_steps: int = 2000
    routing_iterations: int = 3
    reconstruction: bool = True
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

    def check(self):
        for name in ("epochs", "batch_size", "lr_decay_steps", "routing_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "train_limit", "val_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 when given, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def make_optimizer(model, config, device):
    # The fused Adam kernel updates all parameters in one pass (CPU and CUDA).
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=fused)
    decay = lambda step: config.lr_decay ** (step / config.lr_decay_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, decay)


def train_step(model, optimizer, images, labels, precision):
    """One step: forward (3 routing iterations), margin + 0.0005 x reconstruction loss, Adam."""
    with autocast(images.device, precision):
        output = model(images, labels)
        loss = capsnet_loss(output, images, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def prepare_model(model, device):
    # Channels-last makes the bf16 convolutions markedly faster on CPU (oneDNN's native layout).
    return model.to(device=device, memory_format=torch.channels_last)


def write_metrics(history, path):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRICS)
    writer.writeheader()
    writer.writerows(history)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(buffer.getvalue())
    tmp.replace(path)


def run_training(config, on_epoch_end=None):
    """Train as `config` says; returns the metrics history (a list of dicts, one per epoch).
    `on_epoch_end(row)` is called after each epoch (the training notebook draws curves there)."""
    config.check()
    device = pick_device(config.device)
    precision = resolve_precision(config.precision, device)
    if device.type == "cpu":
        tune_cpu_allocator()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = prepare_model(CapsNet(config.routing_iterations, config.reconstruction), device)
    optimizer, schedule = make_optimizer(model, config, device)
    history, step, start_epoch, best = [], 0, 0, -1.0
    if config.resume and (out / "last.pt").is_file():
        state = load_checkpoint(out / "last.pt", model=model, map_location=device).extra
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, step, start_epoch, best = state["history"], state["step"], state["epoch"], state["best"]
    print(f"training on {device} in {precision} (asked: {config.precision}); "
          f"epochs {start_epoch + 1}..{config.epochs}, output in {out}", file=sys.stderr)

    train_x, train_y = (t[:config.train_limit].to(device) for t in load_mnist("train", config.data_root, config.download))
    val_x, val_y = (t[:config.val_limit].to(device) for t in load_mnist("val", config.data_root, config.download))
    steps_per_epoch = math.ceil(train_x.shape[0] / config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        if config.max_steps is not None and step >= config.max_steps:
            break
        generator = torch.Generator(device=device).manual_seed(config.seed * 100_003 + epoch)
        model.train()
        started, loss_sum, seen, epoch_steps = time.perf_counter(), torch.zeros((), device=device), 0, 0
        bar = tqdm(batches(train_x, train_y, config.batch_size, shuffle=True, augment=True, generator=generator),
                   total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress,
                   leave=False)
        for images, labels in bar:
            images = images.contiguous(memory_format=torch.channels_last)
            loss_sum += train_step(model, optimizer, images, labels, precision)
            schedule.step()
            step, epoch_steps, seen = step + 1, epoch_steps + 1, seen + labels.shape[0]
            if epoch_steps % 50 == 0:   # the only host sync inside the epoch
                bar.set_postfix(loss=f"{loss_sum.item() / epoch_steps:.4f}")
            if config.max_steps is not None and step >= config.max_steps:
                break
        bar.close()
        seconds = time.perf_counter() - started
        predictions = predict(model, val_x, precision=precision)
        row = {"epoch": epoch + 1, "step": step, "train_loss": round(loss_sum.item() / max(epoch_steps, 1), 6),
               "val_accuracy": round((predictions == val_y).float().mean().item(), 6),
               "lr": optimizer.param_groups[0]["lr"], "epoch_seconds": round(seconds, 3),
               "images_per_second": round(seen / seconds, 1)}
        history.append(row)
        meta = {"precision": precision, "device": str(device), "train_config": _plain(config)}
        if row["val_accuracy"] > best:
            best = row["val_accuracy"]
            save_checkpoint(out / "best.pt", model, epoch=epoch + 1, val_accuracy=best, **meta)
        save_checkpoint(out / "last.pt", model, epoch=epoch + 1, step=step, best=best, history=history,
                        optimizer=optimizer.state_dict(), schedule=schedule.state_dict(), **meta)
        write_metrics(history, out / "metrics.csv")
        print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}, val accuracy {row['val_accuracy']:.4%}, "
              f"{row['epoch_seconds']:.1f} s, {row['images_per_second']:.0f} images/s", file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(row)
    return history


def _plain(config):
    return {k: v for k, v in asdict(config).items() if v is not None}


def build_parser():
    p = argparse.ArgumentParser(prog="python -m capsnet_lib.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=d.lr_decay, help="exponential decay factor ...")
    p.add_argument("--lr-decay-steps", type=int, default=d.lr_decay_steps, help="... applied every this many steps")
    p.add_argument("--routing-iterations", type=int, default=d.routing_iterations)
    p.add_argument("--no-reconstruction", dest="reconstruction", action="store_false",
                   help="train without the decoder and its loss")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    p.add_argument("--data-root", default=None, help=f"MNIST root (default: ${DATA_ENV_VAR} or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false", help="never download MNIST")
    p.add_argument("--out", default=d.out, help="output folder for metrics.csv, best.pt, last.pt")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (quick runs)")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N training images")
    p.add_argument("--val-limit", type=int, default=None, help="use the first N validation images")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    try:
        history = run_training(config)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if history:
        best = max(history, key=lambda row: row["val_accuracy"])
        print(f"best validation accuracy {best['val_accuracy']:.4%} at epoch {best['epoch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
