import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from capsnet_lib import CapsNet, load_pretrained
from capsnet_lib.figures.panel import perturbation_panel
from capsnet_lib.figures.viz import PERTURBATION_STEPS, perturb, plot_perturbation_grid, plot_reconstructions


@pytest.fixture(scope="module")
def model():
    return load_pretrained()


def test_perturb_changes_only_the_named_dimension(model, test_digits):
    images, labels = test_digits
    caps = model(images[:1]).digit_caps[0].detach()
    grid = perturb(model, caps, int(labels[0]))
    assert grid.shape == (16, 11, 28, 28)
    middle = PERTURBATION_STEPS.abs().argmin()                     # the 0.00 column
    unperturbed = model.decode(caps[None], labels[:1])[0, 0].detach()
    assert torch.allclose(grid[:, middle], unperturbed.expand(16, 28, 28), atol=1e-6)
    assert (grid[:, 0] - grid[:, -1]).abs().amax(dim=(1, 2)).min() > 0.01, "every dimension must matter"


def test_panel_slider_changes_the_capsule_and_the_image(model, test_digits):
    images, labels = test_digits
    panel = perturbation_panel(model, images[:5], labels[:5])
    before_png, before_image = panel.image.value, panel.reconstruction()
    before_caps = panel.perturbed_capsules()
    panel.sliders[3].value = 0.2
    after_caps = panel.perturbed_capsules()
    assert torch.allclose(after_caps[panel.predicted, 3] - before_caps[panel.predicted, 3], torch.tensor(0.2))
    changed = (after_caps - before_caps).abs() > 0
    assert changed.sum() == 1, "one slider moves one dimension of one capsule"
    assert panel.image.value != before_png
    assert (panel.reconstruction() - before_image).abs().max() > 0.01


def test_panel_reset_restores_the_unperturbed_reconstruction(model, test_digits):
    images, labels = test_digits
    panel = perturbation_panel(model, images[:5], labels[:5])
    original = panel.image.value
    for slider in panel.sliders[:4]:
        slider.value = -0.15
    assert panel.image.value != original
    panel.reset_button.click()
    assert all(slider.value == 0 for slider in panel.sliders)
    assert panel.image.value == original


def test_panel_digit_selector_switches_digit_and_resets(model, test_digits):
    images, labels = test_digits
    panel = perturbation_panel(model, images[:5], labels[:5])
    panel.sliders[0].value = 0.1
    panel.digit.value = 2
    assert f"label {int(labels[2])}" in panel.caption.value
    assert all(slider.value == 0 for slider in panel.sliders)


def test_panel_needs_a_decoder():
    with pytest.raises(ValueError, match="needs a CapsNet with a decoder"):
        perturbation_panel(CapsNet(reconstruction=False), torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))


def test_figures_have_the_paper_layout(model, test_digits):
    images, labels = test_digits
    with torch.no_grad():
        out = model(images[:6])
    fig = plot_reconstructions(images[:6], out.reconstructions, labels[:6], out.lengths.argmax(1))
    assert len(fig.axes) == 12 and fig.axes[0].get_title().startswith(f"l={int(labels[0])}")
    grid = perturb(model, out.digit_caps[0], int(labels[0]))
    assert len(plot_perturbation_grid(grid).axes) == 16 * 11
