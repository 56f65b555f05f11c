"""Online bootstrapping (Wu, Shen and van den Hengel 2016): the mean of the K highest losses."""

from __future__ import annotations

from torch import Tensor

from lmp_lightning.losses.base import Reduction, SegmentationLoss, register_loss
from lmp_lightning.losses.functional import loss_max_pooling, pixel_cross_entropy, resolve_m

__all__ = ["BootstrappedCrossEntropy"]


@register_loss("bootstrap")
class BootstrappedCrossEntropy(SegmentationLoss):
    """Per image, the mean of the ``k`` highest cross-entropy pixel losses.

    This is loss max-pooling with ``p = 1`` and ``m = k`` (Section 3.2 of Rota Bulò et al.
    2017), and is computed by the same function; a fractional ``k`` gives the remainder pixel
    its fractional share.

    Args:
        k: the fraction in ``(0, 1]`` of each image's valid pixels that is kept (at least 1).
        k_pixels: the number of pixels kept, an absolute count ``>= 1`` (at most the image's
            valid pixels); it replaces ``k``.
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[[[2.0, 0.0, 0.0]], [[0.0, 0.0, 2.0]]]])  # (1, 2, 1, 3)
        >>> target = torch.tensor([[[0, 0, 0]]])
        >>> BootstrappedCrossEntropy(k_pixels=1)(logits, target)  # the single highest loss
        tensor(2.1269)
    """

    def __init__(
        self,
        k: float = 0.25,
        k_pixels: int | None = None,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(ignore_index, validate_args, reduction)
        resolve_m(k, Tensor([1]), k_pixels)  # validates k and k_pixels
        self.k, self.k_pixels = float(k), k_pixels

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        losses, valid = pixel_cross_entropy(logits, target, self._ignore)
        return self._reduce_images(
            loss_max_pooling(losses, valid, 1.0, self.k, self.k_pixels, check=False), valid
        )

    def extra_repr(self) -> str:
        size = f"k_pixels={self.k_pixels}" if self.k_pixels is not None else f"k={self.k:g}"
        return f"{size}, ignore_index={self.ignore_index}{self._reduction_repr()}"
