"""Per-class results of every validation and test: a table on the console and a results file."""

from __future__ import annotations

import dataclasses
import errno
import math
from collections.abc import Sequence
from typing import Literal

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from lmp_lightning.callbacks.protocol import ClassResultsCallback
from lmp_lightning.callbacks.run_dir import run_dir
from lmp_lightning.errors import InputError
from lmp_lightning.reports.results import ClassResults

__all__ = ["PerClassResults", "format_iou_table"]


def format_iou_table(class_names: Sequence[str], iou: Sequence[float], title: str = "") -> str:
    """A plain-text table of per-class IoU in percent; NaN (class absent) shows as ``-``.

    Example:
        >>> print(format_iou_table(["road", "pole"], [0.91, float("nan")]))
        class  IoU (%)
        road     91.00
        pole         -
        mean     91.00
    """
    values = [float(v) for v in iou]
    width = max(len("class"), *(len(n) for n in class_names), len("mean"))
    lines = [title] if title else []
    lines.append(f"{'class':<{width}}  {'IoU (%)':>7}")
    for name, value in zip(class_names, values, strict=True):
        shown = "-" if math.isnan(value) else f"{100 * value:.2f}"
        lines.append(f"{name:<{width}}  {shown:>7}")
    present = [v for v in values if not math.isnan(v)]
    mean = sum(present) / len(present) if present else math.nan
    lines.append(f"{'mean':<{width}}  {100 * mean:>7.2f}")
    return "\n".join(lines)


class PerClassResults(ClassResultsCallback):
    """Per-class results after every validation and test: a table on the console and
    ``results_<split>.json`` (:class:`~lmp_lightning.reports.ClassResults`, what ``lmp-seg
    compare`` reads) in the run's folder (:func:`~lmp_lightning.callbacks.run_dir`).

    ``validate`` and ``test`` print the table and write the file; ``fit`` writes
    ``results_val.json`` at every validation (the file holds the last one) and prints the table
    of its last validation at its end. ``lmp-seg`` adds this callback to every command; from
    Python, add it to the trainer's callbacks.

    The results come from :meth:`SegmentationModule.class_results
    <lmp_lightning.module.SegmentationModule.class_results>`, or, for any other module, from
    what its ``validation_step`` returns (``{"preds": (B, H, W)}`` or ``{"logits": ...}``) and
    the batch's labels (dict batches with ``"mask"`` or ``(image, mask)`` tuples): the protocol
    of :mod:`lmp_lightning.callbacks.protocol`.

    Args:
        class_names: the classes, where neither the module nor the data module names them.
        ignore_index: the ignore label (``None``: nothing ignored; ``"auto"``: the module's or
            the data module's ``ignore_index``, else 255).
        run_name: the run's name in its results files (``lmp-seg`` sets the name of the
            configuration the run was started from), which ``lmp-seg compare`` shows.

    Attributes:
        results: the newest results by split (``"val"``, ``"test"``), for other callbacks.

    Example:
        >>> callback = PerClassResults(class_names=["road", "car"], ignore_index=None)
        >>> callback.results
        {}
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        ignore_index: int | Literal["auto"] | None = "auto",
        run_name: str | None = None,
    ) -> None:
        super().__init__(class_names, ignore_index)
        self.run_name = run_name
        self.results: dict[str, ClassResults] = {}

    def _collect(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.sanity_checking:
            return
        results = self.split_results(pl_module, stage)
        if results is None:
            return
        fitting = trainer.state.fn == TrainerFn.FITTING
        step = trainer.global_step if fitting else None
        results = dataclasses.replace(results, step=step, run=self.run_name)
        self.results[stage] = results
        if fitting or trainer.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING):
            if not fitting:
                title = f"\nPer-class IoU ({stage}):"
                rank_zero_info(format_iou_table(results.class_names, results.iou, title))
            if trainer.is_global_zero:
                path = run_dir(trainer) / f"results_{stage}.json"
                try:
                    results.save(path)
                except OSError as error:
                    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
                    reason = "no space left on the device" if full else error.strerror or error
                    raise InputError(
                        f"cannot write the per-class results {path.name!r} into "
                        f"{str(path.parent)!r}: {reason}"
                    ) from None
                if not fitting:
                    rank_zero_info(f"Per-class results written to {path}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collect(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collect(trainer, pl_module, "test")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = self.results.get("val")
        if results is not None:
            title = "\nPer-class IoU (val, last validation of the run):"
            rank_zero_info(format_iou_table(results.class_names, results.iou, title))
            path = run_dir(trainer) / "results_val.json"
            rank_zero_info(f"Per-class results of the last validation written to {path}")
