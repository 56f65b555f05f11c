"""A few validation images with their labels and the model's prediction, at every validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from lmp_lightning.callbacks.prediction_writer import label_palette
from lmp_lightning.callbacks.protocol import batch_image, batch_mask, step_predictions
from lmp_lightning.callbacks.run_dir import run_dir

__all__ = ["ValidationImages"]


class ValidationImages(Callback):
    """Shows the first ``num_images`` validation images at every validation: the image, its
    labels and the prediction side by side (class colours of :func:`label_palette`; ignored
    pixels in the ``ignore_index`` colour).

    They go to W&B (``val/predictions``, one image each with a caption) and TensorBoard
    (``val/predictions/<i>``), and to ``<run folder>/val_images/step<N>-<i>.png`` for any
    logger. ``lmp-seg fit`` adds this callback (with 4 images) when the run has a logger and
    none is configured.

    Works with :class:`~lmp_lightning.module.SegmentationModule` and with any module that
    follows the protocol of :mod:`lmp_lightning.callbacks.protocol` (``validation_step``
    returns ``{"preds": ...}`` or ``{"logits": ...}``; dict or ``(image, mask)`` batches).

    Args:
        num_images: how many validation images to show (the first ones of the val split).
        mean: the normalisation to undo (default: the data module's ``mean`` hyper-parameter;
            without one each image is stretched to [0, 255]).
        std: likewise.

    Raises:
        ValueError: ``num_images < 1``.
    """

    def __init__(
        self,
        num_images: int = 4,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if isinstance(num_images, bool) or num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images!r}")
        self.num_images = num_images
        self.mean = None if mean is None else list(mean)
        self.std = None if std is None else list(std)
        self.palette = label_palette()
        self._panels: list[np.ndarray] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._panels = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if len(self._panels) >= self.num_images:
            return
        who = type(self).__name__
        preds = step_predictions(outputs, who, "validation_step")
        images, masks = batch_image(batch, who), batch_mask(batch, who)
        if trainer.sanity_checking:
            return  # the protocol is checked; no panels from the sanity check
        data = getattr(trainer, "datamodule", None)
        hparams = getattr(data, "hparams", {})
        mean = self.mean if self.mean is not None else hparams.get("mean")
        std = self.std if self.std is not None else hparams.get("std")
        for image, mask, pred in zip(images, masks, preds, strict=False):
            if len(self._panels) >= self.num_images:
                break
            self._panels.append(
                np.concatenate(
                    [
                        _to_uint8(image, mean, std),
                        self.palette[mask.long().clamp(0, 255).cpu().numpy()],
                        self.palette[pred.long().clamp(0, 255).cpu().numpy()],
                    ],
                    axis=1,
                )
            )

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._panels:
            return
        step = trainer.global_step
        folder = run_dir(trainer) / "val_images"
        folder.mkdir(parents=True, exist_ok=True)
        for i, panel in enumerate(self._panels):
            Image.fromarray(panel).save(folder / f"step{step}-{i}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                panels = list(self._panels)
                logger.log_image(
                    key="val/predictions",
                    images=panels,
                    step=step,
                    caption=[
                        f"image | labels | prediction ({i})" for i in range(len(self._panels))
                    ],
                )
            elif isinstance(logger, TensorBoardLogger):
                for i, panel in enumerate(self._panels):
                    logger.experiment.add_image(
                        f"val/predictions/{i}", panel, global_step=step, dataformats="HWC"
                    )


def _to_uint8(image: torch.Tensor, mean: Any, std: Any) -> np.ndarray:
    """An ``HxWx3`` uint8 picture of a normalised ``(C, H, W)`` image: the data module's
    normalisation undone, or, without one, each image stretched to [0, 255]."""
    picture = image.detach().float().cpu()[:3]
    if mean is not None and std is not None:
        picture = picture * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    else:
        low, high = picture.min(), picture.max()
        picture = (picture - low) / (high - low).clamp(min=1e-12)
    if picture.shape[0] == 1:
        picture = picture.expand(3, -1, -1)
    return (picture.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
