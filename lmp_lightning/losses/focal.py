"""Softmax focal loss (Lin et al., ICCV 2017), a baseline of the locally adaptive loss paper."""

from __future__ import annotations

import math

from torch import Tensor

from lmp_lightning.losses.base import Reduction, SegmentationLoss, register_loss
from lmp_lightning.losses.functional import softmax_focal_loss

__all__ = ["SoftmaxFocalLoss"]


@register_loss("focal")
class SoftmaxFocalLoss(SegmentationLoss):
    r"""Softmax focal loss :math:`-\alpha (1 - p_t)^\gamma \log p_t`, mean over valid pixels.

    Args:
        alpha: constant weighting factor (0.25 as in Guo et al. 2018).
        gamma: focusing parameter, ``>= 0`` (2 as in Guo et al. 2018).
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).

    Raises:
        ValueError: ``alpha <= 0`` or ``gamma < 0``.

    Example:
        >>> import torch
        >>> loss = SoftmaxFocalLoss(alpha=1.0, gamma=0.0)  # plain cross-entropy
        >>> loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]))
        tensor(0.6931)
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(ignore_index, validate_args, reduction)
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a positive number, got alpha={alpha}")
        if not (gamma >= 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be >= 0, got gamma={gamma}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        losses, valid = softmax_focal_loss(logits, target, self._ignore, self.alpha, self.gamma)
        return self._reduce_pixels(losses, valid)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, gamma={self.gamma}, ignore_index={self.ignore_index}"
            f"{self._reduction_repr()}"
        )
