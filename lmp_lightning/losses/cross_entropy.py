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
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).

    Example:
        >>> import torch
        >>> loss = CrossEntropy()
        >>> logits = torch.zeros(1, 4, 2, 2)
        >>> loss(logits, torch.tensor([[[0, 1], [2, 255]]]))  # log(4) on 3 valid pixels
        tensor(1.3863)
    """

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        losses, valid = pixel_cross_entropy(logits, target, self._ignore)  # fast backward
        return self._reduce_pixels(losses, valid)
