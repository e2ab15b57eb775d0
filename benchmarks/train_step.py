"""Training-step and inference speed of CapsNet, batch 128, on the current device.

    python benchmarks/train_step.py [--device auto] [--steps 10] [--with-compile] [--with-epoch]

Each row runs in its own Python process (allocator settings and thread pools do not leak
between rows) and is compared, in the same run (machines are noisy, ratios hold), with two
references: the plain float32 step of benchmarks/plain_capsnet.py ("x plain"), and the obvious
recipe ("x best", rows plain-best and infer-plain-best): the same plain model with the switches
anyone would turn on (bf16 autocast where the CPU has it, channels-last, fused Adam, the allocator
settings). GFLOP/s counts the model's
arithmetic (1.2 GFLOP per image per training step, 0.4 forward) and is set against the
matmul peaks measured at the start of the run. The sweep rows run 1, 3 and 5 independent
default trainings at once, each in its own thread as capsnet_lib.sweep runs them, and report
their aggregate. --with-epoch runs the training CLI for 3 epochs on MNIST and reports its own
seconds per epoch, validation included.
"""
import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FORWARD_GFLOP = (20 * 20 * 256 * 81 + 6 * 6 * 256 * 256 * 81 + 1152 * 10 * 16 * 8
                 + 160 * 512 + 512 * 1024 + 1024 * 784) * 2 / 1e9          # 0.405 per image
TRAIN_GFLOP = 3 * FORWARD_GFLOP                                              # forward + backward
CONV_GFLOP = 3 * 6 * 6 * 256 * 256 * 81 * 2 / 1e9                            # PrimaryCaps conv, fwd+bwd
ROUTING_GFLOP = 3 * (1152 * 10 * 16 * 8 + 5 * 1152 * 10 * 16) * 2 / 1e9       # Eq. 2 + 3 iterations, fwd+bwd

# name: (what it measures, settings); "default" is exactly what `python -m capsnet_lib.train` runs.
VARIANTS = {
    "plain-fp32":       ("plain float32 step (benchmarks/plain_capsnet.py)", dict(plain=True)),
    "plain-best":       ("plain model + the obvious switches (auto precision, channels-last, fused Adam, allocator)",
                         dict(plain=True, best=True)),
    "lib-fp32":         ("capsnet_lib, fp32, contiguous, plain Adam", dict(precision="fp32")),
    "lib-fp32-fast":    ("capsnet_lib, fp32 + channels-last + fused Adam + allocator",
                         dict(precision="fp32", channels_last=True, fused=True, allocator=True)),
    "lib-bf16":         ("capsnet_lib, bf16 autocast", dict(precision="bf16")),
    "lib-bf16-cl":      ("  + channels-last", dict(precision="bf16", channels_last=True)),
    "lib-bf16-cl-fused": ("  + fused Adam", dict(precision="bf16", channels_last=True, fused=True)),
    "default":          ("  + allocator = the default (precision auto)", dict(default=True)),
    "sweep-1":          ("1 run in a thread, as capsnet_lib.sweep runs it", dict(default=True, runs=1)),
    "sweep-3":          ("3 concurrent runs (threads), aggregate", dict(default=True, runs=3)),
    "sweep-5":          ("5 concurrent runs (threads), aggregate", dict(default=True, runs=5)),
    "default-compile":  ("default + torch.compile", dict(default=True, compile=True)),
    "conv-bound":       ("PrimaryCaps conv alone, fwd+bwd, as the library runs it", dict(conv_only=True)),
    "conv-bound-native": ("PrimaryCaps conv alone, fwd+bwd, PyTorch's nn.Conv2d", dict(conv_only=True, native=True)),
    "conv-bound-polyphase": ("PrimaryCaps conv alone, fwd+bwd, polyphase backward forced",
                             dict(conv_only=True, polyphase=True)),
    "routing-bound":    ("DigitCaps alone (Eq. 2 + routing), fwd+bwd, as the library runs it", dict(digit_caps_only=True)),
    "routing-bound-einsum": ("DigitCaps alone, fwd+bwd, Eq. 2 by its readable einsum", dict(digit_caps_only=True,
                                                                                        einsum=True)),
    "ensemble-1":       ("ensemble.py: 1 member, one vmapped step (for GPUs)", dict(default=True, ensemble=1)),
    "ensemble-5":       ("ensemble.py: 5 members as one step, aggregate", dict(default=True, ensemble=5)),
    "ensemble-15":      ("ensemble.py: 15 members as one step, aggregate", dict(default=True, ensemble=15)),
    "infer-plain":      ("inference, plain fp32 forward (batch 500)", dict(inference=True, plain=True)),
    "infer-plain-best": ("inference, plain model + auto precision + channels-last (batch 500)",
                         dict(inference=True, plain=True, best=True)),
    "infer-default":    ("inference, capsnet_lib default (batch 500)", dict(inference=True, default=True)),
}


