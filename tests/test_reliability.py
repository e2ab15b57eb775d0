"""Nothing a user trained is lost, and nothing wrong passes silently (each case failed before)."""
import csv
import os
import subprocess
import sys

import pytest
import torch

import capsnet_lib.training.loop as loop
from capsnet_lib import load_checkpoint, load_pretrained, margin_loss, reconstruction_loss
from capsnet_lib.data.mnist import load_mnist
from capsnet_lib.train import main as train_main
from capsnet_lib.training.loop import run_training
from test_train import assert_same_weights, tiny, weights


def one_epoch(out, **changes):
    return tiny(out, **{"epochs": 1, "train_limit": 64, **changes})


# --- a training folder belongs to one run -------------------------------------------------------

def test_a_new_run_refuses_a_folder_that_holds_a_run(tmp_path, mnist_root):
    run_training(one_epoch(tmp_path))
    before = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a training run .* --resume .* --overwrite"):
        run_training(one_epoch(tmp_path, seed=5))
    assert (tmp_path / "best.pt").read_bytes() == before, "best.pt was overwritten"


def test_overwrite_starts_again_and_says_what_it_replaces(tmp_path, mnist_root, capsys):
    run_training(one_epoch(tmp_path))
    run_training(one_epoch(tmp_path, seed=5, overwrite=True))
    assert "--overwrite: replacing last.pt, best.pt, metrics.csv" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "last.pt").extra["train_config"]["seed"] == 5


def test_resume_without_last_pt_refuses_instead_of_starting_over(tmp_path, mnist_root):
    run_training(one_epoch(tmp_path))
    (tmp_path / "last.pt").unlink()
    with pytest.raises(ValueError, match="no last.pt to continue from"):
        run_training(one_epoch(tmp_path, resume=True, epochs=2))


