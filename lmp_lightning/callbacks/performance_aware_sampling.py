"""The Lightning callback that wires the training IoU tracker, the performance-aware sampler and
the data together (Rota Bulò et al. 2017, Sections 4 and 5.1: BASE+ and LMP)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lmp_lightning.callbacks.protocol import batch_mask, class_setup, step_predictions
from lmp_lightning.errors import InputError
from lmp_lightning.sampling import (
    PerformanceAwareSampler,
    TrainingIoUTracker,
    class_weights_from_iou,
)

__all__ = ["PerformanceAwareSampling"]


_NO_SAMPLER = (
    "PerformanceAwareSampling steers a PerformanceAwareSampler, and found none: {where}. With "
    "SegmentationDataModule pass sampler=CropSampling() (on the command line, add --data.sampler "
    "CropSampling; in a config file, sampler: CropSampling in the data section); with your own "
    "DataLoader, train on DataLoader(ClassCenteredCrops(dataset, stats, crop_size), "
    "sampler=PerformanceAwareSampler(stats)) and pass the sampler here: "
    "PerformanceAwareSampling(sampler=...)"
)


class PerformanceAwareSampling(Callback):
    """Performance-aware sampling of training crops, steered by the training IoU.

    It sets the class probabilities of a :class:`~lmp_lightning.sampling.PerformanceAwareSampler`:
    the one given as ``sampler``, else the data module's ``train_sampler``
    (:class:`~lmp_lightning.data.SegmentationDataModule` with ``sampler=CropSampling()``, on the
    command line ``--data.sampler CropSampling``), else the sampler of the training
    ``DataLoader`` (a user's ``DataLoader(ClassCenteredCrops(...), sampler=sampler)``). After
    every training step it feeds the step's predictions to a
    :class:`~lmp_lightning.sampling.TrainingIoUTracker`; every ``update_every_n_steps`` steps,
    or at every epoch end when that is ``None``, the class probabilities become ``g(IoU_c)``
    (``1 - IoU`` or ``1 / max(IoU, floor)``) and the tracker resets or decays. It logs
    ``sampler/p_<class>`` (class probabilities) and ``sampler/share_<class>`` (the class pixel
    share of the crops actually drawn in the epoch). Its state (tracker, steps) is saved in
    checkpoints, the sampler's with the data module's, so a resumed run draws what an
    uninterrupted one draws.

    Any LightningModule works that follows the protocol of
    :mod:`lmp_lightning.callbacks.protocol`: ``training_step`` returns ``{"loss": ...,
    "preds": (B, H, W)}`` (or ``"logits"``), batches are dicts with ``"mask"`` or ``(image,
    mask)`` tuples; the class names come from the module or data module (``class_names``) or
    this callback's argument, else they are numbered.

    Args:
        weighting: ``"one_minus_iou"`` or ``"inverse_iou"``.
        iou_floor: the floor of ``inverse_iou``.
        update_every_n_steps: recompute the probabilities every N training steps (``None``:
            every epoch).
        decay: ``None`` resets the tracker at every update; a value in ``[0, 1)`` decays it.
        unseen: policy for classes without an IoU estimate (see ``TrainingIoUTracker``).
        sampler: the sampler to steer (Python use with a DataLoader of your own; found by
            itself otherwise).
        class_names: the classes, where neither the module nor the data module names them.
        ignore_index: the ignore label (``None``: nothing ignored; ``"auto"``: the module's or
            the data module's ``ignore_index``, else 255).

    Raises:
        ValueError: a bad argument; at ``fit``, no sampler to steer.
    """

    def __init__(
        self,
        weighting: Literal["one_minus_iou", "inverse_iou"] = "one_minus_iou",
        iou_floor: float = 0.05,
        update_every_n_steps: int | None = None,
        decay: float | None = None,
        unseen: Literal["mean", "worst"] = "mean",
        sampler: PerformanceAwareSampler | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | Literal["auto"] | None = "auto",
    ) -> None:
        if update_every_n_steps is not None and update_every_n_steps < 1:
            raise ValueError(
                f"update_every_n_steps must be None or >= 1, got {update_every_n_steps}"
            )
        if sampler is not None and not isinstance(sampler, PerformanceAwareSampler):
            raise TypeError(
                f"sampler must be a PerformanceAwareSampler, got {type(sampler).__name__}"
            )
        class_weights_from_iou(torch.zeros(1), weighting, iou_floor)  # validates both
        self.weighting, self.iou_floor = weighting, iou_floor
        self.update_every_n_steps, self.decay, self.unseen = update_every_n_steps, decay, unseen
        self._given = sampler
        self._class_names = None if class_names is None else list(class_names)
        self._ignore_index = ignore_index
        self.sampler: PerformanceAwareSampler | None = None
        self.tracker: TrainingIoUTracker | None = None
        self.class_names: list[str] = []
        self.steps = 0
        self._pending: dict[str, Any] | None = None
        self._drawn: torch.Tensor | None = None

    # ---------------------------------------------------------------- wiring
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.sampler, self.tracker = self._given, None
        data = getattr(trainer, "datamodule", None)  # set up before the callbacks
        if self.sampler is None and data is not None and hasattr(data, "train_sampler"):
            self.sampler = data.train_sampler
            if self.sampler is None:
                raise InputError(_NO_SAMPLER.format(where="the data module has no train_sampler"))
        if self.sampler is not None:
            self._start_tracking(trainer, pl_module)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.tracker is not None:
            return
        loader = trainer.train_dataloader  # a DataLoader of the user's own
        for sampler in (
            getattr(loader, "sampler", None),
            getattr(getattr(loader, "batch_sampler", None), "sampler", None),
            getattr(getattr(loader, "sampler", None), "sampler", None),  # in a SamplerShard
        ):
            if isinstance(sampler, PerformanceAwareSampler):
                self.sampler = sampler
                break
        else:
            found = type(getattr(loader, "sampler", None)).__name__
            raise InputError(
                _NO_SAMPLER.format(
                    where=f"none was passed, and the training DataLoader's sampler is a {found}"
                )
            )
        self._start_tracking(trainer, pl_module)

    def _start_tracking(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.sampler is not None
        num_classes = self.sampler.stats.num_classes
        self.class_names, ignore_index = class_setup(
            trainer,
            pl_module,
            type(self).__name__,
            self._class_names,
            self._ignore_index,
            num_classes=num_classes,
        )
        if len(self.class_names) != num_classes:
            raise InputError(
                f"PerformanceAwareSampling: the sampler's class statistics have {num_classes} "
                f"classes, but the run names {len(self.class_names)}: {self.class_names}"
            )
        self.tracker = TrainingIoUTracker(num_classes, ignore_index, self.decay, self.unseen).to(
            pl_module.device
        )
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
        who = type(self).__name__
        preds = step_predictions(outputs, who, "training_step")
        mask = batch_mask(batch, who)
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