def timed(fn, steps, device, warmup=3):
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def matmul_peak(dtype, device, n=2048):
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, 10 if device.type == "cpu" else 100, device)
    return 2 * n ** 3 / seconds / 1e9


def run_variant(name, device, steps, batch_size=128):
    """Measure one row in this process; returns images/s and the precision used."""
    from capsnet_lib import CapsNet, TrainConfig, make_optimizer, setup_runtime, train_step, tune_cpu_allocator
    from capsnet_lib.training.runtime import fused_adam
    from plain_capsnet import PlainCapsNet, plain_loss

    s = VARIANTS[name][1]
    torch.manual_seed(0)
    batch = 500 if s.get("inference") else batch_size
    images = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    asked = s.get("precision", "auto" if s.get("default") or s.get("conv_only") or s.get("digit_caps_only")
                  or s.get("best") else "fp32")
    runtime = setup_runtime(device, asked)     # what the training command sets up, for this row's precision
    precision = runtime.precision
    if (s.get("default") or s.get("allocator") or s.get("best")) and device.type == "cpu":
        tune_cpu_allocator()
    if s.get("plain"):
        # plain-best: the same plain model with the switches anyone would turn on, set up by hand
        best = bool(s.get("best"))
        model = PlainCapsNet().to(device)
        if best:          # its convolutions in channels-last (its 5-D W has no such layout)
            for conv in (model.conv1, model.primary):
                conv.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=best and fused_adam(device))
        precision = precision if best else "fp32"
        if best:
            images = images.contiguous(memory_format=torch.channels_last)
        autocast = lambda: (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                            else contextlib.nullcontext())

        def step():
            with autocast():
                lengths, recon = model(images, labels)
                loss = plain_loss(lengths, recon, images, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        @torch.no_grad()
        def infer():
            with autocast():
                model(images)
        run = infer if s.get("inference") else step
    elif s.get("conv_only"):
        primary_caps = runtime.move_model(CapsNet()).primary_caps
        if s.get("polyphase"):
            primary_caps.conv.polyphase = True
        # native: nn.Conv2d's own forward and backward, bypassing the library's CPU polyphase path
        conv = (lambda x: torch.nn.Conv2d.forward(primary_caps.conv, x)) if s.get("native") else primary_caps.conv
        x = runtime.images(torch.randn(batch, 256, 20, 20)).requires_grad_(True)

        def run():
            with runtime.autocast():
                out = conv(x)
            out.float().sum().backward()
    elif s.get("digit_caps_only"):
        from capsnet_lib import dynamic_routing
        layer = runtime.move_model(CapsNet()).digit_caps
        predictions = layer.predictions_einsum if s.get("einsum") else layer.predictions
        u = torch.randn(batch, 1152, 8, device=device).requires_grad_(True)

        def run():
            with runtime.autocast():
                v, _ = dynamic_routing(predictions(u), layer.routing_iterations, layer.detach)
            v.float().sum().backward()
    elif s.get("runs"):
        return concurrent_runs(s["runs"], device, precision, steps)
    elif s.get("ensemble"):
        from capsnet_lib.training.ensemble import build_ensemble, ensemble_step
        k = s["ensemble"]
        configs = [TrainConfig(seed=seed, out=f"member{seed}", device=str(device), precision=precision)
                   for seed in range(k)]
        ensemble = build_ensemble(configs, device)
        stacked_images, stacked_labels = images.expand(k, *images.shape).contiguous(), labels.expand(k, batch)
        run = lambda: ensemble_step(ensemble, stacked_images, stacked_labels, runtime)
        batch *= k                                  # images/s in aggregate over the members
    else:
        fast = s.get("default") or s.get("channels_last")
        model = runtime.move_model(CapsNet()) if fast else CapsNet().to(device)
        if fast:
            images = runtime.images(images)
        if s.get("default"):
            optimizer = make_optimizer(model, TrainConfig())
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=bool(s.get("fused")))
        step_fn = torch.compile(train_step) if s.get("compile") else train_step
        if s.get("inference"):
            model.eval()

            @torch.no_grad()
            def run():
                with runtime.autocast():
                    model(images)
        else:
            run = lambda: step_fn(model, optimizer, images, labels, precision)
    compile_seconds = None
    if s.get("compile"):
        start = time.perf_counter()
        run()
        compile_seconds = time.perf_counter() - start
    seconds = timed(run, steps, device)
    return {"images_per_second": batch / seconds, "precision": precision, "compile_seconds": compile_seconds}


