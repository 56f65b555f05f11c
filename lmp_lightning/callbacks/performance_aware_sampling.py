"""The Lightning callback that wires the training IoU tracker, the performance-aware sampler and
the data together (Rota Bulò et al. 2017, Sections 4 and 5.1: BASE+ and LMP)."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lmp_lightning.errors import InputError
from lmp_lightning.sampling import (
    PerformanceAwareSampler,
    TrainingIoUTracker,
    class_weights_from_iou,
)

__all__ = ["PerformanceAwareSampling"]


class PerformanceAwareSampling(Callback):
    """Performance-aware sampling of training crops, steered by the training IoU.

    The data module owns the sampler (``--data.sampler CropSampling``: crops centred on pixels
    of drawn classes, blended with uniform crops); this callback only sets its class
    probabilities. After every training step it feeds the step's own predictions (the
    ``preds`` that :meth:`SegmentationModule.training_step
    <lmp_lightning.module.SegmentationModule.training_step>` returns) to a
    :class:`~lmp_lightning.sampling.TrainingIoUTracker`; every ``update_every_n_steps`` steps,
    or at every epoch end when that is ``None``, the class probabilities become
    ``g(IoU_c)`` (``1 - IoU`` or ``1 / max(IoU, floor)``) and the tracker resets or decays. It
    logs ``sampler/p_<class>`` (class probabilities) and ``sampler/share_<class>`` (the class
    pixel share of the crops actually drawn in the epoch). Its state (tracker, steps) is saved
    in checkpoints, the sampler's with the data module's, so a resumed run draws what an
    uninterrupted one draws.

    Args:
        weighting: ``"one_minus_iou"`` or ``"inverse_iou"``.
        iou_floor: the floor of ``inverse_iou``.
        update_every_n_steps: recompute the probabilities every N training steps (``None``:
            every epoch).
        decay: ``None`` resets the tracker at every update; a value in ``[0, 1)`` decays it.
        unseen: policy for classes without an IoU estimate (see ``TrainingIoUTracker``).

    Raises:
        ValueError: a bad argument; at ``fit``, a data module without a sampler.
    """

    def __init__(
        self,
        weighting: Literal["one_minus_iou", "inverse_iou"] = "one_minus_iou",
        iou_floor: float = 0.05,
        update_every_n_steps: int | None = None,
        decay: float | None = None,
        unseen: Literal["mean", "worst"] = "mean",
    ) -> None:
        if update_every_n_steps is not None and update_every_n_steps < 1:
            raise ValueError(
                f"update_every_n_steps must be None or >= 1, got {update_every_n_steps}"
            )
        class_weights_from_iou(torch.zeros(1), weighting, iou_floor)  # validates both
        self.weighting, self.iou_floor = weighting, iou_floor
        self.update_every_n_steps, self.decay, self.unseen = update_every_n_steps, decay, unseen
        self.sampler: PerformanceAwareSampler | None = None
        self.tracker: TrainingIoUTracker | None = None
        self.steps = 0
        self._pending: dict[str, Any] | None = None
        self._drawn: torch.Tensor | None = None

    # ---------------------------------------------------------------- wiring
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        data = getattr(trainer, "datamodule", None)  # set up before the callbacks
        self.sampler = getattr(data, "train_sampler", None)
        if data is None or self.sampler is None:
            raise InputError(
                "PerformanceAwareSampling sets the class probabilities of the data module's "
                "crop sampler, and this data module has none: add --data.sampler CropSampling "
                "(sampler: CropSampling in the data section of a config file)"
            )
        self.class_names = list(data.class_names)
        self.tracker = TrainingIoUTracker(
            data.num_classes, data.ignore_index, self.decay, self.unseen
        ).to(pl_module.device)
        if self._pending is not None:
            self._restore(self._pending)

    # ---------------------------------------------------------------- training hooks
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.sampler is not None and self.tracker is not None
        self.tracker.to(pl_module.device)
        self._drawn = torch.zeros(len(self.class_names), dtype=torch.int64)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert self.tracker is not None
        if self._drawn is None:  # resumed mid-epoch: on_train_epoch_start did not run
            self._drawn = torch.zeros(len(self.class_names), dtype=torch.int64)
        preds = outputs.get("preds") if isinstance(outputs, dict) else None
        if preds is None:
            raise RuntimeError(
                "PerformanceAwareSampling needs the training predictions: the "
                "module's training_step must return {'loss', 'preds'}"
            )
        mask = batch["mask"]
        self.tracker.update(preds, mask)
        self._count_drawn(mask)
        self.steps += 1
        if self.update_every_n_steps and self.steps % self.update_every_n_steps == 0:
            self._update_probabilities(pl_module)

    def _count_drawn(self, mask: torch.Tensor) -> None:
        """Adds the batch's labelled pixels per class to ``_drawn``, on the mask's device: no
        host synchronisation (a scatter-add, where ``bincount`` and boolean indexing would
        need one)."""
        num_classes = len(self.class_names)
        assert self._drawn is not None
        if self._drawn.device != mask.device:
            self._drawn = self._drawn.to(mask.device)
        labels = mask.flatten().long()
        labels = torch.where(
            (labels >= 0) & (labels < num_classes), labels, torch.full_like(labels, num_classes)
        )  # the ignore label (and anything else) lands in an extra bin
        counts = torch.zeros(num_classes + 1, dtype=torch.int64, device=mask.device)
        counts.scatter_add_(0, labels, torch.ones_like(labels))
        self._drawn += counts[:num_classes]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.update_every_n_steps is None:
            self._update_probabilities(pl_module)
        if self._drawn is not None and self._drawn.sum() > 0:
            drawn = self._drawn.double().cpu()  # once an epoch
            share = drawn / drawn.sum()
            pl_module.log_dict(
                {
                    f"sampler/share_{n}": float(v)
                    for n, v in zip(self.class_names, share, strict=True)
                }
            )

    def _update_probabilities(self, pl_module: L.LightningModule) -> None:
        assert self.sampler is not None and self.tracker is not None
        weights = class_weights_from_iou(self.tracker.iou(), self.weighting, self.iou_floor)
        self.sampler.set_class_probabilities(weights)
        self.tracker.end_period()
        pl_module.log_dict(
            {
                f"sampler/p_{n}": float(p)
                for n, p in zip(self.class_names, self.sampler.class_probabilities, strict=True)
            }
        )

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        if self.tracker is None:
            return dict(self._pending or {})
        return {"steps": self.steps, "confmat": self.tracker.metric.confmat.detach().cpu().clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.tracker is None:
            self._pending = dict(state_dict)
        else:
            self._restore(state_dict)

    def _restore(self, state: dict[str, Any]) -> None:
        assert self.tracker is not None
        self.steps = int(state["steps"])
        confmat = self.tracker.metric.confmat
        confmat.copy_(state["confmat"].to(confmat.device, confmat.dtype))
        self._pending = None
