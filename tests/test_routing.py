import pytest
import torch

from capsnet_lib import DigitCaps, dynamic_routing, squash


def routing_loop(u_hat, num_iterations):
    """Procedure 1 written out with Python loops over examples, children and parents."""
    B, I, J, D = u_hat.shape
    v_all, c_all = torch.zeros(B, J, D), torch.zeros(B, I, J)
    for n in range(B):
        b = [[0.0] * J for _ in range(I)]
        for r in range(num_iterations):
            c = [torch.softmax(torch.tensor(b[i]), dim=0) for i in range(I)]
            v = [squash(sum(c[i][j] * u_hat[n, i, j] for i in range(I))) for j in range(J)]
            for i in range(I):
                for j in range(J):
                    b[i][j] += float(u_hat[n, i, j] @ v[j])
        v_all[n] = torch.stack(v)
        c_all[n] = torch.stack(c)
    return v_all, c_all


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_routing_matches_the_loop_version(seeded, iterations):
    u_hat = torch.randn(3, 12, 4, 5)
    v, c = dynamic_routing(u_hat, iterations)
    v_ref, c_ref = routing_loop(u_hat, iterations)
    assert torch.allclose(v, v_ref, atol=1e-5), f"max |v - v_ref| = {(v - v_ref).abs().max():.2e}"
    assert torch.allclose(c, c_ref, atol=1e-5), f"max |c - c_ref| = {(c - c_ref).abs().max():.2e}"


def test_routing_output_shapes(seeded):
    v, c = dynamic_routing(torch.randn(2, 1152, 10, 16))
    assert v.shape == (2, 10, 16) and c.shape == (2, 1152, 10)


def test_routing_softmax_is_over_parent_capsules(seeded):
    _, c = dynamic_routing(torch.randn(4, 30, 10, 16), num_iterations=3)
    sums = c.sum(dim=2)                       # over the 10 parents of each child
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5), f"sums over parents: {sums[0, :5]}"
    assert not torch.allclose(c.sum(dim=1), torch.ones(4, 10), atol=1e-3)


def test_wrong_axis_softmax_fails_the_parent_sum_check(seeded):
    """The public bug: softmax over the children. The check above tells it apart."""
    b = torch.randn(4, 30, 10)
    c_wrong = torch.softmax(b, dim=1)
    assert not torch.allclose(c_wrong.sum(dim=2), torch.ones(4, 30), atol=1e-3)


def test_first_iteration_couples_uniformly(seeded):
    _, c = dynamic_routing(torch.randn(2, 7, 5, 4), num_iterations=1)
    assert torch.allclose(c, torch.full_like(c, 1 / 5))


def test_routing_of_an_example_does_not_depend_on_the_rest_of_the_batch(seeded):
    u_hat = torch.randn(8, 50, 10, 16)
    v_batch, c_batch = dynamic_routing(u_hat)
    v_alone, c_alone = dynamic_routing(u_hat[3:4])
    assert torch.allclose(v_batch[3:4], v_alone, atol=1e-6)
    assert torch.allclose(c_batch[3:4], c_alone, atol=1e-6)


def routing_with_batch_averaged_logits(u_hat, num_iterations=3):
    """The public bug: one set of logits b_ij shared by (averaged over) the batch."""
    b = torch.zeros(u_hat.shape[1], u_hat.shape[2])
    for _ in range(num_iterations):
        c = torch.softmax(b, dim=1)
        v = squash((c[None, :, :, None] * u_hat).sum(1))
        b = b + (u_hat * v[:, None]).sum(-1).mean(0)
    return v


def test_batch_averaged_logits_make_an_example_depend_on_the_batch(seeded):
    u_hat = torch.randn(8, 50, 10, 16)
    assert not torch.allclose(routing_with_batch_averaged_logits(u_hat)[3:4],
                              routing_with_batch_averaged_logits(u_hat[3:4]), atol=1e-4)


def test_logits_start_at_zero_on_every_call(seeded):
    u_hat = torch.randn(2, 20, 10, 16)
    first, _ = dynamic_routing(u_hat)
    second, _ = dynamic_routing(u_hat)
    assert torch.equal(first, second)


