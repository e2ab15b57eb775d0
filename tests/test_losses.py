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


def test_the_authors_code_row_trains_their_loss_up_to_a_scale():
    """Their reductions, written out: margin cost 0.5 x each class's term, tf.reduce_mean over batch *and*
    classes; reconstruction 0.0005 x pixel sum, mean over batch. Twenty times it is Eq. 4 + w x recon
    with the authors_code row's w (0.01; a row built on 0.001 counted the 0.5 but not the class mean)."""
    from capsnet_lib.experiments.table1 import ROUTING_ROWS
    gen = torch.Generator().manual_seed(0)
    lengths, labels = torch.rand(5, 10, generator=gen), torch.tensor([3, 1, 4, 1, 5])
    recon, images = torch.rand(5, 1, 28, 28, generator=gen), torch.rand(5, 1, 28, 28, generator=gen)
    logits, T = lengths - 0.5, torch.nn.functional.one_hot(labels, 10).float()
    per_class = (0.5 * T * (logits < 0.4) * (logits - 0.4) ** 2
                 + 0.5 * 0.5 * (1 - T) * (logits > -0.4) * (logits + 0.4) ** 2)
    theirs = per_class.mean() + 0.0005 * ((recon - images) ** 2).flatten(1).sum(1).mean()
    weight = ROUTING_ROWS["authors_code"][1]["reconstruction_weight"]
    ours = margin_loss(lengths, labels) + weight * reconstruction_loss(recon, images)
    assert torch.allclose(20 * theirs, ours, rtol=1e-6), (20 * theirs, ours, weight)
