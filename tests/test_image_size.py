"""CapsNet for other image sizes (Sec. 5.2's 40x40 translated MNIST, Sec. 6's 36x36 MultiMNIST): the
number of primary capsules follows from the image size; the MNIST model stays exactly as it was."""
import pytest
import torch

from capsnet_lib import CapsNet, load_checkpoint, load_pretrained, save_checkpoint
from capsnet_lib.model import primary_grid
from capsnet_lib.figures.viz import perturb


@pytest.mark.parametrize("size, grid", [(28, 6), (36, 10), (40, 12)])
def test_the_primary_grid_is_what_the_convolutions_make(size, grid, seeded):
    model = CapsNet(image_size=size)
    with torch.no_grad():
        conv = model.primary_caps.conv(torch.relu(model.conv1(torch.zeros(1, 1, size, size))))
    assert primary_grid(size) == grid == conv.shape[-1]
    assert model.digit_caps.num_in == 32 * grid * grid


def test_a_40x40_capsnet_runs_decodes_and_trains(seeded):
    model = CapsNet(image_size=40)
    images, labels = torch.rand(3, 1, 40, 40), torch.tensor([1, 2, 3])
    out = model(images, labels)
    assert out.digit_caps.shape == (3, 10, 16) and out.coupling.shape == (3, 32 * 12 * 12, 10)
    assert out.reconstructions.shape == (3, 1, 40, 40)
    assert perturb(model, out.digit_caps[0].detach(), 1).shape == (16, 11, 40, 40)
    out.lengths.sum().backward()
    assert model.digit_caps.W.grad is not None


def test_images_of_the_wrong_size_are_refused_with_the_size_expected(seeded):
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, 40, 40\), got \(2, 1, 28, 28\)"):
        CapsNet(image_size=40)(torch.rand(2, 1, 28, 28))
    for bad in (16, 28.0, True, 1000):
        with pytest.raises(ValueError, match="image_size must be a whole number of pixels"):
            CapsNet(image_size=bad)


def test_the_image_size_round_trips_and_mnist_is_unchanged(tmp_path, seeded):
    save_checkpoint(tmp_path / "m40.pt", CapsNet(image_size=40, reconstruction=False))
    assert load_checkpoint(tmp_path / "m40.pt").model.config.image_size == 40
    shipped = load_pretrained()
    assert shipped.config.image_size == 28 and shipped.digit_caps.num_in == 1152
    assert sum(p.numel() for p in shipped.parameters()) == 8_215_568
