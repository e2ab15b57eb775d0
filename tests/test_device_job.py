"""benchmarks/device_job.py rehearsed on the CPU with a tiny budget, so the one GPU call cannot rot."""
import csv
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from capsnet_lib import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "benchmarks" / "device_job.py"


def test_the_device_job_runs_every_part_and_returns_at_most_eight_small_files(tmp_path, mnist_root):
    subprocess.run([sys.executable, str(JOB), "--pack-data", str(tmp_path / "mnist"), "--data-root", str(mnist_root)],
                   check=True, capture_output=True)
    packed = sum(f.stat().st_size for f in (tmp_path / "mnist").iterdir())
    assert packed < 12 * 2**20, f"MNIST gzip'd is {packed / 2**20:.1f} MiB; the tree travels in 64 MiB"
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(JOB), "--rehearsal", "--data", str(tmp_path / "mnist"),
                             "--out", str(out), "--budget", "600", "--epochs", "1", "--commit", "abc1234"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (out / "log.txt").read_text()
    for part in "arbcd":
        assert f"--- part {part}: done" in log, f"part {part} did not finish:\n{log[-3000:]}"
    work = re.search(r"--out (\S+)/tables/table1", log).group(1)
    assert not Path(work).exists(), f"the job left its working folder {work} (GBs of checkpoints) behind"
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size < 16 * 2**20 for f in files), [(f.name, f.stat().st_size) for f in files]
    plan = (out / "plan.txt").read_text()
    assert "b. Table 1, 5 rows x 3 seeds:" in plan and "H200" in plan
    assert "ensemble-15" in (out / "benchmark.txt").read_text()
    recipes = (out / "time_to_accuracy.txt").read_text()
    assert all(f"{name} " in recipes and f"{name}/seed2" in recipes for name in ("paper", "fast", "fast-ema"))

    with tarfile.open(out / "results.tar.gz") as tar:
        read = lambda name: list(csv.DictReader(io.TextIOWrapper(tar.extractfile(name))))
        table1, routing = read("table1/runs.csv"), read("routing/runs.csv")
        names = tar.getnames()
    assert all(f"recipes/{name}/seed{seed}/{file}" in names for name in ("paper", "fast", "fast-ema")
               for seed in range(3) for file in ("metrics.csv", "test.json"))
    assert {r["row"] for r in table1} == {"baseline", "routing1", "routing1_recon", "routing3", "routing3_recon"}
    assert sorted(int(r["seed"]) for r in table1 if r["row"] == "routing3_recon") == [0, 1, 2, 3]   # part d's seed
    assert {r["row"] for r in routing} == {"routing3_recon", "no_detach", "authors_code"}
    assert all(r["commit"] == "abc1234" for r in table1 + routing)
    assert "table1/plan_part_b.json" in names and not any(n.endswith(".pt") for n in names)

    best = load_checkpoint(out / "headline_best_fp16.pt")
    stored = torch.load(out / "headline_best_fp16.pt", weights_only=True)["state_dict"]
    assert stored["conv1.weight"].dtype == torch.float16
    assert best.config["routing_iterations"] == 3 and best.config["reconstruction"] is True
    headline = [r for r in table1 if r["row"] == "routing3_recon"]
    assert best.extra["val_accuracy"] == max(float(r["val_accuracy"]) for r in headline)   # chosen on validation


def _job(*args):
    return subprocess.run([sys.executable, str(JOB), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_device_job_refuses_a_used_or_file_out_and_missing_data_before_writing_anything(tmp_path):
    (tmp_path / "data").mkdir()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "plan.txt").write_text("an earlier job's plan\n")
    (tmp_path / "file").write_text("")
    for out, message in ((earlier, "already holds files (plan.txt)"), (tmp_path / "file", "is a file, not a folder"),
                         (tmp_path / "new", "lacks train-images-idx3-ubyte.gz")):
        result = _job("--rehearsal", "--data", tmp_path / "data", "--out", out, "--budget", "600")
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert (earlier / "plan.txt").read_text() == "an earlier job's plan\n" and not (tmp_path / "new").exists()


def test_packing_from_a_broken_mnist_root_leaves_the_earlier_pack_whole(tmp_path, mnist_root):
    pack = tmp_path / "pack"
    assert _job("--pack-data", pack, "--data-root", mnist_root).returncode == 0
    before = {p.name: p.read_bytes() for p in pack.iterdir()}
    raw = tmp_path / "broken" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    good = Path(mnist_root) / "MNIST" / "raw"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).symlink_to(good / name)
    (raw / "t10k-images-idx3-ubyte").write_bytes((good / "t10k-images-idx3-ubyte").read_bytes()[:1000])  # truncated
    result = _job("--pack-data", pack, "--data-root", tmp_path / "broken")
    assert result.returncode == 1 and "truncated" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in pack.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "pack"], "a half-built pack was left beside it"
    result = _job("--pack-data", raw / "t10k-images-idx3-ubyte", "--data-root", mnist_root)
    assert result.returncode == 1 and "is a file, not a folder" in result.stderr
