"""The Fig. 4 slider panel for JupyterLab: pick a test digit, drag one slider per dimension of its
predicted capsule, and watch the decoder redraw the digit."""
import io

import ipywidgets as widgets
import matplotlib.image
import torch

from ..model import DIGIT_CAPS_DIM, check_images, check_labels, require_decoder
from .dimensions import decode_moved, moved_capsules


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
        require_decoder(model)
        check_images(images, model.config.image_size)
        check_labels(labels, images.shape[0])
        if images.shape[0] == 0:
            raise ValueError("the perturbation panel needs at least one image")
        self.model, self.images, self.labels = model.eval(), images, labels
        self.digit = widgets.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="test digit")
        self.sliders = [widgets.FloatSlider(value=0.0, min=-slider_range, max=slider_range, step=slider_step,
                                      description=f"dim {d}", continuous_update=True, readout_format="+.2f")
                        for d in range(DIGIT_CAPS_DIM)]
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

    def offsets(self):
        """The sliders' values: (1, 16)."""
        return torch.tensor([[slider.value for slider in self.sliders]])

    def perturbed_capsules(self):
        """The chosen digit's capsules with the slider offsets added to the predicted one: (10, 16)."""
        return moved_capsules(self.capsules[None], torch.tensor([self.predicted]), self.offsets())[0]

    @torch.no_grad()
    def reconstruction(self):
        """The current reconstruction (28, 28)."""
        return decode_moved(self.model, self.capsules[None], torch.tensor([self.predicted]), self.offsets())[0, 0]

    def redraw(self):
        self.image.value = image_png(self.reconstruction())

    def reset(self):
        """All sliders back to 0, which redraws the unperturbed reconstruction."""
        self._resetting = True         # one redraw at the end, not one per slider
        for slider in self.sliders:
            slider.value = 0.0
        self._resetting = False
        self.redraw()
