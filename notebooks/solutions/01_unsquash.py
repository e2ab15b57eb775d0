"""One solution to the exercise of notebook 01_squash.ipynb. Try your own first."""
import torch


def unsquash(v):
    """The s whose squash is v (every |v| < 1): |v| = n^2 / (1 + n^2)  =>  n = sqrt(|v| / (1 - |v|))."""
    length = v.norm(dim=-1, keepdim=True)
    return v / length * torch.sqrt(length / (1 - length))