def concurrent_runs(runs, device, precision, steps):
    """Aggregate images/s of `runs` independent default trainings, each in its own thread (as
    capsnet_lib.sweep runs them), on random batches of 128."""
    import threading

    from capsnet_lib import CapsNet, Runtime, TrainConfig, make_optimizer, train_step

    runtime = Runtime(device, precision)

    def one_run(seed, barrier, times):
        torch.manual_seed(seed)
        model = runtime.move_model(CapsNet())
        optimizer = make_optimizer(model, TrainConfig())
        images = runtime.images(torch.rand(128, 1, 28, 28))
        labels = torch.randint(0, 10, (128,), device=device)
        step = lambda: train_step(model, optimizer, images, labels, precision)
        barrier.wait()                              # all runs built before any is timed
        times.append(timed(step, steps, device))

    barrier, times = threading.Barrier(runs), []
    threads = [threading.Thread(target=one_run, args=(seed, barrier, times)) for seed in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(times) != runs:
        raise RuntimeError(f"only {len(times)} of {runs} concurrent runs finished")
    return {"images_per_second": sum(128 / seconds for seconds in times), "precision": precision,
            "compile_seconds": None}


def epoch_seconds_from_cli(device, data_root):
    """Seconds per 55,000-image epoch, validation included, as the training CLI measures them:
    the mean over epochs 2-3 of a 3-epoch run (epoch 1 includes the warm-up)."""
    import csv
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "capsnet_lib.train", "--epochs", "3", "--out", out, "--device", str(device),
                   "--no-progress", "--no-download"] + (["--data-root", data_root] if data_root else [])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
        rows = list(csv.DictReader(open(Path(out) / "metrics.csv")))[1:]
    seconds = [float(r["epoch_seconds"]) + float(r["val_seconds"]) for r in rows]
    return {"seconds": sum(seconds) / len(seconds), "val_accuracy": float(rows[-1]["val_accuracy"])}


