"""Everything the project needs a GPU for, as one prepared call that saves what it has as it goes.

    python benchmarks/device_job.py --pack-data .mnist           # here, once: MNIST gzip'd, 11 MB
    python benchmarks/device_job.py --data .mnist --out "$OUT" --budget 540 --commit <hash>   # there

The second command needs only a bare GPU machine with Python, PyTorch, torchvision and tqdm: the
library is imported from this checkout (no install, no network) and MNIST comes from the carried
gzip'd files. In priority order, each part writing its results as soon as it ends:
  a. CUDA benchmark rows: plain fp32, default, ensembles of 1, 5 and 15 (train_step.py);
  r. issue 18's recipes, 3 seeds each, each run tested once: the paper's (16 epochs) and the
     fast one (6) as ensembles, the fast one with an EMA of the weights alone
     (benchmarks/time_to_accuracy.py --ensemble --ema 0.999 --test);
  b. Table 1: five rows x 3 seeds (table1 --ensemble --time-budget: the CapsNet rows train as
     ensembles, the baseline CNN alone; epochs planned from measured steps, at most --epochs);
  c. the routing comparison (table1 --table routing) x 3 seeds, sharing b's headline-row runs, at
     b's epochs;
  d. with the time left, more seeds of the headline row, at b's epochs.
It states its plan (estimated seconds per part) before it starts, and stops each part at its
deadline with everything saved. OUT gets at most 7 files: plan.txt, log.txt, benchmark.txt,
time_to_accuracy.txt, results.tar.gz (every CSV and JSON, no weights) and headline_best_fp16.pt (the headline-row run
with the best validation accuracy, float16; the test set plays no part in choosing it).
--rehearsal runs the same parts on a tiny budget on any device (the test suite runs it on a CPU).
"""
import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# What the plan's estimates assume, from our H200 measurements at batch 128 (README, Speed) and the
# issue's target for ensembles; the real epochs come from steps measured on the machine itself.
H200_IMAGES_PER_SECOND = {"capsnet_alone": 26_000, "capsnet_ensemble": 100_000,
                          "baseline_cnn": 26_000 * 0.4 / 3.9}   # arithmetic ratio: 3.9 vs 0.4 GFLOP per image
TRAIN_IMAGES, SEEDS = 55_000, 3
BENCHMARK_ROWS = ["plain-fp32", "default", "ensemble-1", "ensemble-5", "ensemble-15"]
SHARES = {"r": 0.4, "b": 0.55, "c": 0.5}   # of the time left when the part starts; d takes the rest
RECIPE_EPOCHS = {"paper": 16, "fast": 6}        # fast-ema is the fast recipe with --ema
RESERVE = 25                            # seconds kept for evaluation and packing at the end
REHEARSAL = ["--train-limit", "8", "--val-limit", "8", "--test-limit", "8", "--batch-size", "4",
             "--precision", "fp32"]
RECIPES_REHEARSAL = ["--train-limit", "8", "--val-limit", "8", "--test-limit", "8", "--warmup-steps", "1",
                     "--paper-epochs", "1"]


