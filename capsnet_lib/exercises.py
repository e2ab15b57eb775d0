"""Checks for the notebooks' exercises: a clear verdict on the reader's answer, never a traceback."""
import torch


class NotYet(AssertionError):
    """The reader's answer is not right yet; the message says what differs and gives a hint."""


def check(what, answer, expected, hint="", atol=1e-5):
    """Compare the reader's `answer` with `expected` (tensors, numbers, or tuples of them).

    Prints a line that says it is right, or raises NotYet saying what is wrong and hinting why.
    """
    problem = _difference(answer, expected, atol)
    if problem:
        raise NotYet(f"{what}: not yet. {problem}" + (f" Hint: {hint}" if hint else ""))
    print(f"{what}: correct")


def _difference(answer, expected, atol):
    if isinstance(expected, torch.Tensor):
        if not isinstance(answer, torch.Tensor):
            return f"expected a tensor, got {type(answer).__name__}."
        if answer.shape != expected.shape:
            return f"expected shape {tuple(expected.shape)}, got {tuple(answer.shape)}."
        if not torch.isfinite(answer).all():
            return "the answer holds nan or inf."
        gap = (answer.float() - expected.float()).abs().max().item()
        return "" if gap <= atol else f"the largest difference is {gap:.3g} (allowed {atol:g})."
    if isinstance(expected, (tuple, list)):
        if not isinstance(answer, (tuple, list)) or len(answer) != len(expected):
            return f"expected {len(expected)} values, got {answer!r}."
        return next((p for p in (_difference(a, e, atol) for a, e in zip(answer, expected)) if p), "")
    if isinstance(answer, torch.Tensor):
        answer = answer.item() if answer.numel() == 1 else answer
    try:
        gap = abs(float(answer) - float(expected))
    except (TypeError, ValueError):
        return f"expected {expected!r}, got {answer!r}."
    return "" if gap <= atol * max(1.0, abs(float(expected))) else f"expected {expected}, got {answer}."


# The notebooks' exercises, each checked on the cases where the plausible wrong answers differ.

def check_primary_capsule_count(primary_capsule_count, model, sizes=(28, 29, 36, 40, 41)):
    """Notebook 00: capsules for S x S images, against the model's own convolutions. Odd sizes
    (29, 41) tell a floored stride apart from an unfloored one and from an off-by-one."""
    for size in sizes:
        with torch.no_grad():
            grid = model.primary_caps.conv(torch.relu(model.conv1(torch.zeros(1, 1, size, size)))).shape[-1]
        check(f"primary capsules of a {size}x{size} image", primary_capsule_count(size), 32 * grid ** 2,
              hint="a convolution with kernel k and stride s turns n pixels into (n - k) // s + 1")


@torch.no_grad()
def check_decoder_input(decoder_input, model, images, labels):
    """Notebook 05: the masked, flattened capsules, decoded and compared with model.decode, once with
    the true labels and once with labels the model did not predict (masking by the prediction
    instead of the label passes the first and fails the second)."""
    output = model(images)
    predicted = output.lengths.argmax(dim=1)
    not_predicted = (predicted + 1 + torch.arange(len(labels)) % 9) % 10        # never the prediction
    for what, given in (("true labels", labels), ("labels the model did not predict", not_predicted)):
        yours = model.decoder.net(decoder_input(output.digit_caps, given)).view(-1, *images.shape[1:])
        check(f"decoder input, {what}", yours, model.decode(output.digit_caps, given), atol=1e-5,
              hint="keep the capsule each *label* names (not the longest one): one_hot(labels) is (B, 10); "
                   "give it a trailing axis to multiply the (B, 10, 16) capsules")


def check_lr_at(lr_at, config, steps=(1, 1000, 2000, 3000, 5000)):
    """Notebook 06: lr_at(step) against the real schedule. Steps between multiples of 2,000 tell a
    continuous decay from a staircase one."""
    from .schedules import make_schedule
    from .train import make_optimizer

    optimizer = make_optimizer(torch.nn.Linear(1, 1), config)
    schedule = make_schedule(optimizer, config)
    for step in range(1, max(steps) + 1):
        optimizer.step()
        schedule.step()
        if step in steps:
            check(f"lr after {step} steps", lr_at(step), optimizer.param_groups[0]["lr"], atol=1e-7,
                  hint="the exponent is step / 2000, not a whole number of decays")