def test_resume_refuses_settings_that_change_the_run_and_allows_more_epochs(tmp_path, mnist_root):
    run_training(one_epoch(tmp_path))
    with pytest.raises(ValueError, match=r"lr was 0.001, now 0.01; seed was 0, now 3"):
        run_training(one_epoch(tmp_path, resume=True, epochs=2, lr=0.01, seed=3))
    with pytest.raises(ValueError, match="batch_size was 32, now 16"):
        run_training(one_epoch(tmp_path, resume=True, epochs=2, batch_size=16))
    history = run_training(one_epoch(tmp_path, resume=True, epochs=2))
    assert [row["epoch"] for row in history] == [1, 2]


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(tmp_path, mnist_root):
    (tmp_path / ".lock").write_text(str(os.getppid()))           # a live process that is not us
    with pytest.raises(ValueError, match=f"another run \\(process {os.getppid()}\\) is training into"):
        run_training(one_epoch(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(str(dead.pid))
    run_training(one_epoch(tmp_path))
    assert not (tmp_path / ".lock").exists(), "the lock outlived the run"


def test_stale_temp_files_of_a_killed_write_are_removed(tmp_path, mnist_root):
    tmp_path.joinpath(".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    run_training(one_epoch(tmp_path))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# --- option values are checked before any work -------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    (dict(lr=float("inf")), "lr must be a finite number > 0"),
    (dict(lr=float("nan")), "lr must be a finite number > 0"),
    (dict(lr_decay=0.0), r"lr_decay must be in \(0, 1\]"),
    (dict(lr_decay=-2.0), r"lr_decay must be in \(0, 1\]"),
    (dict(seed=2**40), "seed must be in 0..4294967295"),
    (dict(seed=-1), "seed must be in 0..4294967295"),
    (dict(resume=True, overwrite=True), "exclude each other"),
])
def test_bad_option_values_are_refused_up_front(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        run_training(one_epoch(tmp_path / "run", **changes))
    assert not (tmp_path / "run" / "last.pt").exists()


def test_an_out_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert train_main(["--out", str(tmp_path / "file"), "--no-download"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_diverging_run_stops_before_saving_anything_non_finite(tmp_path, mnist_root, monkeypatch):
    run_training(one_epoch(tmp_path))
    real_step, calls = loop.train_step, []

    def nan_in_epoch_two(*args, **kwargs):
        calls.append(1)
        loss = real_step(*args, **kwargs)
        return loss * float("nan") if len(calls) == 2 else loss
    monkeypatch.setattr(loop, "train_step", nan_in_epoch_two)
    with pytest.raises(ValueError, match="training diverged: the loss became inf or nan by step 4"):
        run_training(one_epoch(tmp_path, resume=True, epochs=2))
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved.extra["epoch"] == 1
    assert all(torch.isfinite(w).all() for w in saved.model.state_dict().values())


# --- inputs and losses ---------------------------------------------------------------------------

def test_losses_refuse_mismatched_shapes_and_empty_batches():
    with pytest.raises(ValueError, match="to match lengths"):
        margin_loss(torch.rand(1, 10), torch.tensor([1, 2, 3, 4]))     # used to broadcast to 4 rows
    with pytest.raises(ValueError, match="to match lengths"):
        margin_loss(torch.rand(2, 10), torch.tensor([[1], [2]]))
    with pytest.raises(ValueError, match="B >= 1"):
        margin_loss(torch.rand(0, 10), torch.zeros(0, dtype=torch.long))  # used to give nan
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(torch.rand(2, 1, 28, 28), torch.rand(1, 1, 28, 28))
    assert margin_loss(torch.rand(2, 10), torch.tensor([1, 2], dtype=torch.uint8)).isfinite()


def test_any_float_dtype_of_images_and_any_integer_labels_are_accepted(test_digits):
    images, labels = test_digits
    model = load_pretrained()
    with torch.no_grad():
        reference = model(images[:8], labels[:8])
        for dtype in (torch.float64, torch.float16, torch.bfloat16):
            out = model(images[:8].to(dtype), labels[:8].to(torch.int32))
            assert torch.equal(out.lengths.argmax(1), reference.lengths.argmax(1)), f"{dtype} images"
        assert model(images[:8], labels[:8].to(torch.uint8)).reconstructions.shape == (8, 1, 28, 28)


def test_a_nan_pixel_is_refused_instead_of_predicting_class_0(test_digits):
    images = test_digits[0][:4].clone()
    images[2, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match=r"inf or nan pixels \(images \[2\]\)"):
        load_pretrained()(images)


# --- MNIST files are validated when read ---------------------------------------------------------

def write_idx(path, kind, count, declared=None, magic=None, fill=0):
    header = (magic or (2051 if kind == "images" else 2049)).to_bytes(4, "big")
    header += (declared if declared is not None else count).to_bytes(4, "big")
    if kind == "images":
        header += (28).to_bytes(4, "big") * 2
    path.write_bytes(header + bytes([fill]) * (count * (784 if kind == "images" else 1)))


@pytest.fixture
def small_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", "images", 5010)
    write_idx(raw / "train-labels-idx1-ubyte", "labels", 5010, fill=3)
    write_idx(raw / "t10k-images-idx3-ubyte", "images", 20)
    write_idx(raw / "t10k-labels-idx1-ubyte", "labels", 20, fill=7)
    return tmp_path


def test_valid_small_mnist_files_load(small_mnist):
    images, labels = load_mnist("train", small_mnist, download=False)
    assert images.shape == (10, 28, 28) and (labels == 3).all()


@pytest.mark.parametrize("file, damage, message", [
    ("train-images-idx3-ubyte", lambda p: p.write_bytes(p.read_bytes()[:100_000]), "truncated or corrupt"),
    ("train-images-idx3-ubyte", lambda p: p.write_bytes(b""), "too short for an MNIST images file"),
    ("train-labels-idx1-ubyte", lambda p: write_idx(p, "labels", 5010, magic=1234), "magic number 1234"),
    ("train-labels-idx1-ubyte", lambda p: write_idx(p, "labels", 5009), "images and labels would be misaligned"),
    ("train-labels-idx1-ubyte", lambda p: write_idx(p, "labels", 5010, declared=4000), "announces 4000 labels"),
    ("train-labels-idx1-ubyte", lambda p: write_idx(p, "labels", 5010, fill=12), "labels outside 0..9"),
])
def test_damaged_mnist_files_get_an_error_naming_the_file(small_mnist, file, damage, message):
    damage(small_mnist / "MNIST" / "raw" / file)
    with pytest.raises(ValueError, match=message) as error:
        load_mnist("train", small_mnist, download=False)
    assert file in str(error.value)


# --- checkpoints: verified, validated, and a full disk says so -------------------------------------

def test_a_checkpoint_with_overwritten_weight_bytes_fails_its_checksum(tmp_path, seeded):
    from capsnet_lib import CapsNet, save_checkpoint
    model = CapsNet()
    save_checkpoint(tmp_path / "m.pt", model)
    data = bytearray((tmp_path / "m.pt").read_bytes())
    at = bytes(data).find(model.digit_caps.W.detach()[0].numpy().tobytes())
    assert at > 0
    data[at:at + 256] = bytes(256)
    (tmp_path / "m.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt: checksum mismatch"):
        load_checkpoint(tmp_path / "m.pt")


@pytest.mark.parametrize("payload_changes, message", [
    (dict(state_dict=None), "is incomplete"),
    (dict(config=None), "is incomplete"),
    (dict(config={"routing_iterations": 200000, "reconstruction": False}), r"unusable model config .*routing_iterations must be an integer in 1..100, got 200000"),
])
def test_malformed_checkpoint_payloads_get_one_line_errors(tmp_path, payload_changes, message):
    from capsnet_lib.training.checkpoint import FORMAT, VERSION
    payload = {"format": FORMAT, "version": VERSION, "config": {"routing_iterations": 3, "reconstruction": False},
               "state_dict": {}, "extra": {}}
    payload.update({k: v for k, v in payload_changes.items()})
    payload = {k: v for k, v in payload.items() if v is not None}
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / "m.pt")


def test_a_state_dict_of_another_architecture_names_the_keys(tmp_path, seeded):
    from capsnet_lib import CapsNet
    from capsnet_lib.training.checkpoint import FORMAT, VERSION
    state = CapsNet(reconstruction=False).state_dict()
    state["extra_layer.weight"] = torch.zeros(3)
    del state["conv1.bias"]
    torch.save({"format": FORMAT, "version": VERSION, "config": {"routing_iterations": 3, "reconstruction": False},
                "state_dict": state, "extra": {}}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="missing conv1.bias; unexpected extra_layer.weight"):
        load_checkpoint(tmp_path / "m.pt")


def test_resuming_from_a_best_pt_says_what_it_lacks(tmp_path, mnist_root):
    run_training(one_epoch(tmp_path))
    (tmp_path / "best.pt").replace(tmp_path / "last.pt")
    with pytest.raises(ValueError, match="cannot be resumed: it lacks .*optimizer"):
        run_training(one_epoch(tmp_path, resume=True, epochs=2))


def test_resume_rebuilds_a_metrics_csv_left_a_row_short(tmp_path, mnist_root):
    run_training(one_epoch(tmp_path, epochs=2))
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    (tmp_path / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")       # killed before the last row
    run_training(one_epoch(tmp_path, epochs=3, resume=True))
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_a_full_disk_while_saving_gets_one_line_and_keeps_the_old_file(tmp_path, seeded, monkeypatch):
    import capsnet_lib.training.checkpoint as checkpoint
    from capsnet_lib import CapsNet, save_checkpoint
    save_checkpoint(tmp_path / "last.pt", CapsNet(reconstruction=False))
    before = (tmp_path / "last.pt").read_bytes()

    def full_disk(obj, f):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1234 vs 1000")
    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match="the disk is full: could not save .*the previous last.pt is intact"):
        save_checkpoint(tmp_path / "last.pt", CapsNet(reconstruction=False))
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_pretrained_model_works_under_a_float64_default_dtype(test_digits):
    images, labels = test_digits
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = load_pretrained()
        assert model.conv1.weight.dtype == torch.float32
        with torch.no_grad():
            accuracy = (model(images[:50]).lengths.argmax(1) == labels[:50]).float().mean()
    finally:
        torch.set_default_dtype(previous)
    assert accuracy > 0.95


def test_unknown_devices_and_a_zero_batch_are_refused_in_one_line(tmp_path, capsys):
    from capsnet_lib import pick_device
    from capsnet_lib.training.checkpoint import pretrained_path
    from capsnet_lib.evaluate import main as evaluate_main
    with pytest.raises(ValueError, match="unknown device 'meta'"):
        pick_device("meta")
    assert evaluate_main([str(pretrained_path()), "--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    assert evaluate_main([str(pretrained_path()), "--limit", "-5"]) == 2
    assert "--limit must be >= 1, got -5" in capsys.readouterr().err


# --- a resumed run is the uninterrupted run, wherever it stopped ------------------------------------

def test_a_run_stopped_by_max_steps_mid_epoch_resumes_bit_identically(tmp_path, mnist_root):
    run_training(tiny(tmp_path / "whole"))                                   # 2 epochs of 8 steps
    stopped = run_training(tiny(tmp_path / "split", max_steps=11))           # 3 steps into epoch 2
    assert load_checkpoint(tmp_path / "split" / "last.pt").extra["epoch"] == 1, "a cut epoch counted as done"
    assert [row["epoch"] for row in stopped] == [1, 2]
    resumed = run_training(tiny(tmp_path / "split", resume=True))
    assert [row["epoch"] for row in resumed] == [1, 2]
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "last.pt")
    assert split.extra["step"] == whole.extra["step"] == 16
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(weight, split.model.state_dict()[name]), f"{name} differs after the mid-epoch resume"
    assert [r["train_loss"] for r in split.extra["history"]] == [r["train_loss"] for r in whole.extra["history"]]


def test_a_cut_epoch_never_leaves_best_pt_as_a_model_no_metrics_row_describes(tmp_path, mnist_root, monkeypatch):
    """Validation scores chosen so the cut epoch's row (0.9) beats both finished epochs (0.5, 0.7):
    it must not stay best.pt once the resume replaces that row with its finished epoch's."""
    real_validate = loop._validate
    def scored(scores):
        return lambda *args: {**real_validate(*args), "val_accuracy": next(scores)}
    monkeypatch.setattr(loop, "_validate", scored(iter([0.5, 0.7])))
    small = dict(epochs=2, batch_size=16, train_limit=64, val_limit=16)      # 4 steps an epoch
    run_training(tiny(tmp_path / "whole", **small))
    monkeypatch.setattr(loop, "_validate", scored(iter([0.5, 0.9, 0.7])))
    run_training(tiny(tmp_path / "split", max_steps=6, **small))          # epoch 1, then 2 steps of epoch 2
    run_training(tiny(tmp_path / "split", resume=True, **small))
    best = load_checkpoint(tmp_path / "split" / "best.pt")
    rows = list(csv.DictReader(open(tmp_path / "split" / "metrics.csv")))
    assert [float(r["val_accuracy"]) for r in rows] == [0.5, 0.7]
    assert (best.extra["epoch"], best.extra["val_accuracy"]) == (2, 0.7)
    assert_same_weights(weights(tmp_path / "whole" / "best.pt"), weights(tmp_path / "split" / "best.pt"))


def test_a_run_cut_inside_its_first_epoch_still_has_a_best_pt(tmp_path, mnist_root):
    run_training(tiny(tmp_path, epochs=1, max_steps=2, batch_size=16, train_limit=64, val_limit=16))
    assert load_checkpoint(tmp_path / "best.pt").extra["epoch"] == 1


def test_a_training_process_killed_at_random_moments_resumes_to_the_same_weights(tmp_path, mnist_root):
    """SIGKILL a real training subprocess several times (in steps, validation or checkpoint
    writes, wherever the moment falls), restart it with --resume each time, and compare.

    Each kill waits until the process has saved at least one more epoch, then a random fraction
    of an epoch more: the kills land at random moments on any machine, fast or slow, and every
    restart makes progress."""
    import random
    import time
    epochs = 5
    settings = ["--epochs", str(epochs), "--batch-size", "32", "--train-limit", "128", "--val-limit", "32",
                "--device", "cpu", "--precision", "fp32", "--no-download", "--no-progress", "--resume"]
    command = [sys.executable, "-m", "capsnet_lib.train"] + settings
    subprocess.run(command + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600)
    metrics = tmp_path / "killed" / "metrics.csv"
    saved_epochs = lambda: metrics.read_text().count("\n") - 1 if metrics.is_file() else 0
    rng, kills = random.Random(0), 0
    for attempt in range(epochs + 1):
        before = saved_epochs()
        process = subprocess.Popen(command + ["--out", str(tmp_path / "killed")], stderr=subprocess.PIPE)
        if kills < 3:
            deadline = time.monotonic() + 300
            while saved_epochs() <= before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))          # somewhere in the next epoch: a step, validation, a write
            if process.poll() is None:
                process.kill()
                kills += 1
        _, err = process.communicate(timeout=600)
        if process.returncode == 0:
            break
        assert process.returncode == -9, err.decode()[-2000:]
    assert process.returncode == 0 and kills >= 2, f"only {kills} kills landed"
    whole, killed = (load_checkpoint(tmp_path / name / "last.pt") for name in ("whole", "killed"))
    assert killed.extra["epoch"] == epochs
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(weight, killed.model.state_dict()[name]), f"{name} differs after {kills} kills"
    assert saved_epochs() == epochs
    assert not list((tmp_path / "killed").glob(".*.tmp")) and not (tmp_path / "killed" / ".lock").exists()
