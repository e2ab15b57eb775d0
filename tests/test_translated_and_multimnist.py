"""Sec. 5.2 and 6 data: translated MNIST, our affNIST-style transforms, the affNIST reader,
MultiMNIST pairs, and the two-digit loss and accuracy."""
import pytest
import torch

from capsnet_lib import load_mnist, margin_loss
from capsnet_lib.data.multimnist import pairs, present, two_digit_correct, two_digit_margin_loss
from capsnet_lib.data.translated import AFFNIST_STYLE, affine_transformed, load_affnist, place, transform, translated


@pytest.fixture(scope="module")
def digits(mnist_root):
    images, labels = load_mnist("test", mnist_root, download=False)
    return images[:64], labels[:64]


def test_translated_digits_keep_all_their_ink_somewhere_on_the_40x40_canvas(digits):
    images, _ = digits
    out = translated(images, torch.Generator().manual_seed(0))
    assert out.shape == (64, 40, 40) and out.dtype == torch.uint8
    assert torch.equal(out.flatten(1).sum(1, dtype=torch.int64), images.flatten(1).sum(1, dtype=torch.int64))
    again = translated(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again), "a fixed seed must give a fixed set"
    # every one of the 13 x 13 positions is possible: over 64 digits, many different ones are used
    corners = {(int(r.nonzero()[:, 0].min()), int(r.nonzero()[:, 1].min())) for r in out}
    assert len(corners) > 20


def test_place_puts_each_image_at_its_own_offset_and_refuses_one_off_the_canvas():
    image = torch.arange(28 * 28, dtype=torch.float32).view(1, 28, 28) + 1
    out = place(image.expand(2, 28, 28), torch.tensor([0, 12]), torch.tensor([12, 3]))
    assert torch.equal(out[0, 0:28, 12:40], image[0]) and torch.equal(out[1, 12:40, 3:31], image[0])
    assert out[0, 28:].sum() == 0
    with pytest.raises(ValueError, match="inside the 40x40 canvas"):
        place(image, torch.tensor([13]), torch.tensor([0]))


def test_transform_turns_counter_clockwise_scales_and_shears_about_the_centre():
    canvas = torch.zeros(1, 40, 40)
    canvas[0, 19:21, 28:32] = 1.0                             # a blob right of the centre
    n = lambda v: torch.tensor([float(v)])
    turned = transform(canvas, n(90), n(0), n(1), n(1))[0]
    rows, cols = (turned > 0.5).nonzero().T
    assert rows.float().mean() < 12 and 18 <= cols.float().mean() <= 21, "+90 degrees must move it to the top"
    identity = transform(canvas, n(0), n(0), n(1), n(1))
    assert torch.allclose(identity, canvas, atol=1e-5)
    bar = torch.zeros(1, 40, 40)
    bar[0, 12:28, 18:22] = 1.0
    wider = transform(bar, n(0), n(0), n(1.2), n(1))
    assert wider.sum().item() == pytest.approx(1.2 * bar.sum().item(), rel=0.02)
    sheared = transform(bar, n(0), n(0.2), n(1), n(1))[0]
    top, bottom = (sheared[12:15] > 0.5).nonzero()[:, 1].float().mean(), (sheared[25:28] > 0.5).nonzero()[:, 1].float().mean()
    assert top > bottom, "a positive shear leans the top to the right"


