"""The LightningModule: any segmentation_models_pytorch model with a selectable loss plug-in."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning import LightningModule
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
)

from lmp_lightning.inference import InferenceMode, tiled_logits
from lmp_lightning.losses import (
    CrossEntropy,
    InverseMedianFrequencyCrossEntropy,
    SegmentationLoss,
    build_loss,
)
from lmp_lightning.losses.functional import check_logits_target
from lmp_lightning.losses.functional.center import nearest_labels
from lmp_lightning.losses.names import canonical_class
from lmp_lightning.models import build_model, required_stride
from lmp_lightning.reports.results import ClassResults

__all__ = ["SegmentationModule", "format_iou_table"]


def format_iou_table(class_names: Sequence[str], iou: Tensor, title: str = "") -> str:
    """A plain-text table of per-class IoU in percent; NaN (class absent) shows as ``-``.

    Example:
        >>> print(format_iou_table(["road", "pole"], torch.tensor([0.91, float("nan")])))
        class  IoU (%)
        road     91.00
        pole         -
        mean     91.00
    """
    width = max(len("class"), *(len(n) for n in class_names), len("mean"))
    lines = [title] if title else []
    lines.append(f"{'class':<{width}}  {'IoU (%)':>7}")
    for name, value in zip(class_names, iou.tolist(), strict=True):
        shown = "-" if math.isnan(value) else f"{100 * value:.2f}"
        lines.append(f"{name:<{width}}  {shown:>7}")
    lines.append(f"{'mean':<{width}}  {100 * float(iou.nanmean()):>7.2f}")
    return "\n".join(lines)


class SegmentationModule(LightningModule):
    """Semantic segmentation with any segmentation_models_pytorch model and a loss plug-in.

    Training uses SGD with momentum and weight decay and the "poly" learning-rate decay
    ``lr * (1 - step / total_steps) ** poly_power`` over the run's steps, as both papers do.
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
        lr: base learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        poly_power: power of the poly decay (0 keeps the rate constant).
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
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        poly_power: float = 0.9,
        model_kwargs: dict[str, Any] | None = None,
        inference: InferenceMode = "whole",
        num_tiles: int = 5,
        tile_overlap: int = 200,
        tile_crop: int = 512,
        tile_stride: int | None = None,
        init_weights: str | None = None,
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
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or poly_power < 0:
            raise ValueError(
                "need lr > 0, 0 <= momentum < 1, weight_decay >= 0 and poly_power >= 0; got "
                f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}, "
                f"poly_power={poly_power}"
            )
        self.save_hyperparameters(ignore=["loss"])
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
            self._load_init_weights(init_weights)
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
        self._features: Tensor | None = None
        if self.loss.needs_features:
            head = getattr(self.model, "segmentation_head", None)
            if head is None:
                raise ValueError(
                    f"{type(self.loss).__name__} needs decoder features but arch={arch!r} has no "
                    "segmentation_head to take them from"
                )
            head.register_forward_pre_hook(self._keep_features)
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
        self.last_iou: dict[str, Tensor] = {}
        self.last_results: dict[str, ClassResults] = {}
        self.keep_train_predictions = False
        """Set by callbacks that need the training predictions (performance-aware sampling)."""

    # ---------------------------------------------------------------- forward and steps
    def forward(self, image: Tensor) -> Tensor:
        """Logits at the input's size; pads to the model's stride and crops back."""
        H, W = image.shape[-2:]
        pad_h, pad_w = -H % self.stride, -W % self.stride
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
        return self.model(image)[..., :H, :W]

    def _keep_features(self, head: nn.Module, args: tuple[Tensor, ...]) -> None:
        """Forward pre-hook of the segmentation head: keeps the decoder features (only
        registered for a loss with ``needs_features``)."""
        self._features = args[0]

    def compute_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The loss of the last forward pass; hands the decoder features to a loss that needs
        them, with the labels at the features' pixels (padding labelled ``ignore_index``)."""
        if not self.loss.needs_features:
            return self.loss(logits, target)
        features, self._features = self._features, None
        if features is None:
            raise RuntimeError("no decoder features were kept: call forward before compute_loss")
        H, W = target.shape[-2:]
        padded = F.pad(target, (0, -W % self.stride, 0, -H % self.stride), value=self.ignore_index)
        labels = nearest_labels(padded, (features.shape[-2], features.shape[-1]))
        return self.loss(logits, target, features=features, feature_target=labels)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> STEP_OUTPUT:
        logits = self(batch["image"])
        loss = self.compute_loss(logits, batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        if self.keep_train_predictions:  # for the training IoU tracker: no second forward
            return {"loss": loss, "preds": logits.detach().argmax(1)}
        return loss

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

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> None:
        logits = self.infer(batch["image"])
        target = batch["mask"]
        if self.loss.needs_features and self.hparams["inference"] != "whole":
            # Tiles leave no single feature map of the image: check the labels, log no loss.
            target = check_logits_target(logits, target, self.ignore_index)
        else:
            loss = self.compute_loss(logits, target)  # also validates the labels
            self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=logits.shape[0])
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits.argmax(1), target)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

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

    def _log_epoch(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        values = metrics.compute()  # synchronised across processes
        pixel_counts = values[f"{stage}/confmat"].sum(1).cpu()  # labelled pixels per class
        metrics.reset()
        iou = values[f"{stage}/iou"].cpu()
        self.log(f"{stage}/mIoU", iou.nanmean(), prog_bar=True)
        logged = {f"{stage}/pixel_acc": values[f"{stage}/pixel_acc"]}
        logged |= {
            f"{stage}/IoU_{name}": value for name, value in zip(self.class_names, iou, strict=True)
        }
        self.log_dict(logged)
        self.last_iou[stage] = iou
        self.last_results[stage] = ClassResults(
            class_names=list(self.class_names),
            iou=iou.tolist(),
            pixel_counts=[int(v) for v in pixel_counts],
            miou=float(iou.nanmean()),
            split=stage,
            config=self.run_config(),
            checkpoint=getattr(self._trainer, "ckpt_path", None) if self._trainer else None,
        )
        if self._trainer is not None and self.trainer.state.fn in (
            TrainerFn.VALIDATING,
            TrainerFn.TESTING,
        ):
            rank_zero_info(format_iou_table(self.class_names, iou, f"\nPer-class IoU ({stage}):"))
            if self.trainer.is_global_zero:
                folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
                path = self.last_results[stage].save(folder / f"results_{stage}.json")
                rank_zero_info(f"Per-class results written to {path}")

    def run_config(self) -> dict[str, Any]:
        """The model's and the loss's configuration, for results files and model cards."""
        loss = self.loss
        cls = canonical_class(loss)
        loss_args = {
            name: getattr(loss, name)
            for name in inspect.signature(type(loss).__init__).parameters
            if name != "self" and isinstance(getattr(loss, name, None), (int, float, str, bool))
        }
        return {
            "model": {k: v for k, v in self.hparams.items() if k != "class_names"},
            "loss": {
                "class_path": f"{cls.__module__}.{cls.__name__}",
                "init_args": loss_args,
            },
        }

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_fit_end(self) -> None:
        if "val" in self.last_iou:
            rank_zero_info(
                format_iou_table(
                    self.class_names,
                    self.last_iou["val"],
                    "\nPer-class IoU (val, last validation of the run):",
                )
            )

    # ---------------------------------------------------------------- set-up and checks
    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(data, "num_classes", None)
        if data_classes is not None and data_classes != self.num_classes:
            raise ValueError(
                f"the model has num_classes={self.num_classes} but the data has {data_classes} "
                "classes; set --model.num_classes to match (the CLI links it from the data)"
            )
        if isinstance(self.loss, InverseMedianFrequencyCrossEntropy) and (
            self.loss.class_weights.numel() == 0
        ):
            counts = getattr(data, "per_image_counts", None)
            if counts is None:
                raise ValueError(
                    "InverseMedianFrequencyCrossEntropy needs class statistics: give "
                    "--model.loss.class_weights, or use a data module with per_image_counts()"
                )
            self.loss.set_pixel_statistics(counts())

    def _load_init_weights(self, spec: str) -> None:
        """Loads the model weights of a zoo entry or a Lightning checkpoint (fine-tuning)."""
        if spec.startswith("zoo:") or Path(spec).is_dir():
            from lmp_lightning.zoo.api import load

            state = load(spec.removeprefix("zoo:")).model.state_dict()
        elif Path(spec).is_file():
            saved = torch.load(spec, map_location="cpu", weights_only=False)
            state = {
                k.removeprefix("model."): v
                for k, v in saved.get("state_dict", {}).items()
                if k.startswith("model.")
            }
        else:
            raise FileNotFoundError(f"init_weights: no zoo entry or checkpoint at {spec!r}")
        try:
            self.model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(
                f"init_weights {spec!r} do not fit this model (arch={self.hparams['arch']!r}, "
                f"encoder_name={self.hparams['encoder_name']!r}, "
                f"num_classes={self.num_classes}): {str(error)[:300]}"
            ) from None

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
        self._apply_optimizer_arguments(checkpoint, saved)
        for key in ("arch", "encoder_name", "num_classes", "in_channels", "output_stride"):
            if key in saved and saved[key] != self.hparams.get(key):
                raise ValueError(
                    f"the checkpoint was trained with {key}={saved[key]!r} but this model has "
                    f"{key}={self.hparams.get(key)!r}; build the model with the checkpoint's "
                    f"settings (checkpoint: arch={saved.get('arch')!r}, "
                    f"encoder_name={saved.get('encoder_name')!r}, "
                    f"num_classes={saved.get('num_classes')!r})"
                )

    def _apply_optimizer_arguments(self, checkpoint: dict[str, Any], saved: dict[str, Any]) -> None:
        """A resumed fit runs with this module's ``lr``, ``momentum`` and ``weight_decay``, not
        the checkpoint's: the restored optimiser and schedule states are rescaled to them (the
        position in the poly schedule is kept)."""
        hp: Any = self.hparams
        old_lr = saved.get("lr", hp.lr)
        ratio = hp.lr / old_lr if old_lr else 1.0
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                for key in ("lr", "initial_lr"):
                    if key in group:
                        group[key] = group[key] * ratio
                if "momentum" in group:
                    group["momentum"] = hp.momentum
                if "weight_decay" in group:
                    group["weight_decay"] = hp.weight_decay
        for state in checkpoint.get("lr_schedulers", []):
            for key in ("base_lrs", "_last_lr"):
                if key in state:
                    state[key] = [value * ratio for value in state[key]]

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        hp: Any = self.hparams
        optimizer = torch.optim.SGD(
            self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))

        def poly(step: int) -> float:
            return max(0.0, 1.0 - step / total) ** hp.poly_power

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
