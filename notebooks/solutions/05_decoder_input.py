"""One solution to the exercise of notebook 05_decoder.ipynb. Try your own first."""
import torch


def decoder_input(digit_caps, labels):
    """Keep the capsule named by each label, zero the other nine, flatten: (B, 10, 16) -> (B, 160)."""
    keep = torch.nn.functional.one_hot(labels, digit_caps.shape[1]).to(digit_caps.dtype)   # (B, 10)
    return (digit_caps * keep.unsqueeze(-1)).flatten(1)
