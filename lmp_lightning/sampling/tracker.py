"""The training IoU tracker that steers the performance-aware sampler."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassJaccardIndex

__all__ = ["TrainingIoUTracker"]


class TrainingIoUTracker(nn.Module):
    """Per-class IoU on the training data, fed from the training step's own predictions.

    A torchmetrics ``MulticlassJaccardIndex(average=None)`` accumulates the confusion matrix
    (synchronised across DDP processes when read). Between two updates of the sampler the
    statistics are either reset (``decay=None``) or multiplied by ``decay`` in ``[0, 1)``, an
    exponential forgetting of older steps.

    Unseen classes: a class that appeared neither in the labels nor in the predictions since
    the statistics began has no IoU estimate (torchmetrics gives NaN); reading it as 0 would
    make it look like the worst class. Policy ``"mean"`` (default) gives such a class the mean
    IoU of the classes with an estimate, so it is drawn like an average class until it is seen;
    ``"worst"`` gives it 0 (explore it first); with no estimate at all every class gets 0.5.

    Args:
        num_classes: number of classes.
        ignore_index: label of the pixels that are not counted (``None``: every pixel counts).
        decay: ``None`` resets at every sampler update; a value in ``[0, 1)`` decays instead.
        unseen: the policy for classes without an estimate, ``"mean"`` or ``"worst"``.

    Example:
        >>> tracker = TrainingIoUTracker(3)
        >>> tracker.update(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 0, 1, 0]]))
        >>> tracker.iou()  # class 2 unseen: the mean of 2/3 and 1/2
        tensor([0.6667, 0.5000, 0.5833])
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        decay: float | None = None,
        unseen: Literal["mean", "worst"] = "mean",
    ) -> None:
        super().__init__()
        if decay is not None and not 0 <= decay < 1:
            raise ValueError(f"decay must be None or in [0, 1), got {decay}")
        if unseen not in ("mean", "worst"):
            raise ValueError(f"unseen must be 'mean' or 'worst', got {unseen!r}")
        self.decay, self.unseen = decay, unseen
        self.metric = MulticlassJaccardIndex(
            num_classes,
            average=None,
            ignore_index=ignore_index,
            zero_division=float("nan"),
            validate_args=False,
        )

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Adds a batch of predicted labels ``(B, H, W)`` against the labels."""
        self.metric.update(preds, target)

    def raw_iou(self) -> Tensor:
        """Per-class IoU, NaN where there is no estimate (synchronised across processes)."""
        return self.metric.compute().float().cpu()

    def iou(self) -> Tensor:
        """Per-class IoU with the unseen-class policy applied."""
        iou = self.raw_iou()
        seen = ~torch.isnan(iou)
        if not bool(seen.any()):
            return torch.full_like(iou, 0.5)
        fill = iou[seen].mean() if self.unseen == "mean" else torch.tensor(0.0)
        return torch.where(seen, iou, fill)

    def end_period(self) -> None:
        """Called at every sampler update: reset, or decay the accumulated statistics."""
        if self.decay is None:
            self.metric.reset()
        else:
            confmat = self.metric.confmat  # integer counts
            confmat.copy_((confmat.double() * self.decay).round())
