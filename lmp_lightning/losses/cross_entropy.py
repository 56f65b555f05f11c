"""Plain softmax cross-entropy, the BASE of both papers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.losses.base import SegmentationLoss, register_loss
from lmp_lightning.losses.functional.pixel import upcast

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
        total = F.cross_entropy(
            upcast(logits), target, ignore_index=self.ignore_index, reduction="sum"
        )
        return total / (target != self.ignore_index).sum().clamp(min=1)
