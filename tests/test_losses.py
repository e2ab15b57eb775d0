import torch

from capsnet_lib import margin_loss, reconstruction_loss


def test_margin_loss_matches_hand_computation():
    lengths = torch.tensor([[0.95, 0.5, 0.05], [0.3, 0.2, 0.6]])
    labels = torch.tensor([0, 2])
    # example 0: present 0.95 >= 0.9 -> 0; absent 0.5 -> 0.5*(0.4)^2 = 0.08; absent 0.05 -> 0
    # example 1: absent 0.3 -> 0.5*0.2^2 = 0.02; absent 0.2 -> 0.5*0.1^2 = 0.005; present 0.6 -> 0.3^2 = 0.09
    expected = (0.08 + (0.02 + 0.005 + 0.09)) / 2
    got = margin_loss(lengths, labels).item()
    assert abs(got - expected) < 1e-6, f"expected {expected}, got {got}"


def test_margin_loss_hinges_are_squared():
    lengths = torch.tensor([[0.5, 0.0]])
    got = margin_loss(lengths, torch.tensor([0])).item()
    assert abs(got - 0.4 ** 2) < 1e-6, f"squared hinge gives 0.16; unsquared would give 0.4; got {got}"


def test_margin_loss_is_zero_for_confident_correct_lengths():
    lengths = torch.tensor([[0.95, 0.05, 0.1]])
    assert margin_loss(lengths, torch.tensor([0])).item() == 0.0


def test_reconstruction_loss_sums_pixels_and_averages_images():
    recon = torch.zeros(2, 1, 28, 28)
    images = torch.zeros(2, 1, 28, 28)
    images[0] = 0.5                                 # 784 pixels off by 0.5 -> 196
    got = reconstruction_loss(recon, images).item()
    assert abs(got - 196 / 2) < 1e-4, f"expected 98 (sum over pixels, mean over images), got {got}"
    mean_over_pixels = torch.nn.functional.mse_loss(recon, images).item()
    assert abs(got / mean_over_pixels - 784) < 1e-3, "the public bug (mean over pixels) is 784x weaker"
