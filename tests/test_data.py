import subprocess
import sys

import pytest
import torch

from capsnet_lib import load_mnist, random_shift
from capsnet_lib.data.mnist import VALIDATION_SIZE, batches
from capsnet_lib.download import main as download_main


def test_splits_have_the_expected_sizes_and_do_not_overlap(mnist_root):
    train_x, train_y = load_mnist("train", mnist_root, download=False)
    val_x, _ = load_mnist("val", mnist_root, download=False)
    test_x, _ = load_mnist("test", mnist_root, download=False)
    assert (train_x.shape, val_x.shape, test_x.shape) == ((55_000, 28, 28), (VALIDATION_SIZE, 28, 28), (10_000, 28, 28))
    assert train_x.dtype == torch.uint8 and train_y.dtype == torch.int64
    assert not torch.equal(val_x[0], train_x[-1])   # val is the held-out tail, not repeated


def test_missing_data_root_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("train", tmp_path / "empty", download=False)
    message = str(info.value)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in message
    assert "CAPSNET_DATA" in message and "--data-root" in message


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        load_mnist("validation")


def test_random_shift_moves_each_image_by_at_most_two_pixels(seeded):
    images = torch.zeros(500, 28, 28, dtype=torch.uint8)
    images[:, 14, 14] = 255                              # one lit pixel in the middle
    shifted = random_shift(images, generator=torch.Generator().manual_seed(0))
    where = shifted.flatten(1).argmax(1)
    dy, dx = where // 28 - 14, where % 28 - 14
    assert shifted.dtype == torch.uint8 and (shifted.flatten(1).sum(1) == 255).all()
    assert dy.abs().max() == 2 and dx.abs().max() == 2, "shifts must reach but not pass 2 pixels"
    assert len(set(zip(dy.tolist(), dx.tolist()))) == 25, "all 5 x 5 shifts must occur"


def test_random_shift_fills_with_zeros(seeded):
    images = torch.full((200, 28, 28), 7, dtype=torch.uint8)
    shifted = random_shift(images, generator=torch.Generator().manual_seed(1))
    zero_rows = (shifted == 0).all(dim=2).sum(1) + (shifted == 0).all(dim=1).sum(1)
    assert (shifted.flatten(1).max(1).values == 7).all() and zero_rows.max() > 0


def test_random_shift_on_four_dimensional_input_matches_three(seeded):
    images = torch.randint(0, 255, (6, 28, 28), dtype=torch.uint8)
    a = random_shift(images, generator=torch.Generator().manual_seed(3))
    b = random_shift(images.unsqueeze(1), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b.squeeze(1))


def test_batches_cover_every_image_once_and_scale_to_unit_range(seeded):
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 28, 28).contiguous()
    labels = torch.arange(10)
    seen = []
    for x, y in batches(images, labels, 4, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32
        assert torch.allclose(x[:, 0, 0, 0] * 255, y.float())
        seen += y.tolist()
    assert sorted(seen) == list(range(10))


def test_download_cli_reports_a_missing_root_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("capsnet_lib.download.load_mnist",
                        lambda split, root: load_mnist(split, root, download=False))
    assert download_main(["--data-root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: MNIST not found")


def test_the_download_command_checks_the_data_and_runs_without_a_warning(mnist_root):
    result = subprocess.run([sys.executable, "-W", "error", "-m", "capsnet_lib.download", "--data-root",
                             str(mnist_root)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train: 55000 images" in result.stdout and result.stderr == ""
