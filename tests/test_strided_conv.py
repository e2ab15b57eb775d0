import pytest
import torch
import torch.nn.functional as F

from capsnet_lib.kernels.strided_conv import polyphase_grad_input, strided_conv2d


@pytest.mark.parametrize("stride, kernel, size", [(2, 9, 20), (2, 4, 11), (3, 5, 13)])
def test_polyphase_input_gradient_equals_autograd(seeded, stride, kernel, size):
    x = torch.randn(2, 5, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 5, kernel, kernel, dtype=torch.float64)
    grad_out = torch.randn_like(F.conv2d(x, w, stride=stride))
    F.conv2d(x, w, stride=stride).backward(grad_out)
    ours = polyphase_grad_input(grad_out, w, stride, x.shape)
    assert torch.allclose(ours, x.grad, atol=1e-10), f"max error {(ours - x.grad).abs().max():.2e}"


def test_strided_conv_gradients_match_conv2d(seeded):
    x = torch.randn(3, 6, 20, 20, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 6, 9, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, w, b: strided_conv2d(x, w, b, 2), (x, w, b), fast_mode=True)


def test_strided_conv_under_bf16_autocast_matches_fp32(seeded):
    x = torch.randn(4, 16, 20, 20, requires_grad=True)
    w = (0.05 * torch.randn(16, 16, 9, 9)).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = strided_conv2d(x, w, None, 2)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    reference = x.detach().clone().requires_grad_(True)
    F.conv2d(reference, w.detach(), stride=2).sum().backward()
    assert torch.allclose(x.grad, reference.grad, rtol=0.02, atol=0.02)
