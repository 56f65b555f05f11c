"""Online bootstrapping (Wu, Shen and van den Hengel 2016): the mean of the K highest losses."""

from __future__ import annotations

from torch import Tensor

from lmp_lightning.losses.base import SegmentationLoss, register_loss
from lmp_lightning.losses.functional import loss_max_pooling, pixel_cross_entropy, resolve_m
from lmp_lightning.losses.lmp import mean_over_valid_images

__all__ = ["BootstrappedCrossEntropy"]


@register_loss("bootstrap")
class BootstrappedCrossEntropy(SegmentationLoss):
    """Per image, the mean of the ``k`` highest cross-entropy pixel losses.

    This is loss max-pooling with ``p = 1`` and ``m = k`` (Section 3.2 of Rota Bulò et al.
    2017), and is computed by the same function; a fractional ``k`` gives the remainder pixel
    its fractional share.

    Args:
        k: a float in ``(0, 1]`` is a fraction of each image's valid pixels (at least 1), an int
            ``>= 1`` an absolute count (at most the image's valid pixels).
        ignore_index: the label of pixels that take no part in the loss.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[[[2.0, 0.0, 0.0]], [[0.0, 0.0, 2.0]]]])  # (1, 2, 1, 3)
        >>> target = torch.tensor([[[0, 0, 0]]])
        >>> BootstrappedCrossEntropy(k=1)(logits, target)  # the single highest loss
        tensor(2.1269)
    """

    def __init__(self, k: int | float = 0.25, ignore_index: int = 255) -> None:
        super().__init__(ignore_index)
        resolve_m(k, Tensor([1]))  # validates k
        self.k = k

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        losses, valid = pixel_cross_entropy(logits, target, self.ignore_index)
        return mean_over_valid_images(loss_max_pooling(losses, valid, 1.0, self.k), valid)

    def extra_repr(self) -> str:
        return f"k={self.k}, ignore_index={self.ignore_index}"