def test_detached_routing_sends_gradient_only_through_the_last_weighted_sum(seeded):
    u_hat = torch.randn(2, 20, 10, 16, requires_grad=True)
    v, c = dynamic_routing(u_hat, num_iterations=3, detach=True)
    assert not c.requires_grad, "coupling coefficients must carry no gradient when detached"
    weights = torch.randn_like(v)
    (v * weights).sum().backward()
    # Reference: c fixed as a constant, gradient only through s_j = sum_i c_ij u_hat_j|i.
    u_ref = u_hat.detach().clone().requires_grad_(True)
    s = (c.detach()[..., None] * u_ref).sum(1)
    (squash(s) * weights).sum().backward()
    assert torch.allclose(u_hat.grad, u_ref.grad, atol=1e-6)


def test_undetached_routing_sends_gradient_through_every_iteration(seeded):
    u_hat = torch.randn(2, 20, 10, 16, requires_grad=True)
    v, c = dynamic_routing(u_hat, num_iterations=3, detach=False)
    assert c.requires_grad
    weights = torch.randn_like(v)
    (v * weights).sum().backward()
    u_ref = u_hat.detach().clone().requires_grad_(True)
    s = (c.detach()[..., None] * u_ref).sum(1)
    (squash(s) * weights).sum().backward()
    assert not torch.allclose(u_hat.grad, u_ref.grad, atol=1e-6), "gradient must also flow through c"


def test_digit_caps_predictions_are_w_ij_times_u_i(seeded):
    layer = DigitCaps(in_caps=(5, 8), out_caps=(3, 16))
    u = torch.randn(2, 5, 8)
    u_hat = layer.predictions(u)
    W = layer.W.view(5, 3, 16, 8)                              # W_ij is (16, 8)
    assert u_hat.shape == (2, 5, 3, 16)
    assert torch.allclose(u_hat[1, 4, 2], W[4, 2] @ u[1, 4], atol=1e-6)


def test_digit_caps_weights_start_small(seeded):
    W = DigitCaps().W
    assert W.numel() == 1152 * 10 * 16 * 8
    assert 0.005 < W.std().item() < 0.02


@pytest.mark.parametrize("bad", [0, -1])
def test_routing_rejects_fewer_than_one_iteration(bad):
    with pytest.raises(ValueError, match="routing_iterations must be an integer in 1..100"):
        dynamic_routing(torch.randn(1, 4, 2, 3), bad)
    with pytest.raises(ValueError, match="routing_iterations must be an integer in 1..100"):
        DigitCaps(routing_iterations=bad)


def test_digit_caps_predictions_equal_the_einsum_of_eq_2(seeded):
    caps = DigitCaps(in_caps=(6, 8), out_caps=(3, 4))
    u = torch.randn(5, 6, 8)
    W = caps.W.view(6, 3, 4, 8)
    by_hand = torch.stack([torch.stack([torch.stack([W[i, j] @ u[b, i] for j in range(3)])   # u_hat_j|i = W_ij u_i
                                        for i in range(6)]) for b in range(5)])
    assert torch.allclose(caps.predictions_einsum(u), by_hand, atol=1e-6)
    assert torch.allclose(caps.predictions(u), caps.predictions_einsum(u), atol=1e-6)   # the fast layout, same numbers
    assert caps.predictions(u).transpose(1, 2).is_contiguous()                         # parent-major for routing


def test_a_routing_bias_is_added_to_every_s_j_before_the_squash(seeded):
    """The authors' variant: s_j = sum_i c_ij u_hat_j|i + b_j in every iteration."""
    u_hat, bias = torch.randn(2, 20, 3, 4), torch.randn(3, 4)
    b = torch.zeros(2, 20, 3)
    for r in range(3):
        c = torch.softmax(b, dim=2)
        v = squash((c[..., None] * u_hat).sum(1) + bias)
        b = b + (u_hat * v[:, None]).sum(-1)
    v_lib, _ = dynamic_routing(u_hat, 3, bias=bias)
    assert torch.allclose(v_lib, v, atol=1e-5)
    assert not torch.allclose(dynamic_routing(u_hat, 3)[0], v, atol=1e-3), "the bias must change the result"


def test_digit_caps_route_with_their_own_detach_and_bias_settings(seeded):
    u = squash(torch.randn(2, 6, 8))
    plain, authors = DigitCaps((6, 8), (3, 4)), DigitCaps((6, 8), (3, 4), detach=False, bias=True)
    authors.W.data.copy_(plain.W.data)
    assert plain.bias is None and authors.bias.shape == (3, 4)
    v_plain, c_plain = plain(u)
    v_authors, c_authors = authors(u)
    assert not c_plain.requires_grad and c_authors.requires_grad
    v_expected, _ = dynamic_routing(plain.predictions(u), 3, detach=False, bias=authors.bias)
    assert torch.allclose(v_authors, v_expected, atol=1e-6)
