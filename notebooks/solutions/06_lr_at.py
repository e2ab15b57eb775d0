"""One solution to the exercise of notebook 06_training.ipynb. Try your own first."""


def lr_at(step, lr=1e-3, decay=0.96, decay_steps=2000):
    """The learning rate after `step` optimizer steps: lr * decay ** (step / decay_steps)."""
    return lr * decay ** (step / decay_steps)
