import pytest
import torch

from capsnet_lib import BaselineCNN, CapsNet, Decoder


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_paper():
    assert count(CapsNet()) == 8_215_568                       # "8.2M" with the decoder
    assert count(CapsNet(reconstruction=False)) == 6_804_224   # "6.8M" without
    assert abs(count(BaselineCNN()) - 35.4e6) < 0.05e6         # "35.4M"


def test_the_40x40_baseline_has_about_capsnets_parameters_and_the_28x28_one_keeps_its_layers():
    assert abs(count(BaselineCNN(image_size=40)) / count(CapsNet(image_size=40)) - 1) < 0.01   # "similar" (Sec. 5.2)
    assert BaselineCNN(image_size=40)(torch.rand(2, 1, 40, 40)).shape == (2, 10)
    assert [k for k in BaselineCNN().state_dict() if k.endswith("weight")] == [
        "features.0.weight", "features.2.weight", "features.4.weight",       # checkpoints saved before still load
        "classifier.1.weight", "classifier.3.weight", "classifier.6.weight"]
    with pytest.raises(ValueError, match="defined for 28 and 40"):
        BaselineCNN(image_size=36)


def test_forward_output_fields(seeded):
    out = CapsNet()(torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3]))
    assert out.digit_caps.shape == (3, 10, 16)
    assert out.lengths.shape == (3, 10)
    assert out.coupling.shape == (3, 1152, 10)
    assert out.reconstructions.shape == (3, 1, 28, 28)
    assert torch.allclose(out.lengths, out.digit_caps.norm(dim=-1), atol=1e-4)
    assert ((out.reconstructions >= 0) & (out.reconstructions <= 1)).all()


def test_no_decoder_gives_no_reconstructions(seeded):
    model = CapsNet(reconstruction=False)
    assert model(torch.rand(2, 1, 28, 28)).reconstructions is None
    with pytest.raises(ValueError, match="no decoder"):
        model.decode(torch.zeros(1, 10, 16))


def test_decoder_masks_all_but_the_labelled_capsule(seeded):
    decoder = Decoder()
    caps = torch.randn(2, 10, 16)
    labels = torch.tensor([4, 7])
    expected = decoder(caps, labels)
    scrambled = torch.randn(2, 10, 16)                 # change every other capsule
    scrambled[0, 4], scrambled[1, 7] = caps[0, 4], caps[1, 7]
    assert torch.allclose(decoder(scrambled, labels), expected, atol=1e-6)


def test_decoder_without_labels_uses_the_longest_capsule(seeded):
    decoder = Decoder()
    caps = torch.randn(2, 10, 16) * 0.1
    caps[0, 3] *= 30
    caps[1, 9] *= 30
    assert torch.allclose(decoder(caps), decoder(caps, torch.tensor([3, 9])))


def test_forward_masks_by_label_when_given_and_by_prediction_otherwise(seeded):
    model = CapsNet().eval()
    images = torch.rand(4, 1, 28, 28)
    out = model(images)
    predicted = out.lengths.argmax(1)
    assert torch.allclose(out.reconstructions, model.decode(out.digit_caps, predicted), atol=1e-6)
    other = (predicted + 1) % 10
    out_labelled = model(images, other)
    assert torch.allclose(out_labelled.reconstructions, model.decode(out.digit_caps, other), atol=1e-6)
    assert not torch.allclose(out_labelled.reconstructions, out.reconstructions)


def test_decode_accepts_perturbed_capsules(seeded):
    model = CapsNet().eval()
    caps = model(torch.rand(1, 1, 28, 28)).digit_caps
    tweaked = caps.clone()
    tweaked[0, :, 5] += 0.25
    assert not torch.allclose(model.decode(tweaked), model.decode(caps))


@pytest.mark.parametrize("images, error, message", [
    (torch.rand(28, 28), ValueError, r"shape \(B, 1, 28, 28\), got \(28, 28\)"),
    (torch.rand(2, 3, 28, 28), ValueError, r"got \(2, 3, 28, 28\)"),
    (torch.rand(2, 1, 32, 32), ValueError, r"got \(2, 1, 32, 32\)"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), TypeError, "floating point"),
    ([[0.0]], TypeError, "must be a torch.Tensor"),
])
def test_bad_images_get_a_clear_error(images, error, message):
    with pytest.raises(error, match=message):
        CapsNet()(images)


@pytest.mark.parametrize("labels, error, message", [
    (torch.tensor([0, 10]), ValueError, r"in 0..9, got values from 0 to 10"),
    (torch.tensor([-1, 2]), ValueError, r"in 0..9"),
    (torch.tensor([1, 2, 3]), ValueError, r"shape \(2,\)"),
    (torch.tensor([1.0, 2.0]), TypeError, "integer"),
    ([1, 2], TypeError, "torch.Tensor"),
])
def test_bad_labels_get_a_clear_error(labels, error, message):
    with pytest.raises(error, match=message):
        CapsNet()(torch.rand(2, 1, 28, 28), labels)


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_routing_iterations_get_a_clear_error(bad):
    with pytest.raises(ValueError, match="routing_iterations must be an integer in 1..100"):
        CapsNet(routing_iterations=bad)


def test_baseline_cnn_gives_logits(seeded):
    assert BaselineCNN()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