def pack_data(data_root, folder):
    """MNIST's four raw files, checked, gzip'd into `folder` (what travels to the GPU machine). The pack
    is built in a sibling folder and swapped in only when whole, so a broken MNIST root leaves an
    earlier pack as it was."""
    from capsnet_lib.data.mnist import check_idx_pair, data_root as resolve
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"error: --pack-data {folder} is a file, not a folder")
    raw = resolve(data_root) / "MNIST" / "raw"
    missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing:
        raise SystemExit(f"error: {raw} lacks {', '.join(missing)}; point --data-root at a folder holding MNIST/raw")
    try:
        for images, labels in (RAW_FILES[0:2], RAW_FILES[2:4]):
            check_idx_pair(raw / images, raw / labels)
    except ValueError as error:
        raise SystemExit(f"error: {error}; nothing was packed") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    for name in RAW_FILES:
        with open(raw / name, "rb") as source, gzip.open(building / f"{name}.gz", "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target)
    old = folder.with_name(f".{folder.name}-old")
    if folder.exists():
        folder.rename(old)
    building.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return sum((folder / f"{name}.gz").stat().st_size for name in RAW_FILES)


def check_out_and_data(out, data):
    """Before anything is written: OUT is a new or empty folder (an earlier job's results are never
    overwritten), and DATA holds every file --pack-data writes."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        held = ", ".join(sorted(p.name for p in out.iterdir())[:4])
        raise SystemExit(f"error: --out {out} already holds files ({held}), an earlier job's results perhaps; "
                         "choose an empty or new folder")
    missing = [f"{name}.gz" for name in RAW_FILES if not (Path(data) / f"{name}.gz").is_file()]
    if missing:
        raise SystemExit(f"error: --data {data} lacks {', '.join(missing)}; make it with --pack-data {data} "
                         "on a machine with MNIST")


def unpack_data(folder, data_root):
    """The gzip'd files back into torchvision's layout, DATA_ROOT/MNIST/raw."""
    raw = Path(data_root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:                  # check_out_and_data has checked that every file is there
        with gzip.open(Path(folder) / f"{name}.gz", "rb") as f, open(raw / name, "wb") as target:
            shutil.copyfileobj(f, target)


def estimated_plan(budget, epochs):
    """Seconds per part from the H200 figures, before any GPU is used."""
    capsnet_images = 4 * SEEDS * epochs * TRAIN_IMAGES            # four CapsNet rows of Table 1
    part_b = capsnet_images / H200_IMAGES_PER_SECOND["capsnet_ensemble"] + \
        SEEDS * epochs * TRAIN_IMAGES / H200_IMAGES_PER_SECOND["baseline_cnn"]
    part_c = 2 * SEEDS * epochs * TRAIN_IMAGES / H200_IMAGES_PER_SECOND["capsnet_ensemble"]
    part_r = SEEDS * TRAIN_IMAGES * ((RECIPE_EPOCHS["paper"] + RECIPE_EPOCHS["fast"]) / H200_IMAGES_PER_SECOND[
        "capsnet_ensemble"] + RECIPE_EPOCHS["fast"] / H200_IMAGES_PER_SECOND["capsnet_alone"])
    lines = [f"plan for a {budget:g} s budget, at most {epochs} epochs per run (estimates from H200 figures: "
             f"ensembles {H200_IMAGES_PER_SECOND['capsnet_ensemble']:,} images/s, the baseline CNN "
             f"{H200_IMAGES_PER_SECOND['baseline_cnn']:,.0f}; the real epochs come from measured steps):",
             "  a. benchmark rows: about 60 s (120 s at most)",
             f"  r. issue 18's recipes, 3 x 3 runs: {part_r:.0f} s of training, plus validation and tests "
             f"(budget {SHARES['r']:.0%} of what is left)",
             f"  b. Table 1, 5 rows x {SEEDS} seeds: {part_b:.0f} s at {epochs} epochs "
             f"(budget {SHARES['b']:.0%} of what is left)",
             f"  c. routing comparison, 2 more rows x {SEEDS} seeds: {part_c:.0f} s at {epochs} epochs "
             f"(budget {SHARES['c']:.0%} of what is left)",
             "  d. more seeds of the headline row: the rest, less "
             f"{RESERVE} s for evaluation and packing"]
    return "\n".join(lines)


class Job:
    def __init__(self, args):
        self.args, self.started = args, time.time()
        self.out = Path(args.out)
        self.work = Path(tempfile.mkdtemp(prefix="capsnet-device-"))
        self.env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    "CAPSNET_DATA": str(self.work / "data"), "CAPSNET_COMMIT": args.commit}

    def left(self):
        return self.args.budget - (time.time() - self.started)

    def log(self, line):
        print(line, flush=True)
        with open(self.out / "log.txt", "a") as f:
            f.write(line + "\n")

    def run(self, name, command, timeout):
        """Run one part; the tail of its output goes to the log. Returns (succeeded, output)."""
        self.log(f"--- part {name} ({timeout:.0f} s at most): {' '.join(command)}")
        started, part_log = time.time(), self.work / f"part_{name}.log"
        with open(part_log, "w") as f:
            try:
                ok = subprocess.run([sys.executable] + command, cwd=ROOT, env=self.env, stdout=f,
                                    stderr=subprocess.STDOUT, timeout=max(timeout, 1)).returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
        output = part_log.read_text(errors="replace") + ("" if ok else "\n(failed or timed out)")
        lines = [line for line in output.splitlines() if line.strip()]
        self.log("\n".join(lines[-60:]))
        self.log(f"--- part {name}: {'done' if ok else 'FAILED'} in {time.time() - started:.0f} s")
        return ok, output

    def table(self, extra, budget, out):
        common = ["-m", "capsnet_lib.table1", "--ensemble", "--seeds", str(SEEDS), "--out", str(out),
                  "--time-budget", f"{max(budget, 1):.0f}"]
        return common + (REHEARSAL if self.args.rehearsal else []) + extra

    def pack(self):
        """results.tar.gz (CSV and JSON of every run) and the headline row's validation-best model."""
        with tarfile.open(self.out / "results.tar.gz", "w:gz") as tar:
            for path in sorted(self.work.glob("tables/**/*")):
                if path.is_file() and path.suffix in (".csv", ".json"):
                    tar.add(path, arcname=str(path.relative_to(self.work / "tables")))
        best = headline_best(self.work / "tables" / "table1" / "routing3_recon")
        if best is not None:
            from capsnet_lib import load_checkpoint, save_checkpoint
            import torch
            checkpoint = load_checkpoint(best)
            save_checkpoint(self.out / "headline_best_fp16.pt", checkpoint.model, dtype=torch.float16,
                            source=str(best.relative_to(self.work / "tables")), **checkpoint.extra)


def headline_best(row_folder):
    """The best.pt with the highest validation accuracy among a row's runs (None if there is none)."""
    best = None
    for path in sorted(Path(row_folder).glob("seed*/test.json")):
        accuracy = json.loads(path.read_text())["val_accuracy"]
        if best is None or accuracy > best[0]:
            best = (accuracy, path.parent / "best.pt")
    return best[1] if best else None


def planned_epochs(table_folder):
    plan = Path(table_folder) / "plan.json"
    return json.loads(plan.read_text())["epochs"] if plan.is_file() else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack-data", metavar="FOLDER", help="write MNIST gzip'd into FOLDER and stop")
    parser.add_argument("--data-root", default=None, help="with --pack-data: the MNIST root to read")
    parser.add_argument("--data", default=".mnist", help="the folder --pack-data wrote (default .mnist)")
    parser.add_argument("--out", default=os.environ.get("OUT", "device-out"), help="where the result files go")
    parser.add_argument("--budget", type=float, default=540, help="seconds for the whole job (default 540)")
    parser.add_argument("--epochs", type=int, default=50, help="at most this many epochs per run (default 50)")
    parser.add_argument("--commit", default="unknown", help="the library commit to record (no git over there)")
    parser.add_argument("--rehearsal", action="store_true", help="tiny data and rows, for a CPU check of the job")
    args = parser.parse_args(argv)
    if args.pack_data:
        size = pack_data(args.data_root, args.pack_data)
        print(f"MNIST gzip'd into {args.pack_data}: {size / 2**20:.1f} MiB")
        return 0
    if not (math.isfinite(args.budget) and args.budget > RESERVE + 10) or args.epochs < 1:
        raise SystemExit(f"error: --budget must be more than {RESERVE + 10} s and --epochs >= 1")
    check_out_and_data(args.out, args.data)
    job = Job(args)
    try:
        run_parts(job, args)
    finally:                    # the runs' checkpoints are GBs; what matters is already in OUT
        shutil.rmtree(job.work, ignore_errors=True)
    return 0


def run_parts(job, args):
    """Parts a, r, b, c, d in priority order, each packed into OUT as soon as it ends."""
    job.out.mkdir(parents=True, exist_ok=True)
    plan = estimated_plan(args.budget, args.epochs)
    (job.out / "plan.txt").write_text(plan + "\n")
    job.log(plan)
    unpack_data(args.data, job.work / "data")
    tables = job.work / "tables"

    bench = ["benchmarks/train_step.py", "--rows"] + BENCHMARK_ROWS + (
        ["--batch-size", "1", "--steps", "1"] if args.rehearsal else ["--steps", "20"])
    _, output = job.run("a", bench, min(120, job.left() - RESERVE))
    (job.out / "benchmark.txt").write_text(output)

    recipes = ["benchmarks/time_to_accuracy.py", "--seeds", *map(str, range(SEEDS)), "--ensemble", "--ema", "0.999",
               "--test", "--out", str(tables / "recipes")] + (
        RECIPES_REHEARSAL if args.rehearsal else ["--paper-epochs", str(RECIPE_EPOCHS["paper"])])
    _, output = job.run("r", recipes, SHARES["r"] * (job.left() - RESERVE))
    (job.out / "time_to_accuracy.txt").write_text(output)
    job.pack()

    epochs_cap = ["--epochs", str(args.epochs)]
    budget = SHARES["b"] * (job.left() - RESERVE)
    job.run("b", job.table(epochs_cap, budget, tables / "table1"), budget + RESERVE)
    epochs = planned_epochs(tables / "table1") or args.epochs
    if (tables / "table1" / "plan.json").is_file():        # part d plans again into the same folder
        shutil.copy(tables / "table1" / "plan.json", tables / "table1" / "plan_part_b.json")
    job.pack()

    (tables / "routing").mkdir(parents=True, exist_ok=True)
    shared = tables / "routing" / "routing3_recon"           # the headline row's runs, shared with Table 1
    if not shared.exists():
        shared.symlink_to(Path("..") / "table1" / "routing3_recon", target_is_directory=True)
    budget = SHARES["c"] * (job.left() - RESERVE)
    job.run("c", job.table(["--table", "routing", "--epochs", str(epochs)], budget, tables / "routing"),
            budget + RESERVE)
    job.pack()

    budget = job.left() - RESERVE
    per_run = seconds_per_run(tables / "table1", epochs)
    more = min(1 if args.rehearsal else 12, int(budget // per_run)) if per_run else 0
    if more >= 1:
        extra = ["--rows", "routing3_recon", "--epochs", str(epochs)]
        command = job.table(extra, budget, tables / "table1")
        command[command.index("--seeds") + 1] = str(SEEDS + more)
        job.run("d", command, budget + RESERVE)
        job.pack()
    else:
        job.log(f"--- part d: skipped, {budget:.0f} s left is too little for another run")
    job.log(f"all parts ended in {time.time() - job.started:.0f} s of the {args.budget:g} s budget")


def seconds_per_run(table_folder, epochs):
    """Seconds one more headline-row run is expected to take, from part b's measured plan (its
    ensemble's seconds per epoch shared among its members)."""
    plan = Path(table_folder) / "plan_part_b.json"
    if not plan.is_file():
        return None
    for job in json.loads(plan.read_text())["jobs"]:
        if any("routing3_recon" in run for run in job["runs"]):
            return epochs * job["seconds_per_epoch_measured"] / len(job["runs"])
    return None


if __name__ == "__main__":
    sys.exit(main())
