"""Writes ``lmp-seg predict`` results: label PNGs and colour overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from lmp_lightning.errors import InputError

__all__ = ["PredictionWriter", "label_palette"]


def label_palette(num_colours: int = 256) -> np.ndarray:
    """A ``(num_colours, 3)`` uint8 palette: distinct colours per label (the Pascal VOC
    bit-interleaving scheme), so that label PNGs show their classes in any image viewer.

    Example:
        >>> label_palette(3).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    palette = np.zeros((num_colours, 3), dtype=np.uint8)
    for label in range(num_colours):
        value, r, g, b = label, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[label] = (r, g, b)
    return palette


class PredictionWriter(BasePredictionWriter):
    """Saves every predicted label map as ``<name>.png`` (a palette PNG whose pixel values are
    the class labels) and ``<name>_overlay.png`` (the image blended with the class colours).

    ``lmp-seg predict`` adds one writing to ``<default_root_dir>/predictions`` unless one is
    configured. An existing file is never overwritten unless ``overwrite`` is set: the run stops
    with a message naming it.

    Args:
        output_dir: the folder to write to (created when missing).
        alpha: the weight of the class colours in the overlays.
        overwrite: replace existing files.
    """

    def __init__(
        self, output_dir: str = "predictions", alpha: float = 0.5, overwrite: bool = False
    ) -> None:
        super().__init__(write_interval="batch")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.output_dir = Path(output_dir)
        self.alpha, self.overwrite = alpha, overwrite
        self.palette = label_palette()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Checks every output name before anything is written: two inputs that would write
        one file (``c.png`` and ``c_overlay.png``), or a file already there, stop the run with
        nothing written."""
        loaders = trainer.predict_dataloaders
        loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
        writes: dict[str, str] = {}
        for loader in loaders:
            dataset = getattr(loader, "dataset", None)
            names = getattr(dataset, "names", None)
            files = getattr(dataset, "files", None)
            if not isinstance(names, list) or not isinstance(files, list):
                continue  # not an image folder (the test split): names by batch
            for name, source in zip(names, files, strict=True):
                for output in (f"{name}.png", f"{name}_overlay.png"):
                    if output in writes:
                        raise InputError(
                            f"the predict inputs {writes[output]!r} and {Path(source).name!r} "
                            f"would both write {output!r}; rename one of them"
                        )
                    writes[output] = Path(source).name
                    self._target(output)

    def _target(self, name: str) -> Path:
        path = self.output_dir / name
        if path.exists() and not self.overwrite:
            raise FileExistsError(
                f"{path} exists; choose another output_dir or set overwrite=True to replace it"
            )
        return path

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        labels = prediction.cpu().numpy().astype(np.uint8)
        names = batch.get("name") or [f"{batch_idx:05d}_{i}" for i in range(len(labels))]
        raws = batch.get("raw")
        for i, (label, name) in enumerate(zip(labels, names, strict=True)):
            png = Image.fromarray(label, mode="P")
            png.putpalette(self.palette.flatten().tolist())
            png.save(self._target(f"{name}.png"))
            if raws is not None:
                raw = raws[i].cpu().numpy().astype(np.float32)
                blend = (1 - self.alpha) * raw + self.alpha * self.palette[label]
                Image.fromarray(blend.round().astype(np.uint8)).save(
                    self._target(f"{name}_overlay.png")
                )
