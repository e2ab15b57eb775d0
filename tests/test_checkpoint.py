import pytest
import torch

import capsnet_lib.training.checkpoint as checkpoint
from capsnet_lib import BaselineCNN, CapsNet, load_checkpoint, load_pretrained, save_checkpoint


def test_round_trip_keeps_weights_config_and_extra(tmp_path, seeded):
    model = CapsNet(routing_iterations=2, reconstruction=False)
    save_checkpoint(tmp_path / "m.pt", model, epoch=3, note="hello")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == {"routing_iterations": 2, "reconstruction": False, "routing_detach": True,
                             "routing_bias": False, "image_size": 28}
    assert loaded.extra == {"epoch": 3, "note": "hello"}
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), f"{name} changed in the round trip"


def test_the_baseline_cnn_round_trips_as_a_baseline_cnn(tmp_path, seeded):
    model = BaselineCNN(dropout=0.3)
    save_checkpoint(tmp_path / "cnn.pt", model)
    loaded = load_checkpoint(tmp_path / "cnn.pt")
    assert isinstance(loaded.model, BaselineCNN)
    assert loaded.config == {"model": "baseline_cnn", "dropout": 0.3, "image_size": 28}
    assert torch.equal(loaded.model.classifier[1].weight, model.classifier[1].weight)
    with pytest.raises(ValueError, match="is for another configuration"):
        load_checkpoint(tmp_path / "cnn.pt", model=CapsNet())
    # a baseline saved before image_size existed loads as the 28x28 model it is
    payload = torch.load(tmp_path / "cnn.pt", weights_only=True)
    payload["config"] = {"model": "baseline_cnn", "dropout": 0.3}
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").config["image_size"] == 28


def test_float16_checkpoint_loads_as_float32(tmp_path, seeded):
    model = CapsNet()
    save_checkpoint(tmp_path / "half.pt", model, dtype=torch.float16)
    loaded = load_checkpoint(tmp_path / "half.pt").model
    assert loaded.conv1.weight.dtype == torch.float32
    assert torch.allclose(loaded.conv1.weight, model.conv1.weight, atol=1e-3)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file_gets_a_clear_error(tmp_path, seeded):
    save_checkpoint(tmp_path / "m.pt", CapsNet(reconstruction=False))
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pt is truncated, corrupt or not a checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_a_file_with_code_in_it_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))
    torch.save({"format": checkpoint.FORMAT, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt holds Python objects other than tensors"):
        load_checkpoint(tmp_path / "evil.pt")


def test_a_file_that_is_not_a_checkpoint_gets_a_clear_error(tmp_path):
    (tmp_path / "notes.pt").write_text("these are notes, not weights")
    with pytest.raises(ValueError, match="notes.pt is truncated, corrupt or not a checkpoint"):
        load_checkpoint(tmp_path / "notes.pt")


def test_a_plain_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path, seeded):
    torch.save(CapsNet(reconstruction=False).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="not a capsnet_lib checkpoint"):
        load_checkpoint(tmp_path / "sd.pt")


def test_checkpoint_for_another_configuration_says_what_differs(tmp_path, seeded):
    save_checkpoint(tmp_path / "m.pt", CapsNet(reconstruction=False))
    with pytest.raises(ValueError, match="reconstruction is False in the file but True in the model"):
        load_checkpoint(tmp_path / "m.pt", model=CapsNet())


def test_mismatched_weights_get_a_clear_error(tmp_path, seeded):
    model = CapsNet(reconstruction=False)
    save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["state_dict"]["digit_caps.W"] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt is corrupt: checksum mismatch"):
        load_checkpoint(tmp_path / "bad.pt")
    del payload["checksum"]                 # as in files written before checksums existed
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt does not fit the model: wrong shapes: digit_caps.W \(3, 3\) "
                                         r"instead of \(1152, 160, 8\)"):
        load_checkpoint(tmp_path / "bad.pt")


def test_interrupted_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch, seeded):
    model = CapsNet(reconstruction=False)
    save_checkpoint(tmp_path / "m.pt", model, epoch=1)

    def dies_halfway(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed mid-write")
    monkeypatch.setattr(checkpoint.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "m.pt", model, epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "m.pt").extra["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "the temporary file must be removed"


def test_pretrained_model_classifies_test_digits(test_digits):
    model = load_pretrained()
    images, labels = test_digits
    assert not model.training and next(model.parameters()).device.type == "cpu"
    with torch.no_grad():
        accuracy = (model(images).lengths.argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.99, f"pretrained model got {accuracy:.3f} on 200 test digits"


def test_the_authors_routing_options_round_trip_with_their_bias(tmp_path, seeded):
    model = CapsNet(routing_detach=False, routing_bias=True)
    assert model.digit_caps.bias.shape == (10, 16) and torch.all(model.digit_caps.bias == 0.1)
    save_checkpoint(tmp_path / "authors.pt", model)
    loaded = load_checkpoint(tmp_path / "authors.pt").model
    assert loaded.config.routing_detach is False and torch.equal(loaded.digit_caps.bias, model.digit_caps.bias)


def test_a_checkpoint_saved_before_the_routing_options_loads_with_their_defaults(tmp_path, seeded):
    """The shipped model's config has only routing_iterations and reconstruction."""
    loaded = load_checkpoint(checkpoint.pretrained_path(), model=CapsNet())
    assert loaded.config == {"routing_iterations": 3, "reconstruction": True, "routing_detach": True,
                             "routing_bias": False, "image_size": 28}
    with pytest.raises(ValueError, match="routing_bias is False in the file but True in the model"):
        load_checkpoint(checkpoint.pretrained_path(), model=CapsNet(routing_bias=True))
