import torch

from capsnet_lib import capsule_length, squash


def test_squash_matches_hand_computed_value():
    s = torch.tensor([3.0, 4.0])                  # |s| = 5, |s|^2 = 25
    expected = torch.tensor([3.0, 4.0]) / 5 * 25 / 26
    assert torch.allclose(squash(s), expected, atol=1e-6), f"expected {expected}, got {squash(s)}"


def test_squash_length_is_norm_squared_over_one_plus_norm_squared(seeded):
    s = torch.randn(64, 16) * torch.logspace(-3, 2, 64)[:, None]
    n2 = (s ** 2).sum(-1)
    lengths = squash(s).norm(dim=-1)
    assert torch.allclose(lengths, n2 / (1 + n2), rtol=1e-4, atol=1e-6)
    assert (lengths < 1).all() and (lengths >= 0).all()


def test_squash_keeps_direction(seeded):
    s = torch.randn(32, 8)
    cos = torch.nn.functional.cosine_similarity(squash(s), s, dim=-1)
    assert torch.allclose(cos, torch.ones(32), atol=1e-5)


def test_squash_acts_along_the_given_dim(seeded):
    s = torch.randn(4, 8, 5)
    assert torch.allclose(squash(s, dim=1), squash(s.transpose(1, 2)).transpose(1, 2))


def test_squash_at_zero_is_zero_with_finite_gradient():
    s = torch.zeros(3, 8, requires_grad=True)
    v = squash(s)
    v.sum().backward()
    assert torch.equal(v, torch.zeros(3, 8))
    assert torch.isfinite(s.grad).all(), f"gradient at zero is not finite: {s.grad}"


def test_public_squash_without_epsilon_gives_nan_at_zero():
    """The pitfall the test above guards against: dividing by sqrt(|s|^2) with no epsilon."""
    s = torch.zeros(8, requires_grad=True)
    squared_norm = (s ** 2).sum()
    v = squared_norm / (1 + squared_norm) * s / torch.sqrt(squared_norm)
    v.sum().backward()
    assert torch.isnan(v).all() and torch.isnan(s.grad).all()


def test_capsule_length_has_finite_gradient_at_zero():
    v = torch.zeros(2, 10, 16, requires_grad=True)
    capsule_length(v).sum().backward()
    assert torch.isfinite(v.grad).all(), "length of a zero capsule must not give a NaN gradient"
    w = torch.zeros(16, requires_grad=True)
    torch.sqrt((w ** 2).sum()).backward()          # the public version: NaN
    assert torch.isnan(w.grad).all()
