"""An exponential moving average (EMA) of the weights: Polyak averaging, validated in their place.

After optimizer step n, every weight's average moves toward the weight:

    avg <- d_n * avg + (1 - d_n) * w,        d_n = min(decay, (1 + n) / (10 + n))

The warm-up of d_n (as in TensorFlow's ExponentialMovingAverage with num_updates) lets the average
follow the weights closely at first, so it never carries much of the random initial weights; in a
6-epoch run (2,580 steps) it is still warming up at the end (d = 0.9965), an average of roughly
the last few hundred steps. The average is never fed back into training: the steps, and so the
live weights, are those of a run without it.
"""
import copy

import torch


class WeightAverage:
    """The EMA of `model`'s weights, as a model of its own (`.module`) to validate and save."""

    def __init__(self, model, decay):
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        """Move the average toward `model`'s current weights (call after each optimizer step)."""
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, weight in zip(self.module.parameters(), model.parameters()):
            averaged.lerp_(weight, 1 - keep)

    def state_dict(self):
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state):
        self.updates = state["updates"]
        self.module.load_state_dict(state["weights"])
