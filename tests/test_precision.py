import pytest
import torch

from capsnet_lib import autocast, load_pretrained, resolve_precision
from capsnet_lib import pick_device

LENGTH_TOLERANCE = 0.03   # bf16 keeps ~3 significant digits; lengths live in [0, 1)


def test_bf16_forward_matches_fp32_on_real_digits(test_digits):
    model = load_pretrained()
    images, labels = test_digits
    with torch.no_grad():
        fp32 = model(images).lengths
        with autocast("cpu", "bf16"):
            bf16 = model(images).lengths
    assert bf16.dtype == torch.float32, "lengths must come out in float32 under bf16 autocast"
    gap = (bf16 - fp32).abs().max().item()
    print(f"max |length_bf16 - length_fp32| on 200 test digits: {gap:.4f}")
    assert gap < LENGTH_TOLERANCE, f"bf16 lengths differ from fp32 by {gap:.4f} (tolerance {LENGTH_TOLERANCE})"
    assert torch.equal(bf16.argmax(1), fp32.argmax(1))


def test_bf16_training_step_keeps_routing_and_losses_in_float32(seeded):
    from capsnet_lib import CapsNet, capsnet_loss
    model = CapsNet()
    images, labels = torch.rand(2, 1, 28, 28), torch.tensor([3, 5])
    with autocast("cpu", "bf16"):
        out = model(images, labels)
        loss = capsnet_loss(out, images, labels)
    assert out.digit_caps.dtype == out.lengths.dtype == out.coupling.dtype == loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


def test_auto_precision_is_fp32_where_bf16_is_not_fast(monkeypatch):
    monkeypatch.setattr("capsnet_lib.training.precision.cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr("capsnet_lib.training.precision.cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "mps") == "fp32"
    # On CUDA bf16 trained slower than fp32 with TF32 convolutions (H200, benchmarks/train_step.py).
    assert resolve_precision("auto", "cuda") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize("precision, device, message", [
    ("fp16", "cpu", "precision must be one of auto, fp32, bf16"),
    ("bf16", "mps", "bf16 runs on cpu and cuda"),
])
def test_bad_precision_gets_a_clear_error(precision, device, message):
    with pytest.raises(ValueError, match=message):
        resolve_precision(precision, device)


def test_explicit_device_that_is_absent_gets_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        pick_device("cuda")
    assert pick_device("auto").type in ("cpu", "mps")
