"""Training and evaluating on translated 40x40 MNIST (Sec. 5.2) and MultiMNIST (Sec. 6) with the same
commands as MNIST, on a tiny CPU budget."""
import pytest
import torch

from capsnet_lib import load_checkpoint, load_mnist
from capsnet_lib.evaluate import main as evaluate_main
from capsnet_lib.training.evaluation import accuracy
from capsnet_lib.training.budget import epoch_seconds
from capsnet_lib.data.tasks import TASKS, TEST_SETS
from capsnet_lib.train import main as train_main
from capsnet_lib.training.config import TrainConfig
from capsnet_lib.training.loop import run_training


def quick(out, root, **changes):
    return TrainConfig(**{**dict(epochs=1, max_steps=3, batch_size=8, train_limit=32, val_limit=16, device="cpu",
                                 precision="fp32", data_root=str(root), download=False, out=str(out),
                                 progress=False), **changes})


@pytest.mark.parametrize("dataset, size", [("translated40", 40), ("multimnist", 36)])
def test_a_generated_dataset_trains_a_capsnet_of_its_image_size_reproducibly(dataset, size, tmp_path, mnist_root):
    first = run_training(quick(tmp_path / "a", mnist_root, dataset=dataset))
    again = run_training(quick(tmp_path / "b", mnist_root, dataset=dataset))
    assert [r["train_loss"] for r in first] == [r["train_loss"] for r in again], "same seed, same run"
    assert 0 <= first[0]["val_accuracy"] <= 1 and first[0]["train_loss"] > 0
    saved = load_checkpoint(tmp_path / "a" / "best.pt")
    assert saved.config["image_size"] == size and saved.extra["train_config"]["dataset"] == dataset


def test_the_fixed_sets_are_the_same_every_time_and_differ_by_task(mnist_root):
    digits, labels = load_mnist("val", mnist_root, download=False)
    digits, labels = digits[:20], labels[:20]
    for name, task in TEST_SETS.items():
        images, targets = task.fixed_set(digits, labels, torch.device("cpu"))
        again, _ = task.fixed_set(digits, labels, torch.device("cpu"))
        assert torch.equal(images, again), f"{name}'s fixed set changed"
        assert images.shape == (20, 1, task.image_size, task.image_size)
    translated, _ = TEST_SETS["translated40"].fixed_set(digits, labels, torch.device("cpu"))
    affine, _ = TEST_SETS["affnist_style"].fixed_set(digits, labels, torch.device("cpu"))
    assert not torch.allclose(translated, affine)


def test_the_two_digit_accuracy_of_a_fixed_set_counts_only_both_digits_right(mnist_root):
    digits, labels = load_mnist("val", mnist_root, download=False)
    images, batch = TASKS["multimnist"].fixed_set(digits[:6], labels[:6], torch.device("cpu"))

    keys = [images[k].sum().item() for k in range(6)]           # tells the 6 images apart

    class Oracle(torch.nn.Module):           # long capsules for both true digits of images 0-3 only
        decoder = None

        def forward(self, x):
            lengths = torch.full((x.shape[0], 10), 0.05)
            for row, image in enumerate(x):
                k = min(range(6), key=lambda j: abs(keys[j] - image.sum().item()))
                lengths[row, batch["labels"][k, 0]] = 0.95
                lengths[row, batch["labels"][k, 1]] = 0.95 if k < 4 else 0.05
            return type("Out", (), {"lengths": lengths})()
    assert accuracy(TASKS["multimnist"], Oracle(), images, batch, batch_size=4) == pytest.approx(4 / 6)


def test_evaluate_reports_generated_sets_and_refuses_a_model_of_another_image_size(tmp_path, mnist_root, capsys):
    assert train_main(["--dataset", "translated40", "--epochs", "1", "--max-steps", "2", "--batch-size", "8",
                       "--train-limit", "16", "--val-limit", "8", "--device", "cpu", "--no-download",
                       "--no-progress", "--data-root", str(mnist_root), "--out", str(tmp_path / "t40")]) == 0
    checkpoint = str(tmp_path / "t40" / "best.pt")
    common = ["--device", "cpu", "--no-download", "--data-root", str(mnist_root), "--split", "val", "--limit", "20"]
    for dataset in ("translated40", "affnist_style"):
        assert evaluate_main([checkpoint, "--dataset", dataset] + common) == 0
        out = capsys.readouterr().out
        assert f"accuracy on {dataset} (val digits)" in out and "of 20 images" in out
    assert evaluate_main([checkpoint] + common) == 2                    # MNIST is 28x28
    assert "takes 40x40 images" in capsys.readouterr().err
    scipy_io = pytest.importorskip("scipy.io")
    digits, labels = load_mnist("test", mnist_root, download=False)
    canvas = torch.zeros(10, 40, 40, dtype=torch.uint8)
    canvas[:, 6:34, 6:34] = digits[:10]
    scipy_io.savemat(tmp_path / "affnist.mat", {"affNISTdata": {"image": canvas.reshape(10, 1600).T.numpy(),
                                                                "label_int": labels[:10].numpy()}})
    assert evaluate_main([checkpoint, "--affnist", str(tmp_path / "affnist.mat"), "--device", "cpu"]) == 0
    assert "of 10 images" in capsys.readouterr().out


def test_options_that_do_not_fit_a_dataset_are_refused_in_one_line(tmp_path, capsys):
    assert train_main(["--dataset", "multimnist", "--model", "baseline_cnn", "--out", str(tmp_path)]) == 2
    assert "the baseline CNN names one digit per image" in capsys.readouterr().err


def test_the_baseline_cnn_trains_on_translated_digits_and_is_tested_on_the_affine_set(tmp_path, mnist_root, capsys):
    run_training(quick(tmp_path / "cnn", mnist_root, dataset="translated40", model="baseline_cnn"))
    saved = load_checkpoint(tmp_path / "cnn" / "best.pt")
    assert saved.config == {"model": "baseline_cnn", "dropout": 0.5, "image_size": 40}
    common = ["--device", "cpu", "--no-download", "--data-root", str(mnist_root), "--split", "val", "--limit", "20"]
    assert evaluate_main([str(tmp_path / "cnn" / "best.pt"), "--dataset", "affnist_style"] + common) == 0
    assert "accuracy on affnist_style (val digits): " in capsys.readouterr().out


@pytest.mark.parametrize("dataset", list(TASKS))
def test_a_time_budget_measures_batches_of_the_runs_own_task(dataset, tmp_path, mnist_root):
    # It once timed 28x28 batches for every task, which a 40x40 or 36x36 CapsNet refuses.
    config = quick(tmp_path, mnist_root, dataset=dataset, train_limit=16, val_limit=8, batch_size=4)
    assert epoch_seconds([config], steps=1) > 0
