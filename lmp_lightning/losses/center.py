"""Center loss (Wen et al. 2016), the locally adaptive loss paper's other counterpart."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.losses.base import Reduction, SegmentationLoss, register_loss
from lmp_lightning.losses.functional.center import (
    center_distances,
    center_update,
    nearest_labels,
)
from lmp_lightning.losses.functional.pixel import upcast

__all__ = ["CenterLoss"]


@register_loss("center")
class CenterLoss(SegmentationLoss):
    """Cross-entropy plus ``lambda_`` times the mean squared distance of each valid pixel's
    decoder feature to its class centre.

    The centres are state (a buffer, saved in checkpoints), created as zeros at the first call
    once the number of classes and the feature width are known, and moved after every training
    call by the rule of Wen et al. 2016 (Eq. 4) with rate ``alpha``; the distance term's gradient
    goes to the features only. Features come at the decoder's resolution, covering the image:
    the labels are taken at their pixels (nearest neighbour). The loss declares
    ``needs_features = True``, and :class:`~lmp_lightning.module.SegmentationModule` then hands
    it the input of the model's segmentation head from the same forward pass in training.

    Args:
        lambda_: weight of the centre term (3e-4 in Guo et al. 2018).
        alpha: update rate of the centres, in ``(0, 1]`` (0.5 in Guo et al. 2018).
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).

    Raises:
        ValueError: ``lambda_ < 0`` or ``alpha`` outside ``(0, 1]``.

    Example:
        >>> loss = CenterLoss(lambda_=1.0, alpha=0.5)
        >>> logits, features = torch.zeros(1, 2, 2, 2), torch.ones(1, 4, 1, 1)
        >>> value = loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), features=features)
        >>> round(value.item(), 4)  # log 2 + 1.0 * ||(1, 1, 1, 1) - 0||^2
        4.6931
        >>> loss.centers  # c - alpha * (1 * c - x) / (1 + 1), one feature pixel of class 0
        tensor([[0.2500, 0.2500, 0.2500, 0.2500],
                [0.0000, 0.0000, 0.0000, 0.0000]])
    """

    needs_features: ClassVar[bool] = True
    centers: Tensor

    def __init__(
        self,
        lambda_: float = 3e-4,
        alpha: float = 0.5,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(ignore_index, validate_args, reduction)
        if not (math.isfinite(lambda_) and lambda_ >= 0):
            raise ValueError(f"lambda_ must be a finite number >= 0, got lambda_={lambda_}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got alpha={alpha}")
        self.lambda_ = float(lambda_)
        self.alpha = float(alpha)
        self.register_buffer("centers", torch.empty(0))

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        if features is None:  # the base class's forward has said so already
            raise ValueError("CenterLoss needs the decoder features: call it with features=...")
        labels = nearest_labels(target, (features.shape[-2], features.shape[-1]))
        return self._loss(logits, target, features, labels)

    def _loss(self, logits: Tensor, target: Tensor, features: Tensor, labels: Tensor) -> Tensor:
        num_classes, dim = logits.shape[1], features.shape[1]
        if self.centers.numel() == 0:
            self.centers = torch.zeros(num_classes, dim, device=features.device)
        if tuple(self.centers.shape) != (num_classes, dim):
            raise ValueError(
                f"CenterLoss has centres for {tuple(self.centers.shape)} (classes, feature "
                f"width) but got {num_classes} classes and features of width {dim}"
            )
        valid = target != self._ignore
        ce = F.cross_entropy(upcast(logits), target, ignore_index=self._ignore, reduction="sum")
        squared, count = center_distances(features, labels, self.centers, self._ignore)
        if self.training:
            self.centers = center_update(features, labels, self.centers, self.alpha, self._ignore)
        if self.reduction == "sum":  # each term summed over its pixels
            return ce + self.lambda_ * squared
        return ce / valid.sum().clamp(min=1) + self.lambda_ * squared / count.clamp(min=1)

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        saved = state_dict.get(prefix + "centers")
        if saved is not None and saved.shape != self.centers.shape:
            self.centers = torch.empty_like(saved, device=self.centers.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"lambda_={self.lambda_}, alpha={self.alpha}, ignore_index={self.ignore_index}"
            f"{self._reduction_repr()}"
        )
