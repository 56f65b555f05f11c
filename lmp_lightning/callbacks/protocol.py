"""What the callbacks read from a LightningModule, its steps and its batches.

The callbacks (:class:`PerClassResults`, :class:`PerClassGainReport`, :class:`ValidationImages`,
:class:`PerformanceAwareSampling`) work with any LightningModule that follows this protocol, not
only :class:`~lmp_lightning.module.SegmentationModule`:

- **Batches**: a dict with ``"image"`` ``(B, C, H, W)`` and ``"mask"`` ``(B, H, W)`` or
  ``(B, 1, H, W)`` integer labels, or a tuple or list ``(image, mask, ...)``.
- **Steps**: ``validation_step`` (and ``training_step`` for the sampler) returns a dict with
  ``"preds"``, predicted labels ``(B, H, W)``, or ``"logits"`` ``(B, C, H, W)``; the training
  step's dict also holds ``"loss"``.
- **Classes**: the callback's own ``class_names`` argument, else ``class_names`` (or
  ``num_classes``) of the module, of its ``hparams`` or of the data module; the ignore label
  likewise from ``ignore_index`` (``None``: nothing is ignored; nobody saying: 255).

A callback missing one of them raises a :class:`ProtocolError` that names what is missing and
how to provide it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from lmp_lightning.reports.results import ClassResults

__all__ = [
    "DEFAULT_IGNORE_INDEX",
    "ClassResultsCallback",
    "ClassResultsCollector",
    "ProtocolError",
    "batch_image",
    "batch_mask",
    "check_labels",
    "class_setup",
    "step_predictions",
]

DEFAULT_IGNORE_INDEX = 255
"""The ignore label when neither the callback, the module nor the data module names one."""

_UNSET: Any = object()


class ProtocolError(TypeError):
    """A module, step output or batch lacks what a callback needs (the message says what)."""


def _field(batch: Any, key: str, position: int, who: str) -> Tensor:
    if isinstance(batch, Mapping):
        if key in batch:
            return batch[key]
        raise ProtocolError(
            f"{who} needs the batch's {key!r}: the batch is a dict with keys {sorted(batch)}; "
            "give it 'image' and 'mask' entries, or make batches (image, mask) tuples"
        )
    if isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) > position:
        return batch[position]
    raise ProtocolError(
        f"{who} needs the batch's {key}: batches must be dicts with 'image' and 'mask' or "
        f"(image, mask) tuples, got {type(batch).__name__}"
    )


def batch_image(batch: Any, who: str) -> Tensor:
    """The ``(B, C, H, W)`` images of a dict or ``(image, mask)`` batch."""
    return _field(batch, "image", 0, who)


def batch_mask(batch: Any, who: str) -> Tensor:
    """The ``(B, H, W)`` labels of a dict or ``(image, mask)`` batch (a ``(B, 1, H, W)`` mask
    loses its channel)."""
    mask = _field(batch, "mask", 1, who)
    if not isinstance(mask, Tensor):
        raise ProtocolError(f"{who} needs the batch's mask as a tensor, got {type(mask).__name__}")
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise ProtocolError(
            f"{who} needs (B, H, W) or (B, 1, H, W) masks, got shape {tuple(mask.shape)}"
        )
    return mask


def step_predictions(outputs: Any, who: str, step: str) -> Tensor:
    """The ``(B, H, W)`` predicted labels of a step's output: ``outputs["preds"]``, or the
    argmax of ``outputs["logits"]``."""
    if isinstance(outputs, Mapping):
        if outputs.get("preds") is not None:
            preds = outputs["preds"]
            if isinstance(preds, Tensor) and preds.ndim == 3:
                return preds
            shape = tuple(preds.shape) if isinstance(preds, Tensor) else type(preds).__name__
            raise ProtocolError(f"{who}: {step}'s 'preds' must be (B, H, W) labels, got {shape}")
        if outputs.get("logits") is not None:
            logits = outputs["logits"]
            if isinstance(logits, Tensor) and logits.ndim == 4:
                return logits.detach().argmax(1)
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ProtocolError(f"{who}: {step}'s 'logits' must be (B, C, H, W), got {shape}")
    got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
    returns = (
        "{'loss': loss, 'preds': logits.argmax(1)}"
        if step == "training_step"
        else ("{'preds': logits.argmax(1)}")
    )
    raise ProtocolError(
        f"{who} needs the predictions of {step}: return {returns} (or 'logits') from "
        f"{step}; it returned {got}"
    )


def _lookup(trainer: L.Trainer, pl_module: L.LightningModule, name: str) -> Any:
    """``name`` from the module, its hparams, or the data module; ``_UNSET`` if none has it."""
    hparams = getattr(pl_module, "hparams", {})
    data = getattr(trainer, "datamodule", None)
    for source in (pl_module, hparams, data, getattr(data, "hparams", {})):
        if isinstance(source, Mapping):
            if name in source:
                return source[name]
        elif source is not None and name in dir(source):
            return getattr(source, name)
    return _UNSET


def class_setup(
    trainer: L.Trainer,
    pl_module: L.LightningModule,
    who: str,
    class_names: Sequence[str] | None = None,
    ignore_index: int | Literal["auto"] | None = "auto",
    num_classes: int | None = None,
) -> tuple[list[str], int | None]:
    """The class names and ignore label a callback works with (see the module docstring).

    Args:
        trainer: the trainer.
        pl_module: the module.
        who: the callback's name, for messages.
        class_names: the callback's own class names, if given.
        ignore_index: the callback's own ignore label, if given (``None``: nothing ignored).
        num_classes: a class count known otherwise (the sampler's), used when nothing names
            the classes.

    Raises:
        ProtocolError: nothing says how many classes there are.
    """
    names: Any = class_names
    if names is None:
        names = _lookup(trainer, pl_module, "class_names")
    if names is _UNSET or names is None:
        count = _lookup(trainer, pl_module, "num_classes")
        count = num_classes if count is _UNSET or count is None else count
        if count is None:
            raise ProtocolError(
                f"{who} needs the classes: give the callback class_names=[...], or give the "
                "module or the data module a class_names (or num_classes) attribute or "
                "hyper-parameter"
            )
        names = [f"class_{i}" for i in range(int(count))]
    if ignore_index == "auto":
        ignore_index = _lookup(trainer, pl_module, "ignore_index")
        ignore_index = DEFAULT_IGNORE_INDEX if ignore_index is _UNSET else ignore_index
    return [str(n) for n in names], None if ignore_index is None else int(ignore_index)


def check_labels(mask: Tensor, num_classes: int, ignore_index: int | None, who: str) -> None:
    """Raises ``ValueError`` for a label outside ``[0, num_classes)`` that is not ignored."""
    bad = (mask < 0) | (mask >= num_classes)
    if ignore_index is not None:
        bad &= mask != ignore_index
    if bool(bad.any()):
        values = torch.unique(mask[bad])[:10].tolist()
        ignored = f" and not the ignore label {ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"{who}: the batch's mask has labels {values} outside [0, {num_classes}){ignored}"
        )


class ClassResultsCollector:
    """Per-class IoU and labelled pixel counts of one split from a torchmetrics confusion
    matrix, fed with the step's predictions and the batch's labels (synchronised across
    processes when read)."""

    def __init__(self, class_names: Sequence[str], ignore_index: int | None) -> None:
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        self.confmat = MulticlassConfusionMatrix(
            len(self.class_names), ignore_index=ignore_index, validate_args=False
        )

    def reset(self) -> None:
        self.confmat.reset()

    @torch.no_grad()
    def update(self, preds: Tensor, mask: Tensor, who: str) -> None:
        check_labels(mask, len(self.class_names), self.ignore_index, who)
        self.confmat.to(preds.device)
        self.confmat.update(preds, mask)

    @property
    def updated(self) -> bool:
        return bool(self.confmat.update_called)

    def results(self, split: str, config: dict[str, Any] | None = None) -> ClassResults:
        """The :class:`~lmp_lightning.reports.ClassResults` of what was fed since the reset."""
        matrix = self.confmat.compute().double().cpu()
        hits = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - hits
        iou = torch.where(union > 0, hits / union.clamp(min=1), torch.nan)
        return ClassResults(
            class_names=list(self.class_names),
            iou=iou.tolist(),
            pixel_counts=[int(v) for v in matrix.sum(1).long()],
            miou=float(iou.nanmean()),
            split=split,
            config=dict(config or {}),
        )


class ClassResultsCallback(Callback):
    """Base of the callbacks that read per-class results of validation (and test) epochs: from
    :meth:`SegmentationModule.class_results
    <lmp_lightning.module.SegmentationModule.class_results>` when the module has it, otherwise
    computed here from what every ``validation_step`` (``test_step``) returns and the batch's
    labels (see the module docstring).

    Args:
        class_names: the classes, where neither the module nor the data module names them.
        ignore_index: the ignore label (``None``: nothing ignored; ``"auto"``: the module's or
            the data module's ``ignore_index``, else 255).
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        ignore_index: int | Literal["auto"] | None = "auto",
    ) -> None:
        self.class_names = None if class_names is None else list(class_names)
        self.ignore_index = ignore_index
        self._collectors: dict[str, ClassResultsCollector] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._collectors = {}
        if callable(getattr(pl_module, "class_results", None)):
            return  # SegmentationModule keeps its own metrics
        names, ignore = class_setup(
            trainer, pl_module, type(self).__name__, self.class_names, self.ignore_index
        )
        self._collectors = {s: ClassResultsCollector(names, ignore) for s in ("val", "test")}

    def _start(self, split: str) -> None:
        if split in self._collectors:
            self._collectors[split].reset()

    def _update(self, split: str, outputs: Any, batch: Any) -> None:
        collector = self._collectors.get(split)
        if collector is None:
            return
        who = type(self).__name__
        step = "validation_step" if split == "val" else "test_step"
        collector.update(step_predictions(outputs, who, step), batch_mask(batch, who), who)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("test")

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update("val", outputs, batch)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update("test", outputs, batch)

    def split_results(self, pl_module: L.LightningModule, split: str) -> ClassResults | None:
        """The results of the split's last epoch; ``None`` if none has run."""
        collector = self._collectors.get(split)
        if collector is None:
            return pl_module.class_results(split)  # type: ignore[operator]
        if not collector.updated:
            return None
        return collector.results(split)
