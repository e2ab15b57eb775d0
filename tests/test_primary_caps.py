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
