"""The one owner of the runtime set-up, and the public API the notebooks rely on."""
import ast
import json
from pathlib import Path

import pytest
import torch

import capsnet_lib as cl

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
DOCUMENTED_MODULES = {"figures.viz", "figures.panel", "figures.dimensions", "exercises",    # the rest is in capsnet_lib
                     "data.translated", "data.multimnist", "data.tasks",                  # Sec. 5.2 and 6 (notebooks 10, 11)
                     "experiments.robustness", "training.evaluation",
                     "experiments.table1"}                                                # Table 1 (notebook 12)


def test_setup_runtime_resolves_the_precision_for_the_device():
    runtime = cl.setup_runtime("cpu", "fp32")
    assert runtime.device == torch.device("cpu") and runtime.precision == "fp32"
    assert cl.setup_runtime("cpu", "auto").precision == cl.resolve_precision("auto", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        cl.setup_runtime("cpu", "fp16")


def test_the_runtime_prepares_model_and_images_in_the_same_layout(seeded):
    runtime = cl.setup_runtime("cpu", "fp32")
    model = runtime.move_model(cl.CapsNet())
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.primary_caps.conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = runtime.images(torch.rand(3, 1, 28, 28).transpose(2, 3))
    assert images.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():   # the layout changes speed, never the numbers
        assert torch.allclose(model(images).lengths, model(images.contiguous()).lengths, atol=1e-5)


def test_the_runtime_autocast_is_bf16_only_when_asked():
    a = torch.randn(4, 4)
    with cl.Runtime(torch.device("cpu"), "bf16").autocast():
        assert (a @ a).dtype == torch.bfloat16
    with cl.Runtime(torch.device("cpu"), "fp32").autocast():
        assert (a @ a).dtype == torch.float32


def test_the_schedule_decays_the_lr_by_the_factor_every_decay_steps(seeded):
    config = cl.TrainConfig(lr=1e-3, lr_decay=0.5, lr_decay_steps=4)
    model = torch.nn.Linear(2, 2)
    optimizer = cl.make_optimizer(model, config)
    schedule = cl.make_schedule(optimizer, config)
    for _ in range(8):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 2)


def test_training_from_the_library_leaves_the_allocator_alone(mnist_root, tmp_path, monkeypatch):
    """A process-wide setting belongs to the process's owner: the command, not run_training."""
    def refuse():
        raise AssertionError("run_training tuned the process's allocator")
    monkeypatch.setattr("capsnet_lib.training.runtime.tune_cpu_allocator", refuse)
    monkeypatch.setattr("capsnet_lib.train.tune_cpu_allocator", refuse)
    history = cl.run_training(cl.TrainConfig(epochs=1, max_steps=1, batch_size=8, train_limit=16, val_limit=16,
                                             device="cpu", data_root=mnist_root, download=False,
                                             out=str(tmp_path / "run"), progress=False))
    assert len(history) == 1


def _code(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    lines = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics are not Python; drop them before parsing
    return ast.parse("\n".join(l for text in lines for l in text.splitlines() if not l.lstrip().startswith("%")))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_only_the_public_api(notebook):
    tree = _code(notebook)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("capsnet_lib."):
            module = node.module[len("capsnet_lib."):]
            assert module in DOCUMENTED_MODULES, f"{notebook.name} imports from capsnet_lib.{module}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cl":
            assert node.attr in cl.__all__, f"{notebook.name} uses cl.{node.attr}, not in capsnet_lib.__all__"


def test_the_public_api_names_only_what_exists():
    assert all(hasattr(cl, name) for name in cl.__all__)
