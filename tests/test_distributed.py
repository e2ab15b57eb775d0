"""Data-parallel training under torchrun (2 CPU processes, gloo) gives the single-process result."""
import subprocess
import sys

import pytest

from capsnet_lib import load_checkpoint
from capsnet_lib.training.config import TrainConfig
from capsnet_lib.training.loop import check_shardable, run_training

SETTINGS = ["--epochs", "2", "--batch-size", "32", "--train-limit", "199", "--val-limit", "64",
            "--device", "cpu", "--precision", "fp32", "--no-download", "--no-progress"]


def test_two_processes_train_the_model_one_process_trains(tmp_path, mnist_root):
    # 199 images: 6 batches of 32 and a last one of 7, split 4 + 3: the loss weights matter.
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "capsnet_lib.train", "--out", str(tmp_path / "ddp")] + SETTINGS,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 processes" in result.stderr
    run_training(TrainConfig(epochs=2, batch_size=32, train_limit=199, val_limit=64, device="cpu", precision="fp32",
                             download=False, progress=False, out=str(tmp_path / "one")))
    ddp, one = (load_checkpoint(tmp_path / name / "last.pt") for name in ("ddp", "one"))
    assert ddp.extra["step"] == one.extra["step"] == 14
    for name, weight in one.model.state_dict().items():
        gap = (ddp.model.state_dict()[name] - weight).abs().max().item()
        assert gap < 1e-4, f"{name}: the 2-process run drifted {gap:.1e} from the 1-process run"
    losses = [[row["train_loss"] for row in c.extra["history"]] for c in (ddp, one)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_a_last_batch_smaller_than_the_process_count_is_refused():
    with pytest.raises(ValueError, match="fewer than the 4 processes"):
        check_shardable(num_images=130, batch_size=32, world=4)
    check_shardable(num_images=132, batch_size=32, world=4)
