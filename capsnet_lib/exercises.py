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
