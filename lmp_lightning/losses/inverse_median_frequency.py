"""Cross-entropy weighted by inverse median frequency (Eigen and Fergus, ICCV 2015)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.losses.base import Reduction, SegmentationLoss, register_loss
from lmp_lightning.losses.functional import median_frequency_weights
from lmp_lightning.losses.functional.pixel import upcast

__all__ = ["InverseMedianFrequencyCrossEntropy"]


@register_loss("imf_ce")
class InverseMedianFrequencyCrossEntropy(SegmentationLoss):
    """Class-weighted cross-entropy with ``weight_c = median(freq) / freq_c``.

    ``freq_c`` is the pixel count of class ``c`` over the labelled pixels of the images in which
    ``c`` appears. The weights come either explicitly (``class_weights``), from a table of
    per-image class pixel counts (``per_image_counts``), or later from the data side through
    :meth:`set_pixel_statistics`. The loss is the weighted mean over valid pixels,
    ``sum_i w_{y_i} l_i / sum_i w_{y_i}``, as ``torch.nn.functional.cross_entropy`` defines it.

    Args:
        class_weights: explicit ``(C,)`` class weights.
        per_image_counts: ``(num_images, C)`` labelled pixel counts per image and class.
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).

    Raises:
        ValueError: both ``class_weights`` and ``per_image_counts`` given, or negative weights.

    Example:
        >>> import torch
        >>> loss = InverseMedianFrequencyCrossEntropy(class_weights=[1.0, 3.0])
        >>> loss(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]))
        tensor(0.6931)
    """

    class_weights: Tensor

    def __init__(
        self,
        class_weights: Sequence[float] | Tensor | None = None,
        per_image_counts: Sequence[Sequence[int]] | Tensor | None = None,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(ignore_index, validate_args, reduction)
        if class_weights is not None and per_image_counts is not None:
            raise ValueError("give either class_weights or per_image_counts, not both")
        self.register_buffer("class_weights", torch.empty(0))
        if class_weights is not None:
            weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if weights.ndim != 1 or bool((weights < 0).any()) or not bool(weights.isfinite().all()):
                raise ValueError(
                    f"class_weights must be a 1-D sequence of finite values >= 0, got {weights}"
                )
            self.class_weights = weights
        elif per_image_counts is not None:
            self.set_pixel_statistics(per_image_counts)

    def set_pixel_statistics(self, per_image_counts: Sequence[Sequence[int]] | Tensor) -> None:
        """Sets the class weights from ``(num_images, C)`` per-image class pixel counts."""
        device = self.class_weights.device
        self.class_weights = median_frequency_weights(per_image_counts).to(device)

    def setup(self, datamodule: Any | None) -> None:
        """Sets the class weights from the data module's ``per_image_counts()`` when none were
        given.

        Raises:
            ValueError: no class weights and no data module with ``per_image_counts()``.
        """
        if self.class_weights.numel() > 0:
            return
        counts = getattr(datamodule, "per_image_counts", None)
        if counts is None:
            raise ValueError(
                "InverseMedianFrequencyCrossEntropy needs class statistics: give "
                "--model.loss.class_weights, or use a data module with per_image_counts()"
            )
        self.set_pixel_statistics(counts())

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        num_classes = logits.shape[1]
        if self.class_weights.numel() == 0:
            raise RuntimeError(
                "InverseMedianFrequencyCrossEntropy has no class weights yet: pass class_weights "
                "or per_image_counts, or call setup() with a data module that has "
                "per_image_counts()"
            )
        if self.class_weights.numel() != num_classes:
            raise ValueError(
                f"class_weights has {self.class_weights.numel()} entries but the logits have "
                f"{num_classes} classes"
            )
        dtype = torch.promote_types(logits.dtype, torch.float32)
        weights = self.class_weights.to(device=logits.device, dtype=dtype)
        total = F.cross_entropy(
            upcast(logits), target, weight=weights, ignore_index=self._ignore, reduction="sum"
        )
        if self.reduction == "sum":
            return total
        valid = target != self._ignore  # a product, not a mask index: no host sync
        denominator = (weights[target.clamp(0, num_classes - 1)] * valid).sum()
        return total / denominator.clamp(min=torch.finfo(total.dtype).tiny)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.class_weights.numel()}, ignore_index={self.ignore_index}"
            f"{self._reduction_repr()}"
        )
