"""Per-class results of every validation and test: a table on the console and a results file."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from lmp_lightning.callbacks.run_dir import run_dir
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


class PerClassResults(Callback):
    """Collects the module's per-class results (:meth:`SegmentationModule.class_results
    <lmp_lightning.module.SegmentationModule.class_results>`) after every validation and test.

    ``lmp-seg validate`` and ``test`` print the per-class IoU table and write
    ``results_<split>.json`` (:class:`~lmp_lightning.reports.ClassResults`, what ``lmp-seg
    compare`` reads) into the run's log directory; ``fit`` prints the table of its last
    validation at its end. ``lmp-seg`` adds this callback to every command; from Python, add it
    to the trainer's callbacks.

    Attributes:
        results: the newest results by split (``"val"``, ``"test"``), for other callbacks.
    """

    def __init__(self) -> None:
        self.results: dict[str, ClassResults] = {}

    def _collect(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        class_results = getattr(pl_module, "class_results", None)  # SegmentationModule's
        if trainer.sanity_checking or class_results is None:
            return
        results: ClassResults = class_results(stage)
        self.results[stage] = results
        if trainer.state.fn not in (TrainerFn.VALIDATING, TrainerFn.TESTING):
            return
        rank_zero_info(
            format_iou_table(results.class_names, results.iou, f"\nPer-class IoU ({stage}):")
        )
        if trainer.is_global_zero:
            folder = run_dir(trainer)
            path = results.save(folder / f"results_{stage}.json")
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
