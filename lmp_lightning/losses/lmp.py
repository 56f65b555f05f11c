"""Loss max-pooling (LMP) of Rota Bulò, Neuhold and Kontschieder, CVPR 2017."""

from __future__ import annotations

from torch import Tensor

from lmp_lightning.losses.base import Reduction, SegmentationLoss, register_loss
from lmp_lightning.losses.functional import (
    check_p,
    loss_max_pooling,
    pixel_cross_entropy,
    resolve_m,
)

__all__ = ["LossMaxPooling"]


@register_loss("lmp")
class LossMaxPooling(SegmentationLoss):
    """Loss max-pooling over softmax cross-entropy pixel losses, per image (crop).

    Each image's pixel losses are pooled with the optimal weighting of Eq. (4) over the set
    of Eq. (5) (:func:`~lmp_lightning.losses.functional.lmp_weights`), the weights held fixed in
    the gradient (Section 4); the result is the mean over the images with a valid pixel.

    Args:
        p: the p-norm bound, ``p >= 1``: 1 pools the ``m`` highest losses, larger values spread
            the weights (the paper's best Cityscapes value is 1.3).
        m: minimum number of supported pixels, as a fraction in ``(0, 1]`` of each image's
            valid pixels (at least 1). The paper uses 25%.
        m_pixels: the minimum number of supported pixels as an absolute count ``>= 1`` (at most
            the image's valid pixels); it replaces ``m``.
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).

    Raises:
        ValueError: ``p < 1``, ``m`` outside ``(0, 1]`` or ``m_pixels < 1``.

    Example:
        >>> import torch
        >>> loss = LossMaxPooling(p=1.3, m=0.25)
        >>> logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
        >>> value = loss(logits, torch.randint(0, 3, (2, 4, 4)))
        >>> value.backward()
        >>> round(value.item(), 4)  # all pixel losses equal log(3): pooling leaves them so
        1.0986
    """

    def __init__(
        self,
        p: float = 1.3,
        m: float = 0.25,
        m_pixels: int | None = None,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(ignore_index, validate_args, reduction)
        self.p = check_p(p)
        resolve_m(m, Tensor([1]), m_pixels)  # validates m and m_pixels
        self.m, self.m_pixels = float(m), m_pixels

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        losses, valid = pixel_cross_entropy(logits, target, self._ignore)
        return self._reduce_images(
            loss_max_pooling(losses, valid, self.p, self.m, self.m_pixels, check=False), valid
        )

    def extra_repr(self) -> str:
        size = f"m_pixels={self.m_pixels}" if self.m_pixels is not None else f"m={self.m:g}"
        return f"p={self.p:g}, {size}, ignore_index={self.ignore_index}{self._reduction_repr()}"
