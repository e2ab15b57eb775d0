"""The CapsNet losses: margin loss (Eq. 4) and the reconstruction loss (Sec. 4.1)."""
import torch.nn.functional as F

RECONSTRUCTION_WEIGHT = 0.0005  # Sec. 4.1: scaled down so it does not dominate the margin loss
# The authors' released code (research/capsules/models/layers/layers.py) averages its margin cost,
# 0.5 x Eq. 4's per-class terms, over the batch *and* the 10 classes: Eq. 4 / 20. Its reconstruction
# term is 0.0005 x the pixel sum, averaged over the batch only. Adam's steps do not change when the
# whole loss is scaled, so x20 gives Eq. 4 + 0.01 x reconstruction: their weight, relative to Eq. 4.
AUTHORS_RECONSTRUCTION_WEIGHT = 20 * RECONSTRUCTION_WEIGHT      # 0.01


def margin_loss(lengths, labels, m_pos=0.9, m_neg=0.1, lam=0.5):
    """Eq. 4: L_k = T_k max(0, m+ - |v_k|)^2 + lam (1 - T_k) max(0, |v_k| - m-)^2.

    lengths: (B, K) capsule lengths; labels: (B,) class indices. Summed over the K classes,
    averaged over the batch. Both hinges are squared, as in the paper.
    """
    if lengths.dim() != 2 or lengths.shape[0] == 0:
        raise ValueError(f"lengths must be (B, K) with B >= 1, got shape {tuple(lengths.shape)}")
    if labels.shape != lengths.shape[:1] or labels.is_floating_point():
        raise ValueError(f"labels must be {lengths.shape[0]} class indices, shape ({lengths.shape[0]},), to match "
                         f"lengths {tuple(lengths.shape)}; got shape {tuple(labels.shape)}, dtype {labels.dtype}")
    return margin_loss_targets(lengths, F.one_hot(labels.long(), lengths.shape[1]), m_pos, m_neg, lam)


def margin_loss_targets(lengths, targets, m_pos=0.9, m_neg=0.1, lam=0.5):
    """Eq. 4 for any set of present classes: targets (B, K) holds T_k, 1 where class k is present
    (one per image for MNIST, two for MultiMNIST). Summed over k, averaged over the batch."""
    lengths, present = lengths.float(), targets.float()
    loss_present = present * F.relu(m_pos - lengths) ** 2
    loss_absent = lam * (1.0 - present) * F.relu(lengths - m_neg) ** 2
    return (loss_present + loss_absent).sum(dim=1).mean()


def reconstruction_loss(reconstructions, images):
    """Sum of squared pixel errors per image (784 terms on MNIST), averaged over the batch.

    Summed, not averaged, over pixels: with a mean the 0.0005 weight would be 784x too weak.
    """
    if reconstructions.shape != images.shape or images.shape[0] == 0:
        raise ValueError(f"reconstructions {tuple(reconstructions.shape)} and images {tuple(images.shape)} must "
                         "have the same shape, with at least one image")
    diff = reconstructions.float().flatten(1) - images.float().flatten(1)
    return (diff * diff).sum(dim=1).mean()


def capsnet_loss(output, images, labels, reconstruction_weight=RECONSTRUCTION_WEIGHT):
    """Margin loss + 0.0005 x reconstruction loss (the latter only if the model has a decoder)."""
    loss = margin_loss(output.lengths, labels)
    if output.reconstructions is not None:
        loss = loss + reconstruction_weight * reconstruction_loss(output.reconstructions, images)
    return loss