def test_the_affnist_style_set_stays_in_its_ranges_keeps_the_ink_and_is_reproducible(digits):
    images, _ = digits
    out, params = affine_transformed(images, torch.Generator().manual_seed(1))
    assert out.shape == (64, 40, 40) and 0 <= out.min() and out.max() <= 1
    assert params["rotation_degrees"].abs().max() <= AFFNIST_STYLE["rotation_degrees"]
    assert params["shear"].abs().max() <= AFFNIST_STYLE["shear"]
    for axis in ("scale_x", "scale_y"):
        assert 0.8 <= params[axis].min() and params[axis].max() <= 1.2
    # the translation keeps every bit of ink: total ink = original ink x the area scaling
    expected = images.flatten(1).float().sum(1) / 255 * params["scale_x"] * params["scale_y"]
    assert torch.allclose(out.flatten(1).sum(1), expected, rtol=0.03)
    again, _ = affine_transformed(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_a_real_affnist_file_is_read_image_by_image(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    images = torch.randint(0, 256, (5, 40, 40), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5])
    columns = images.reshape(5, 1600).T.numpy()            # affNIST: one digit per column
    scipy_io.savemat(tmp_path / "test.mat", {"affNISTdata": {"image": columns, "label_int": labels.numpy()}})
    read_images, read_labels = load_affnist(tmp_path / "test.mat")
    assert torch.equal(read_images, images) and torch.equal(read_labels, labels)
    scipy_io.savemat(tmp_path / "other.mat", {"something": labels.numpy()})
    with pytest.raises(ValueError, match="not an affNIST .mat file"):
        load_affnist(tmp_path / "other.mat")


def test_multimnist_pairs_overlay_two_different_digits_each_shifted_at_most_4_pixels(digits):
    images, labels = digits
    batch = pairs(images, labels, torch.Generator().manual_seed(2))
    assert batch["images"].shape == (64, 1, 36, 36) and batch["labels"].shape == (64, 2)
    assert (batch["labels"][:, 0] != batch["labels"][:, 1]).all()
    assert torch.equal(batch["labels"][:, 0], labels)
    assert torch.allclose(batch["images"], (batch["first"] + batch["second"]).clamp(max=1))
    # the first digit alone is the original, padded by 4 and moved by at most 4 in each direction
    original = images.float() / 255
    for k in range(8):
        found = [(dy, dx) for dy in range(9) for dx in range(9)
                 if torch.allclose(batch["first"][k, 0, dy:dy + 28, dx:dx + 28], original[k])
                 and batch["first"][k].sum() == pytest.approx(original[k].sum().item(), rel=1e-5)]
        assert found, f"digit {k} is not a shift of at most 4 pixels of its original"
    assert torch.equal(batch["images"], pairs(images, labels, torch.Generator().manual_seed(2))["images"])


def test_the_two_digit_loss_is_eq4_with_two_classes_present_and_accuracy_needs_both():
    lengths = torch.tensor([[0.95, 0.02, 0.92, 0.05, 0, 0, 0, 0, 0, 0.05],
                            [0.95, 0.02, 0.3, 0.05, 0, 0, 0, 0, 0, 0.6]])
    label_pairs = torch.tensor([[0, 2], [2, 0]])
    assert two_digit_margin_loss(lengths[:1], label_pairs[:1]) == 0                  # within every margin
    by_hand = (0.9 - 0.3) ** 2 + 0.5 * (0.6 - 0.1) ** 2
    assert two_digit_margin_loss(lengths[1:], label_pairs[1:]).item() == pytest.approx(by_hand)
    assert two_digit_correct(lengths, label_pairs).tolist() == [True, False]
    assert present(label_pairs).sum(1).tolist() == [2, 2]
    one = torch.rand(4, 10)
    assert torch.allclose(two_digit_margin_loss(one, torch.tensor([[3, 3]] * 4)), margin_loss(one, torch.tensor([3] * 4)))


def test_a_multimnist_batch_of_one_digit_or_one_class_pairs_with_the_rest_of_the_split(digits):
    from capsnet_lib.data.tasks import TASKS
    images, labels = digits
    three = (labels == 3).nonzero().flatten()[:2]
    split = torch.cat([images[three], images[labels != 3][:5]]), torch.cat([labels[three], labels[labels != 3][:5]])
    for batch_size in (3, 6):                  # 7 digits: a last batch of one; a batch of two 3s is possible
        for seed in range(20):
            for x, batch in TASKS["multimnist"].batches(*split, batch_size, torch.Generator().manual_seed(seed)):
                assert x.shape[1:] == (1, 36, 36) and (batch["labels"][:, 0] != batch["labels"][:, 1]).all()
    one = pairs(images[three[:1]], labels[three[:1]], torch.Generator().manual_seed(0), pool=(images, labels))
    assert one["labels"][0, 0] == 3 and one["labels"][0, 1] != 3