def in_subprocess(args_list):
    result = subprocess.run([sys.executable, __file__] + args_list, capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    from capsnet_lib import pick_device

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 10 on CPU, 50 on GPU)")
    parser.add_argument("--with-compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--with-epoch", action="store_true", help="also time 3 epochs of the training CLI on MNIST")
    parser.add_argument("--data-root", default=None, help="MNIST root for --with-epoch")
    parser.add_argument("--rows", nargs="+", choices=list(VARIANTS), default=None,
                        help="only these rows (default: all; the ensemble rows only on a GPU)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch per model (default 128)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--peaks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("steps", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    device = pick_device(args.device)
    steps = args.steps or (10 if device.type == "cpu" else 50)
    if args.peaks:
        from capsnet_lib.training.precision import cpu_has_fast_bf16
        # Without bf16 hardware a CPU emulates bf16 matmuls, minutes for this size: no peak to state.
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        print(json.dumps({"fp32": matmul_peak(torch.float32, device),
                          "bf16": matmul_peak(torch.bfloat16, device) if bf16 else float("nan")}))
        return
    if args.variant:
        print(json.dumps(run_variant(args.variant, device, steps, args.batch_size)))
        return

    common = ["--device", str(device), "--steps", str(steps), "--batch-size", str(args.batch_size)]
    peaks = in_subprocess(common + ["--peaks"])
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, batch {args.batch_size} "
          f"(inference 500), {steps} timed steps per row")
    print(f"measured matmul peaks: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s\n")
    rows = {}
    for name in args.rows or VARIANTS:
        if args.rows is None and ((name == "default-compile" and not args.with_compile)
                                  or (name.startswith("ensemble") and device.type != "cuda")):
            continue
        if VARIANTS[name][1].get("precision") == "bf16" and not peaks["bf16"] > 0:
            rows[name] = {"error": "skipped: this CPU has no bf16 hardware (emulated, it takes minutes per step)"}
            continue
        rows[name] = in_subprocess(common + ["--variant", name])
    speed = lambda name: rows.get(name, {}).get("images_per_second", float("nan"))
    print(f"{'variant':<19} {'what':<58} {'prec':<5} {'images/s':>9} {'x plain':>8} {'x best':>7} {'GFLOP/s':>8} "
          f"{'% peak':>7}")
    for name, row in rows.items():
        what = VARIANTS[name][0][:58]
        if "error" in row:
            print(f"{name:<19} {what:<58} {'' if row['error'].startswith('skipped') else 'failed: '}{row['error']}")
            continue
        ips = row["images_per_second"]
        inference = name.startswith("infer")
        plain = speed("infer-plain" if inference else "plain-fp32")
        best = speed("infer-plain-best" if inference else "plain-best")    # the obvious recipe
        gflop = (CONV_GFLOP if name.startswith("conv-bound") else ROUTING_GFLOP if name.startswith("routing-bound")
                 else FORWARD_GFLOP if inference else TRAIN_GFLOP)
        achieved = ips * gflop
        note = f"  (compiled in {row['compile_seconds']:.0f} s)" if row.get("compile_seconds") else ""
        print(f"{name:<19} {what:<58} {row['precision']:<5} {ips:9.1f} {ips / plain:7.2f}x {ips / best:6.2f}x "
              f"{achieved:8.0f} {100 * achieved / peaks[row['precision']]:6.0f}%{note}")
    if not args.with_compile:
        print(f"{'default-compile':<19} not run: add --with-compile (compiling takes tens of seconds)")
    print()
    for name in ("conv-bound", "conv-bound-native", "conv-bound-polyphase"):
        if name not in rows:
            continue
        print(f"default step reaches {100 * speed('default') / speed(name):.0f}% of {name} "
              f"({speed('default'):.0f} of {speed(name):.0f} images/s)")
    if args.with_epoch:
        epoch = epoch_seconds_from_cli(device, args.data_root)
        print("training CLI: " + (f"failed: {epoch['error']}" if "error" in epoch else
              f"{epoch['seconds']:.2f} s per 55,000-image epoch, validation included "
              f"(mean of epochs 2-3; validation accuracy {epoch['val_accuracy']:.2%} after 3 epochs)"))
    for name in (n for n in rows if n.startswith("ensemble")):
        print(f"{name}: {speed(name):,.0f} images/s in aggregate, {speed(name) / speed('default'):.2f}x one default run")
    if "infer-default" in rows:
        print(f"inference: capsnet_lib {speed('infer-default') / speed('infer-plain-best'):.2f}x the obvious recipe "
              f"(infer-plain-best), {speed('infer-default') / speed('infer-plain'):.2f}x plain fp32")
    if "plain-best" in rows:
        print(f"train: capsnet_lib {speed('default') / speed('plain-best'):.2f}x the obvious recipe (plain-best), "
              f"{speed('default') / speed('plain-fp32'):.2f}x plain fp32")
    else:
        print(f"train: capsnet_lib {speed('default') / speed('plain-fp32'):.2f}x plain fp32")


if __name__ == "__main__":
    main()
