import pytest
import torch

from capsnet_lib import PrimaryCaps, squash


def capsules_from_conv_output(conv_out, num_types=32, caps_dim=8):
    """Reference: capsule (t, y, x) is channels t*8 .. t*8+7 at position (y, x)."""
    B, C, H, W = conv_out.shape
    caps = torch.empty(B, num_types * H * W, caps_dim)
    for t in range(num_types):
        for y in range(H):
            for x in range(W):
                caps[:, (t * H + y) * W + x] = conv_out[:, t * caps_dim:(t + 1) * caps_dim, y, x]
    return squash(caps)


def test_primary_caps_shape_on_mnist_sized_input(seeded):
    out = PrimaryCaps()(torch.randn(2, 256, 20, 20))
    assert out.shape == (2, 1152, 8)


def test_primary_caps_groups_channels_at_one_position(seeded):
    layer = PrimaryCaps(in_channels=4, num_types=3, caps_dim=8, kernel_size=3, stride=2)
    x = torch.randn(2, 4, 9, 9)
    expected = capsules_from_conv_output(layer.conv(x), num_types=3)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_perturbing_one_position_changes_only_capsules_at_that_position(seeded):
    layer = PrimaryCaps()
    conv_out = torch.randn(1, 256, 6, 6)
    before = layer.to_capsules(conv_out.clone())
    conv_out[0, :, 2, 4] += 1.0                # every channel at position (2, 4)
    changed = (layer.to_capsules(conv_out) - before).abs().sum(-1)[0] > 0      # (1152,)
    position = torch.arange(1152) % 36                             # (type, y, x) order
    assert changed.sum() == 32, f"expected 32 capsules (one per type) to change, got {int(changed.sum())}"
    assert (position[changed] == 2 * 6 + 4).all()


def test_the_common_reshape_bug_mixes_positions(seeded):
    """The public bug: view(B, 1152, 8) on (B, 256, 6, 6) puts 8 neighbouring pixels of one
    channel in a capsule. The check above must see the difference."""
    conv_out = torch.randn(1, 256, 6, 6)
    buggy = lambda t: squash(t.reshape(1, 1152, 8))
    before = buggy(conv_out.clone())
    conv_out[0, :, 2, 4] += 1.0
    changed = (buggy(conv_out) - before).abs().sum(-1)[0] > 0
    assert changed.sum() == 256                # one capsule per channel: the grouping is wrong


def test_a_forward_hook_on_the_primary_conv_fires_on_cpu_and_can_replace_its_output(seeded):
    primary = PrimaryCaps()
    primary.conv.polyphase = True          # whatever this CPU's rule says
    x = torch.randn(2, 256, 20, 20)
    assert primary.conv.uses_polyphase(x), "the CPU fast path is not the one under test"
    calls = []
    handle = primary.conv.register_forward_hook(lambda module, args, out: calls.append(1) or torch.zeros_like(out))
    out = primary(x)
    handle.remove()
    assert calls == [1], "the hook did not fire"
    assert torch.equal(out, torch.zeros(2, 1152, 8)), "the hook's replacement output was ignored"


def test_the_polyphase_path_is_taken_only_where_it_is_valid(seeded):
    from capsnet_lib.kernels.strided_conv import PolyphaseConv2d
    x = torch.randn(1, 4, 12, 12)
    assert PolyphaseConv2d(4, 4, 3, stride=2).polyphase_valid(x)
    for settings in (dict(stride=1), dict(stride=2, padding=1), dict(stride=2, dilation=2), dict(stride=2, groups=2),
                     dict(stride=(2, 1))):
        conv = PolyphaseConv2d(4, 4, 3, **settings)
        conv.polyphase = True
        assert not conv.uses_polyphase(x), f"polyphase taken for {settings}"
        reference = torch.nn.functional.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                                               conv.groups)
        assert torch.allclose(conv(x), reference, atol=1e-6)


def test_the_shipped_checkpoint_still_loads_into_the_primary_conv():
    from capsnet_lib import load_pretrained
    assert load_pretrained().primary_caps.conv.weight.shape == (256, 256, 9, 9)


@pytest.mark.parametrize("flags, taken", [("fpu avx512f avx512_bf16 amx_bf16 amx_tile", True),
                                          ("fpu avx512f avx512_bf16", False)])
def test_the_polyphase_path_is_chosen_where_it_measured_faster(monkeypatch, flags, taken):
    from capsnet_lib.kernels import strided_conv
    monkeypatch.setattr(strided_conv, "cpu_info", lambda field: flags)
    strided_conv.polyphase_pays_off.cache_clear()
    try:
        conv = strided_conv.PolyphaseConv2d(4, 4, 3, stride=2)
        x = torch.randn(1, 4, 12, 12)
        assert conv.uses_polyphase(x) is taken
        conv.polyphase = False
        assert not conv.uses_polyphase(x)
    finally:
        strided_conv.polyphase_pays_off.cache_clear()
