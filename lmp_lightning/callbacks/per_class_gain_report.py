"""Per-class gains against a baseline at every validation: a W&B table and scatter chart
(Fig. 3 of Rota Bulò et al. 2017), a PNG for any logger, and per-class IoU curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from lmp_lightning.callbacks.protocol import ClassResultsCallback
from lmp_lightning.callbacks.run_dir import run_dir
from lmp_lightning.reports import ClassResults, gains, plot_gains, spearman

__all__ = ["PerClassGainReport"]


class PerClassGainReport(ClassResultsCallback):
    """Compares every validation with a baseline's per-class results.

    At every validation it writes ``gains/gains-step<N>.png`` (gain in IoU % against the class
    pixel count, log scale, labelled) into the run's log directory and, for a
    :class:`~lightning.pytorch.loggers.WandbLogger`, logs ``val/per_class_gains`` (a table of
    class, pixel count, IoU, baseline IoU, gain), ``val/gain_vs_pixels`` (a scatter chart of the
    table), the PNG as ``val/gain_figure``, and ``val/gain_spearman`` (the Spearman correlation
    of gain and pixel count) for every logger. Per-class IoU curves are the
    ``val/IoU_<class>`` values the module logs at every validation.

    Works with :class:`~lmp_lightning.module.SegmentationModule` and with any module that
    follows the protocol of :mod:`lmp_lightning.callbacks.protocol` (``validation_step``
    returns ``{"preds": ...}`` or ``{"logits": ...}``; dict or ``(image, mask)`` batches).

    Args:
        baseline: a results file (``results_val.json``) that ``fit``, ``validate`` or ``test``
            wrote.
        class_names: the classes, where neither the module nor the data module names them.
        ignore_index: the ignore label (``None``: nothing ignored; ``"auto"``: the module's or
            the data module's ``ignore_index``, else 255).

    Raises:
        ValueError: at the first validation, when the baseline has other classes than the run.
    """

    def __init__(
        self,
        baseline: str,
        class_names: Sequence[str] | None = None,
        ignore_index: int | Literal["auto"] | None = "auto",
    ) -> None:
        super().__init__(class_names, ignore_index)
        self.baseline_path = baseline
        self.baseline = ClassResults.load(baseline)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the module's on_validation_epoch_end, which computes this validation's results.
        if trainer.sanity_checking:
            return
        results = self.split_results(pl_module, "val")
        if results is None:
            return
        if results.class_names != self.baseline.class_names:
            raise ValueError(
                f"the baseline {self.baseline_path} has classes {self.baseline.class_names}, "
                f"this run {results.class_names}"
            )
        delta = gains(self.baseline, results)
        rho = spearman(delta, results.pixel_counts)
        self._report(trainer, results, delta, rho)

    @rank_zero_only
    def _report(self, trainer: L.Trainer, results: ClassResults, delta: Any, rho: float) -> None:
        folder = run_dir(trainer) / "gains"
        png = plot_gains(
            self.baseline,
            results,
            folder / f"gains-step{trainer.global_step}.png",
            title=f"IoU gain over {Path(self.baseline_path).name}, step {trainer.global_step}",
        )
        for logger in trainer.loggers:
            if rho == rho:  # not NaN
                logger.log_metrics({"val/gain_spearman": rho}, step=trainer.global_step)
            if not isinstance(logger, WandbLogger):
                continue
            import wandb

            rows = [
                [name, int(count), iou, base, gain]
                for name, count, iou, base, gain in zip(
                    results.class_names,
                    results.pixel_counts,
                    results.iou,
                    self.baseline.iou,
                    delta.tolist(),
                    strict=True,
                )
            ]
            table = wandb.Table(
                columns=["class", "pixel_count", "iou", "baseline_iou", "gain"], data=rows
            )
            logger.experiment.log(
                {
                    "val/per_class_gains": table,
                    "val/gain_vs_pixels": wandb.plot.scatter(
                        table, "pixel_count", "gain", title="IoU gain against pixel count"
                    ),
                    "val/gain_figure": wandb.Image(str(png)),
                    "trainer/global_step": trainer.global_step,
                }
            )
