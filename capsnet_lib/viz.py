"""Figures of the paper and the slider panel: reconstructions (Fig. 3), perturbations (Fig. 4)."""
import io

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import torch

PERTURBATION_STEPS = torch.arange(-5, 6) * 0.05   # Fig. 4: steps of 0.05 in [-0.25, 0.25], 0 exactly


@torch.no_grad()
def perturb(model, digit_caps, label, steps=PERTURBATION_STEPS):
    """Tweak each of the 16 dimensions of capsule `label` by each step; decode every variant.

    digit_caps: (10, 16) of one image. Returns images (16, len(steps), 28, 28).
    """
    dims, n = digit_caps.shape[1], len(steps)
    tweaked = digit_caps.expand(dims, n, *digit_caps.shape).clone()     # (16, n, 10, 16)
    for d in range(dims):
        tweaked[d, :, label, d] += steps
    labels = torch.full((dims * n,), int(label), dtype=torch.long)
    return model.decode(tweaked.flatten(0, 1), labels).view(dims, n, 28, 28)


def show_digits(ax, image, title=None):
    ax.imshow(image.squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def plot_reconstructions(images, reconstructions, labels, predictions, title=None):
    """Fig. 3 layout: inputs on the top row, reconstructions below; (label, prediction) above."""
    n = images.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.6), squeeze=False)
    for k in range(n):
        show_digits(axes[0, k], images[k], f"l={int(labels[k])} p={int(predictions[k])}")
        show_digits(axes[1, k], reconstructions[k])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("reconstruction")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_perturbation_grid(grid, steps=PERTURBATION_STEPS, title=None):
    """grid (16, n, 28, 28) from `perturb`: one row per capsule dimension, one column per step."""
    dims, n = grid.shape[:2]
    fig, axes = plt.subplots(dims, n, figsize=(0.55 * n + 0.8, 0.55 * dims + 0.6), squeeze=False)
    for d in range(dims):
        for k in range(n):
            show_digits(axes[d, k], grid[d, k])
        axes[d, 0].set_ylabel(f"dim {d}", rotation=0, ha="right", va="center", fontsize=8)
    for k in range(n):
        axes[-1, k].set_xlabel(f"{float(steps[k]):+.2f}", fontsize=7)
    fig.suptitle(title or "each row tweaks one of the 16 dimensions of the digit capsule")
    fig.subplots_adjust(left=0.12, right=0.99, bottom=0.05, top=0.94, wspace=0.05, hspace=0.05)
    return fig


def image_png(image, scale=8):
    """A (28, 28) tensor in [0, 1] as PNG bytes, enlarged `scale` times without smoothing."""
    pixels = image.squeeze().clamp(0, 1).cpu()
    pixels = pixels.repeat_interleave(scale, 0).repeat_interleave(scale, 1).numpy()
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, pixels, cmap="gray", vmin=0, vmax=1, format="png")
    return buffer.getvalue()


def perturbation_panel(model, images, labels, **options):
    """The Fig. 4 slider panel: pick a digit, drag 16 sliders, watch the reconstruction.

    model: a CapsNet with a decoder; images (N, 1, 28, 28), labels (N,); options: slider_range
    (default 0.25, as in the paper) and slider_step. Returns a PerturbationPanel, an ipywidgets
    VBox that displays itself and can be driven from code.
    """
    return PerturbationPanel(model, images, labels, **options)


class PerturbationPanel(widgets.VBox):
    """Digit selector, 16 sliders (one per dimension of the chosen digit's capsule), the input
    and its reconstruction side by side, and a reset button."""

    def __init__(self, model, images, labels, slider_range=0.25, slider_step=0.01):
        if model.decoder is None:
            raise ValueError("the perturbation panel needs a CapsNet with a decoder")
        self.model, self.images, self.labels = model.eval(), images, labels
        self.digit = widgets.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="test digit")
        self.sliders = [widgets.FloatSlider(value=0.0, min=-slider_range, max=slider_range, step=slider_step,
                                      description=f"dim {d}", continuous_update=True, readout_format="+.2f")
                        for d in range(16)]
        self.reset_button = widgets.Button(description="reset", icon="undo")
        self.input_image = widgets.Image(format="png", width=168, height=168)
        self.image = widgets.Image(format="png", width=168, height=168)
        self.caption = widgets.HTML()
        self._resetting = False
        self.digit.observe(lambda change: self.select(change["new"]), names="value")
        for slider in self.sliders:
            slider.observe(lambda change: self._resetting or self.redraw(), names="value")
        self.reset_button.on_click(lambda button: self.reset())
        grid = widgets.GridBox(self.sliders, layout=widgets.Layout(grid_template_columns="repeat(2, 330px)"))
        pictures = widgets.HBox([widgets.VBox([widgets.HTML("<b>input</b>"), self.input_image]),
                           widgets.VBox([widgets.HTML("<b>reconstruction</b>"), self.image])])
        super().__init__([widgets.HBox([self.digit, self.reset_button]), self.caption, pictures, grid])
        self.select(0)

    @torch.no_grad()
    def select(self, index):
        """Show test digit `index`: encode it once, reset the sliders, redraw."""
        output = self.model(self.images[index:index + 1])
        self.capsules = output.digit_caps[0]                     # (10, 16)
        self.predicted = int(output.lengths[0].argmax())
        self.input_image.value = image_png(self.images[index])
        self.caption.value = (f"label {int(self.labels[index])}, predicted {self.predicted} "
                              f"(capsule length {float(output.lengths[0].max()):.3f})")
        self.reset()

    def perturbed_capsules(self):
        """The chosen digit's capsules with the slider offsets added to the predicted one: (10, 16)."""
        offsets = torch.tensor([slider.value for slider in self.sliders])
        capsules = self.capsules.clone()
        capsules[self.predicted] += offsets
        return capsules

    @torch.no_grad()
    def reconstruction(self):
        """The current reconstruction (28, 28)."""
        labels = torch.tensor([self.predicted])
        return self.model.decode(self.perturbed_capsules()[None], labels)[0, 0]

    def redraw(self):
        self.image.value = image_png(self.reconstruction())

    def reset(self):
        """All sliders back to 0, which redraws the unperturbed reconstruction."""
        self._resetting = True         # one redraw at the end, not one per slider
        for slider in self.sliders:
            slider.value = 0.0
        self._resetting = False
        self.redraw()
