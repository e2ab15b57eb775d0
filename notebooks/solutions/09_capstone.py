"""One solution to the capstone of notebook 09_capstone.ipynb. Try your own first."""
import torch


def squash(s, eps=1e-8):
    """Eq. 1 along the last axis: (..., D) -> (..., D), length |s|^2 / (1 + |s|^2)."""
    squared = (s * s).sum(dim=-1, keepdim=True)
    return squared / (1 + squared) * s / torch.sqrt(squared + eps)


def primary_capsules(conv_out):
    """(B, 32 * 8, 6, 6) -> (B, 1152, 8): channel t * 8 + k is component k of type t; index t * 36 + y * 6 + x."""
    B, _, H, W = conv_out.shape
    u = conv_out.view(B, 32, 8, H, W).permute(0, 1, 3, 4, 2)      # (B, type, y, x, component)
    return squash(u.reshape(B, 32 * H * W, 8))


def predictions(W, u):
    """Eq. 2, u_hat_j|i = W_ij u_i: W (1152, 10, 16, 8), u (B, 1152, 8) -> (B, 1152, 10, 16)."""
    return torch.einsum("ijdk,bik->bijd", W, u)


def route(u_hat, iterations):
    """Procedure 1: u_hat (B, I, J, D) -> v (B, J, D)."""
    b = torch.zeros(u_hat.shape[:3])                               # (B, I, J), per image
    for _ in range(iterations):
        c = torch.softmax(b, dim=2)                                # over the parents j
        v = squash((c.unsqueeze(-1) * u_hat).sum(dim=1))           # (B, J, D)
        b = b + (u_hat * v.unsqueeze(1)).sum(dim=-1)               # agreement
    return v


def decoder_input(v, classes):
    """Keep the capsule each class names, zero the rest, flatten: (B, 10, 16), (B,) -> (B, 160)."""
    keep = torch.nn.functional.one_hot(classes, v.shape[1]).to(v.dtype)
    return (v * keep.unsqueeze(-1)).flatten(1)


def forward(model, images):
    """images (B, 1, 28, 28) -> lengths (B, 10), reconstructions (B, 1, 28, 28), the model's weights."""
    conv_out = model.primary_caps.conv(torch.relu(model.conv1(images)))         # (B, 256, 6, 6)
    u = primary_capsules(conv_out)                                              # (B, 1152, 8)
    v = route(predictions(model.digit_caps.W.view(1152, 10, 16, 8), u), 3)      # (B, 10, 16)
    lengths = v.norm(dim=-1)                                                    # (B, 10)
    reconstructions = model.decoder.net(decoder_input(v, lengths.argmax(dim=1)))
    return lengths, reconstructions.view(-1, 1, 28, 28)
