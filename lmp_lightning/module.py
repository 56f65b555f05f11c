"""The LightningModule: any segmentation_models_pytorch model with a selectable loss plug-in."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRScheduler
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
)

from lmp_lightning.errors import InputError
from lmp_lightning.inference import InferenceMode, tiled_logits
from lmp_lightning.losses import CrossEntropy, SegmentationLoss, build_loss
from lmp_lightning.losses.functional import check_logits_target
from lmp_lightning.models import build_model, required_stride
from lmp_lightning.optim import build_lr_scheduler, build_optimizer, describe_optimisation
from lmp_lightning.reports.describe import describe_loss
from lmp_lightning.reports.results import ClassResults
from lmp_lightning.weights import load_network_weights

__all__ = ["SegmentationModule"]


class SegmentationModule(LightningModule):
    """Semantic segmentation with any segmentation_models_pytorch model and a loss plug-in.

    Training uses, by default, SGD with momentum and weight decay and the "poly" learning-rate
    decay ``lr * (1 - step / total_steps) ** 0.9`` over the fit's steps, as both papers do;
    ``optimizer`` and ``lr_scheduler`` take any other (LightningCLI's dependency injection:
    ``--model.optimizer AdamW --model.optimizer.lr 1e-3``; ``lmp-seg fit`` also reads Lightning's
    own ``--optimizer`` and ``--lr_scheduler`` into them). The scheduler steps after every
    optimiser step.
    Validation and test run at full image size: images are padded to the model's stride (labels
    with ``ignore_index``) and the prediction is cropped back; labels are never resized.
    Metrics are torchmetrics' per-class IoU (``val/IoU_<class>``, ``val/mIoU`` over the classes
    present) and pixel accuracy, synchronised across DDP processes.

    Args:
        arch: segmentation_models_pytorch architecture (``unet``, ``fpn``, ``deeplabv3``,
            ``deeplabv3plus``, ``segformer``, ...).
        encoder_name: its encoder (``resnet18``, ``mobilenet_v2``, ``tu-<timm model>``, ...).
        encoder_weights: pretrained encoder weights (``None`` downloads nothing).
        num_classes: number of classes (linked from the data module by the CLI).
        class_names: class names for logs and tables (linked from the data module).
        ignore_index: the label of pixels that take no part (linked from the data module); it
            also becomes the loss's ``ignore_index``.
        in_channels: input channels.
        loss: the loss plug-in, any :class:`~lmp_lightning.losses.SegmentationLoss`
            (default: plain cross-entropy).
        output_stride: 8 or 16 for DeepLab architectures (atrous encoder).
        optimizer: builds the optimiser from the parameters (default
            :data:`~lmp_lightning.optim.DEFAULT_OPTIMIZER`: SGD, lr 0.01, momentum 0.9, weight
            decay 1e-4).
        lr_scheduler: builds the scheduler from the optimiser (default
            :class:`~lmp_lightning.optim.PolyLR` with power 0.9 over the fit's steps; a
            scheduler whose ``total_iters`` is ``None`` gets the fit's optimiser steps).
        model_kwargs: further arguments of the architecture.
        inference: how validation, test and predict see an image: ``"whole"`` (padded to the
            stride and cropped back), ``"efficient"`` (``num_tiles`` non-overlapping full-height
            vertical tiles), ``"optimized"`` (tiles overlapping by ``tile_overlap`` pixels, each
            deciding the half of the overlap on its side) or ``"sliding"`` (windows of
            ``tile_crop`` every ``tile_stride`` pixels, overlapping logits averaged).
        num_tiles: tiles of ``efficient`` and ``optimized``.
        tile_overlap: overlap of ``optimized`` tiles in pixels.
        tile_crop: window side of ``sliding``.
        tile_stride: window step of ``sliding`` (default two thirds of the window).
        init_weights: start from these model weights (fine-tuning): ``zoo:NAME``, a zoo entry
            directory, or a ``.ckpt`` of ``lmp-seg fit``; the architecture, encoder and class
            count must match.
        channels_last: keep the network's weights and its input in channels-last memory
            format (``torch.channels_last``), which oneDNN's CPU convolutions run faster on
            (benchmarks/bench_fit.py); the values and checkpoints are the same either way.

    Example:
        >>> module = SegmentationModule("fpn", "resnet18", num_classes=3)
        >>> module(torch.rand(1, 3, 50, 70)).shape  # any size: padded and cropped back
        torch.Size([1, 3, 50, 70])
    """

    def __init__(
        self,
        arch: str = "deeplabv3plus",
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        num_classes: int = 2,
        class_names: list[str] | None = None,
        ignore_index: int = 255,
        in_channels: int = 3,
        loss: SegmentationLoss | str | None = None,
        output_stride: int | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        model_kwargs: dict[str, Any] | None = None,
        inference: InferenceMode = "whole",
        num_tiles: int = 5,
        tile_overlap: int = 200,
        tile_crop: int = 512,
        tile_stride: int | None = None,
        init_weights: str | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if class_names is None:
            class_names = [f"class_{c}" for c in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} names but num_classes={num_classes}"
            )
        # Callables are not hyper-parameters (a checkpoint must load with weights_only);
        # run_config() describes what they build, the CLI's config.yaml records them.
        self.save_hyperparameters(ignore=["loss", "optimizer", "lr_scheduler"])
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.optimization = describe_optimisation(optimizer, lr_scheduler)
        """What ``optimizer`` and ``lr_scheduler`` build (class paths, scalar arguments); bad
        arguments fail here, not when the fit starts."""
        self.class_names = list(class_names)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.model = build_model(
            arch,
            encoder_name,
            num_classes,
            in_channels,
            encoder_weights,
            output_stride,
            **(model_kwargs or {}),
        )
        if init_weights is not None:
            load_network_weights(self.model, init_weights, arch, encoder_name, num_classes)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.stride = required_stride(self.model)
        if isinstance(loss, str):  # a short or class name, from Python: build_loss("lmp")
            loss = build_loss(loss, ignore_index=ignore_index)
        self.loss = loss if loss is not None else CrossEntropy(ignore_index=ignore_index)
        if not isinstance(self.loss, SegmentationLoss):
            raise TypeError(f"loss must be a SegmentationLoss, got {type(self.loss).__name__}")
        if self.loss.ignore_index != ignore_index:
            rank_zero_info(
                f"loss ignore_index {self.loss.ignore_index} replaced by the data's {ignore_index}"
            )
            self.loss.ignore_index = ignore_index
        if self.loss.needs_features and getattr(self.model, "segmentation_head", None) is None:
            raise ValueError(
                f"{type(self.loss).__name__} needs decoder features but arch={arch!r} has no "
                "segmentation_head to take them from"
            )
        iou = MulticlassJaccardIndex(
            num_classes, average=None, ignore_index=ignore_index, zero_division=float("nan")
        )
        accuracy = MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index)
        # The confusion matrix gives the labelled pixels of every class; it shares its state
        # with the IoU's (one update for both: torchmetrics' compute groups).
        confmat = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        metrics = MetricCollection({"iou": iou, "confmat": confmat, "pixel_acc": accuracy})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    # ---------------------------------------------------------------- forward and steps
    def forward(self, image: Tensor) -> Tensor:
        """Logits at the input's size; pads to the model's stride and crops back."""
        H, W = image.shape[-2:]
        pad_h, pad_w = -H % self.stride, -W % self.stride
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
        if self.channels_last and image.ndim == 4:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model(image)[..., :H, :W]

    def forward_with_features(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Logits as :meth:`forward` and the decoder features (the input of the model's
        segmentation head) of the same pass, cropped to the part that covers the image."""
        kept: list[Tensor] = []
        head = self.model.get_submodule("segmentation_head")  # checked in __init__
        hook = head.register_forward_pre_hook(lambda _, args: kept.append(args[0]))
        try:
            logits = self(image)
        finally:
            hook.remove()
        features = kept[-1]
        (H, W), (h, w) = image.shape[-2:], features.shape[-2:]
        padded_h, padded_w = H + -H % self.stride, W + -W % self.stride
        return logits, features[..., : -(-H * h // padded_h), : -(-W * w // padded_w)]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> STEP_OUTPUT:
        """The loss, and the predicted labels for callbacks that track training IoU (the
        performance-aware sampler): ``{"loss": ..., "preds": (B, H, W)}``."""
        if self.loss.needs_features:
            logits, features = self.forward_with_features(batch["image"])
            loss = self.loss(logits, batch["mask"], features=features)
        else:
            logits = self(batch["image"])
            loss = self.loss(logits, batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        # (batches, labelled pixels) of the epoch: an epoch of ignored pixels only is an error
        labelled = (batch["mask"] != self.ignore_index).sum()
        batches, pixels = getattr(self, "_train_labelled", (0, 0))
        self._train_labelled = (batches + 1, pixels + labelled)
        return {"loss": loss, "preds": logits.detach().argmax(1)}

    def on_train_epoch_start(self) -> None:
        self._train_labelled = (0, 0)

    def on_train_epoch_end(self) -> None:
        batches, pixels = getattr(self, "_train_labelled", (0, 0))
        counts = torch.tensor([batches, float(pixels)], device=self.device)
        batches, pixels = self.trainer.strategy.reduce(counts, reduce_op="sum").tolist()
        if batches > 0 and not pixels > 0:  # (a resumed epoch may have trained no batch)
            raise InputError(
                f"the training epoch had no labelled pixels: every mask pixel of its crops is "
                f"the ignore label {self.ignore_index}; check the training masks"
            )

    def infer(self, image: Tensor) -> Tensor:
        """Logits of a full image with the configured inference mode (validate, test, predict)."""
        hp: Any = self.hparams
        return tiled_logits(
            self,
            image,
            mode=hp.inference,
            num_tiles=hp.num_tiles,
            overlap=hp.tile_overlap,
            crop_size=hp.tile_crop,
            stride=hp.tile_stride,
        )

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        logits = self.infer(batch["image"])
        target = batch["mask"]
        if self.loss.needs_features:
            # Features are kept in training only (and tiles leave no single feature map of the
            # image): check the labels, log no loss.
            target = check_logits_target(logits, target, self.ignore_index)
        else:
            loss = self.loss(logits, target)  # also validates the labels
            self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=logits.shape[0])
        preds = logits.argmax(1)
        self._metrics(stage).update(preds, target)
        return {"preds": preds}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Updates the metrics; returns ``{"preds": (B, H, W)}`` for callbacks
        (:class:`~lmp_lightning.callbacks.ValidationImages`)."""
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Labels; at ``batch["size"]`` when the batch carries the images' own size (an image
        folder resized by the data set's scale), with the logits resized back (bilinear)."""
        logits = self.infer(batch["image"])
        size = batch.get("size")
        if size is not None:
            height, width = (int(v) for v in size[0])
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(
                    logits, size=(height, width), mode="bilinear", align_corners=False
                )
        return logits.argmax(1)

    def _metrics(self, stage: str) -> MetricCollection:
        return self.val_metrics if stage == "val" else self.test_metrics

    def _log_epoch(self, stage: str) -> None:
        values = self._metrics(stage).compute()  # synchronised across processes
        sanity = self._trainer is not None and self.trainer.sanity_checking
        if not sanity and not values[f"{stage}/confmat"].sum() > 0:
            raise InputError(
                f"the {stage} split has no labelled pixels: every mask pixel is the ignore "
                f"label {self.ignore_index}; its IoU is undefined (check the {stage} masks)"
            )
        iou = values[f"{stage}/iou"]
        self.log(f"{stage}/mIoU", iou.nanmean(), prog_bar=True)
        logged = {f"{stage}/pixel_acc": values[f"{stage}/pixel_acc"]}
        logged |= {
            f"{stage}/IoU_{name}": value for name, value in zip(self.class_names, iou, strict=True)
        }
        self.log_dict(logged)

    def class_results(self, stage: str = "val") -> ClassResults:
        """Per-class IoU and labelled pixel counts of the last validation (``"val"``) or test
        (``"test"``) epoch, with the run's configuration: what
        :class:`~lmp_lightning.callbacks.PerClassResults` writes and prints. The metrics keep
        their state until the next epoch of that stage starts.

        Raises:
            ValueError: ``stage`` is not ``"val"`` or ``"test"``, or no epoch of it has run.
        """
        if stage not in ("val", "test"):
            raise ValueError(f"stage must be 'val' or 'test', got {stage!r}")
        metrics = self._metrics(stage)
        if not metrics[f"{stage}/iou"].update_called:
            raise ValueError(f"no {stage} epoch has run: there are no {stage} results yet")
        values = metrics.compute()  # cached since the epoch's end
        iou = values[f"{stage}/iou"].cpu()
        return ClassResults(
            class_names=list(self.class_names),
            iou=iou.tolist(),
            pixel_counts=[int(v) for v in values[f"{stage}/confmat"].sum(1).cpu()],
            miou=float(iou.nanmean()),
            split=stage,
            config=self.run_config(),
            checkpoint=getattr(self._trainer, "ckpt_path", None) if self._trainer else None,
        )

    def run_config(self) -> dict[str, Any]:
        """The model's and the loss's configuration, for results files and model cards."""
        return {
            "model": {k: v for k, v in self.hparams.items() if k != "class_names"},
            "loss": describe_loss(self.loss),
            **self.optimization,
        }

    # The metrics are reset when an epoch starts, not when it ends: callbacks read the epoch's
    # results after it (class_results).
    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # ---------------------------------------------------------------- set-up and checks
    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(data, "num_classes", None)
        if data_classes is not None and data_classes != self.num_classes:
            raise ValueError(
                f"the model has num_classes={self.num_classes} but the data has {data_classes} "
                "classes; set --model.num_classes to match (the CLI links it from the data)"
            )
        self.loss.setup(data)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The loss is a plug-in: a checkpoint trained with another loss (or a zoo entry, which
        # has none) loads with this module's loss state.
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("loss.")]:
            if key not in self.state_dict():
                del state[key]
        for key, value in self.state_dict().items():
            if key.startswith("loss.") and key not in state:
                state[key] = value
        saved = checkpoint.get("hyper_parameters", {})
        for key in ("arch", "encoder_name", "num_classes", "in_channels", "output_stride"):
            if key in saved and saved[key] != self.hparams.get(key):
                raise InputError(
                    f"the checkpoint was trained with {key}={saved[key]!r} but this model has "
                    f"{key}={self.hparams.get(key)!r}; build the model with the checkpoint's "
                    f"settings (checkpoint: arch={saved.get('arch')!r}, "
                    f"encoder_name={saved.get('encoder_name')!r}, "
                    f"num_classes={saved.get('num_classes')!r})"
                )

    def configure_optimizers(self) -> OptimizerLRScheduler:
        optimizer = build_optimizer(self.optimizer_factory, self.parameters())
        scheduler = build_lr_scheduler(self.lr_scheduler_factory, optimizer)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if getattr(scheduler, "total_iters", 0) is None:  # PolyLR's "the fit's steps"
            scheduler.total_iters = total
        elif (
            isinstance(getattr(scheduler, "total_iters", None), int)
            and scheduler.total_iters < total
        ):
            rank_zero_warn(
                f"{type(scheduler).__name__} has total_iters={scheduler.total_iters}, fewer than "
                f"the fit's {total} optimiser steps: its schedule ends before the fit does"
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
