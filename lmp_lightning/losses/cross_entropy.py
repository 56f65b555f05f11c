"""Plain softmax cross-entropy, the BASE of both papers."""

from __future__ import annotations

from torch import Tensor

from lmp_lightning.losses.base import SegmentationLoss, register_loss
from lmp_lightning.losses.functional.pixel import pixel_cross_entropy

__all__ = ["CrossEntropy"]


@register_loss("ce")
class CrossEntropy(SegmentationLoss):
    """Softmax cross-entropy averaged over the valid pixels of the batch (BASE).

    Args:
        ignore_index: the label of pixels that take no part in the loss.

    Example:
        >>> import torch
        >>> loss = CrossEntropy()
        >>> logits = torch.zeros(1, 4, 2, 2)
        >>> loss(logits, torch.tensor([[[0, 1], [2, 255]]]))  # log(4) on 3 valid pixels
        tensor(1.3863)
    """

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        losses, valid = pixel_cross_entropy(logits, target, self.ignore_index)  # fast backward
        return losses.sum() / valid.sum().clamp(min=1)
