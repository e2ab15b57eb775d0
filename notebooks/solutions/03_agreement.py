"""One solution to the exercise of notebook 03_dynamic_routing.ipynb. Try your own first."""
import torch


def agreement(u_hat, v):
    """u_hat_j|i . v_j for every child i and parent j: (B, I, J, D), (B, J, D) -> (B, I, J)."""
    return (u_hat * v.unsqueeze(1)).sum(dim=-1)
