"""The measured answer to 'what does each capsule dimension do': image statistics and effects."""
import pytest
import torch

from capsnet_lib import load_pretrained
from capsnet_lib.figures.dimensions import STATISTICS, dimension_effects, image_statistics

COLUMN = {name: k for k, name in enumerate(STATISTICS)}


def bar(top, bottom, left, right, lean=0.0):
    """A filled box of ones, its rows shifted right by `lean` pixels per row up (a slanted bar)."""
    image = torch.zeros(28, 28)
    for row in range(top, bottom):
        shift = round(lean * (bottom - 1 - row))
        image[row, left + shift:right + shift] = 1.0
    return image


def test_statistics_of_boxes_match_their_geometry():
    narrow, wide = bar(4, 24, 12, 16), bar(4, 24, 8, 20)
    s = image_statistics(torch.stack([narrow, wide]))
    assert s[0, COLUMN["ink"]] == 20 * 4 and s[1, COLUMN["ink"]] == 20 * 12
    assert s[1, COLUMN["width"]] > 2.5 * s[0, COLUMN["width"]]          # 12 vs 4 pixels wide
    assert s[0, COLUMN["height"]] == pytest.approx(s[1, COLUMN["height"]])
    assert s[0, COLUMN["centre_x"]] == pytest.approx(13.5) and s[0, COLUMN["centre_y"]] == pytest.approx(13.5)
    assert abs(s[0, COLUMN["slant"]]) < 1e-5


def test_slant_is_positive_for_a_stroke_leaning_right_and_centre_moves_with_a_shift():
    upright, leaning = bar(4, 24, 12, 15), bar(4, 24, 6, 9, lean=0.5)
    shifted = torch.roll(upright, shifts=(3, -2), dims=(0, 1))
    s = image_statistics(torch.stack([upright, leaning, shifted]))
    assert s[1, COLUMN["slant"]] == pytest.approx(0.5, abs=0.05)       # half a pixel right per row up
    assert s[2, COLUMN["centre_x"]] - s[0, COLUMN["centre_x"]] == pytest.approx(-2)
    assert s[2, COLUMN["centre_y"]] - s[0, COLUMN["centre_y"]] == pytest.approx(3)


def test_effects_perturb_only_the_chosen_capsule_and_match_decoding_by_hand(test_digits):
    model = load_pretrained()
    images, _ = test_digits
    with torch.no_grad():
        out = model(images[:3])
    classes = out.lengths.argmax(dim=1)
    effects = dimension_effects(model, out.digit_caps, classes, step=0.25)
    assert effects.shape == (3, 16, len(STATISTICS))
    d, k = 5, 1                                     # dimension 5 of digit 1, by hand
    caps = out.digit_caps[k:k + 1].repeat(2, 1, 1)
    caps[0, classes[k], d] -= 0.25
    caps[1, classes[k], d] += 0.25
    with torch.no_grad():
        ends = image_statistics(model.decode(caps, classes[k].repeat(2)))
    assert torch.allclose(effects[k, d], ends[1] - ends[0], atol=1e-4)
    # moving another class's capsule changes nothing in a decoder masked by the chosen class
    other = (classes[k] + 1) % 10
    caps[:, other] += 0.25
    with torch.no_grad():
        assert torch.allclose(image_statistics(model.decode(caps, classes[k].repeat(2))), ends, atol=1e-5)


def test_a_direction_moves_the_capsule_along_it_and_the_control_is_a_rotation(test_digits):
    """directions=eye is the axes; a random row u moves the capsule by +-0.25 u, decoded by hand."""
    from capsnet_lib.figures.dimensions import random_directions
    model = load_pretrained()
    with torch.no_grad():
        out = model(test_digits[0][:2])
    classes = out.lengths.argmax(dim=1)
    axes = dimension_effects(model, out.digit_caps, classes)
    assert torch.equal(dimension_effects(model, out.digit_caps, classes, directions=torch.eye(16)), axes)
    rotation = random_directions(0)
    assert torch.allclose(rotation @ rotation.T, torch.eye(16), atol=1e-5)
    assert not torch.allclose(rotation.abs(), torch.eye(16), atol=0.1)          # not the axes again
    along = dimension_effects(model, out.digit_caps, classes, directions=rotation)
    caps = out.digit_caps[1:2].repeat(2, 1, 1)
    caps[0, classes[1]] -= 0.25 * rotation[7]
    caps[1, classes[1]] += 0.25 * rotation[7]
    with torch.no_grad():
        ends = image_statistics(model.decode(caps, classes[1].repeat(2)))
    assert torch.allclose(along[1, 7], ends[1] - ends[0], atol=1e-4)
    with pytest.raises(ValueError, match=r"directions must be \(16, 16\)"):
        dimension_effects(model, out.digit_caps, classes, directions=torch.eye(8))


def test_moved_capsules_moves_only_each_images_chosen_capsule():
    from capsnet_lib.figures.dimensions import moved_capsules
    caps = torch.randn(3, 10, 16)
    before = caps.clone()
    classes, offsets = torch.tensor([0, 5, 9]), torch.randn(3, 16)
    moved = moved_capsules(caps, classes, offsets)
    for n in range(3):
        assert torch.equal(moved[n, classes[n]], caps[n, classes[n]] + offsets[n])
        others = torch.arange(10) != classes[n]
        assert torch.equal(moved[n, others], caps[n, others])
    assert torch.equal(caps, before), "the input capsules must not be edited in place"
