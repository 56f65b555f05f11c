"""The Lightning callback that wires the training IoU tracker, the performance-aware sampler and
the data together (Rota Bulò et al. 2017, Sections 4 and 5.1: BASE+ and LMP)."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lmp_lightning.sampling import (
    ClassCenteredCrops,
    PerformanceAwareSampler,
    TrainingIoUTracker,
    class_weights_from_iou,
)

__all__ = ["PerformanceAwareSampling"]


class PerformanceAwareSampling(Callback):
    """Performance-aware sampling of training crops, steered by the training IoU.

    At ``fit`` start it builds (or loads from the cache) the training set's
    :class:`~lmp_lightning.sampling.ClassStatistics` and replaces the data module's training
    loader with a :class:`~lmp_lightning.sampling.PerformanceAwareSampler` over
    :class:`~lmp_lightning.sampling.ClassCenteredCrops`. After every training step it feeds the
    step's own predictions (the argmax the module already computed) to a
    :class:`~lmp_lightning.sampling.TrainingIoUTracker`; every ``update_every_n_steps`` steps,
    or at every epoch end when that is ``None``, the class probabilities become
    ``g(IoU_c)`` (``1 - IoU`` or ``1 / max(IoU, floor)``) and the tracker resets or decays. It
    logs ``sampler/p_<class>`` (class probabilities) and ``sampler/share_<class>`` (the class
    pixel share of the crops actually drawn in the epoch). Its state (tracker, probabilities,
    epoch) is saved in checkpoints, so a resumed run draws what an uninterrupted one draws.

    Needs :class:`~lmp_lightning.data.SegmentationDataModule` and
    :class:`~lmp_lightning.module.SegmentationModule`.

    Args:
        uniform_mix: probability that a draw is uniform over images (0.5: the paper's blend).
        weighting: ``"one_minus_iou"`` or ``"inverse_iou"``.
        iou_floor: the floor of ``inverse_iou``.
        update_every_n_steps: recompute the probabilities every N training steps (``None``:
            every epoch).
        decay: ``None`` resets the tracker at every update; a value in ``[0, 1)`` decays it.
        unseen: policy for classes without an IoU estimate (see ``TrainingIoUTracker``).
        image_choice: ``"uniform"`` over the images containing the class, or ``"pixels"``.
        points_per_class: pixels per image and class kept to centre crops on.
        num_samples: draws per epoch (default: the number of training images).
        shard: the sampler splits its stream across processes itself (then pass
            ``--trainer.use_distributed_sampler false``); by default Lightning's distributed
            sampler splits it.
        cache_dir: where the class statistics are cached (default: the user's cache,
            ``~/.cache/lmp_lightning/class_statistics`` or under ``$XDG_CACHE_HOME``; never a
            data folder unless given; generated data sets such as ``synthetic`` are not cached
            unless a directory is given).
    """

    def __init__(
        self,
        uniform_mix: float = 0.5,
        weighting: Literal["one_minus_iou", "inverse_iou"] = "one_minus_iou",
        iou_floor: float = 0.05,
        update_every_n_steps: int | None = None,
        decay: float | None = None,
        unseen: Literal["mean", "worst"] = "mean",
        image_choice: Literal["uniform", "pixels"] = "uniform",
        points_per_class: int = 64,
        num_samples: int | None = None,
        shard: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        if update_every_n_steps is not None and update_every_n_steps < 1:
            raise ValueError(
                f"update_every_n_steps must be None or >= 1, got {update_every_n_steps}"
            )
        if num_samples is not None and (isinstance(num_samples, bool) or num_samples < 1):
            raise ValueError(f"num_samples must be None or >= 1, got {num_samples!r}")
        if isinstance(points_per_class, bool) or points_per_class < 1:
            raise ValueError(f"points_per_class must be >= 1, got {points_per_class!r}")
        class_weights_from_iou(torch.zeros(1), weighting, iou_floor)  # validates both
        self.uniform_mix, self.weighting, self.iou_floor = uniform_mix, weighting, iou_floor
        self.update_every_n_steps, self.decay, self.unseen = update_every_n_steps, decay, unseen
        self.image_choice, self.points_per_class = image_choice, points_per_class
        self.num_samples, self.shard, self.cache_dir = num_samples, shard, cache_dir
        self.sampler: PerformanceAwareSampler | None = None
        self.tracker: TrainingIoUTracker | None = None
        self.steps = 0
        self.epoch_draws = 0  # stream draws consumed in the current epoch, over all processes
        self._pending: dict[str, Any] | None = None
        self._drawn: torch.Tensor | None = None

    # ---------------------------------------------------------------- wiring
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        data = getattr(trainer, "datamodule", None)
        if data is None or not hasattr(data, "use_train_sampler"):
            raise ValueError("PerformanceAwareSampling needs a SegmentationDataModule")
        hp = data.hparams
        raw = data.train_dataset_raw()
        stats = data.class_statistics(
            points_per_class=self.points_per_class,
            cache_dir=self.cache_dir,
            progress=trainer.is_global_zero,
        )
        self.sampler = PerformanceAwareSampler(
            stats,
            self.num_samples,
            self.uniform_mix,
            self.image_choice,
            seed=hp.seed,
            rank=trainer.global_rank if self.shard else 0,
            num_replicas=trainer.world_size if self.shard else 1,
        )
        crops = ClassCenteredCrops(
            raw, stats, hp.crop_size, hp.scale_range, hp.mean, hp.std, data.ignore_index
        )
        data.use_train_sampler(crops, self.sampler)
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
        self.epoch_draws = 0
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
        finished = batch_idx + 1 >= trainer.num_training_batches  # a resume starts a new epoch
        self.epoch_draws = 0 if finished else (batch_idx + 1) * mask.shape[0] * trainer.world_size
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
        if self.sampler is None or self.tracker is None:
            return dict(self._pending or {})
        return {
            "steps": self.steps,
            "epoch_draws": self.epoch_draws,
            "sampler": self.sampler.state_dict(),
            "confmat": self.tracker.metric.confmat.detach().cpu().clone(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.sampler is None or self.tracker is None:
            self._pending = dict(state_dict)
        else:
            self._restore(state_dict)

    def _restore(self, state: dict[str, Any]) -> None:
        assert self.sampler is not None and self.tracker is not None
        self.steps = int(state["steps"])
        self.sampler.load_state_dict(state["sampler"])
        self.epoch_draws = int(state.get("epoch_draws", 0))
        if self.epoch_draws:  # resumed mid-epoch: continue the epoch's stream where it stopped
            self.sampler.skip_next(self.epoch_draws)
        confmat = self.tracker.metric.confmat
        confmat.copy_(state["confmat"].to(confmat.device, confmat.dtype))
        self._pending = None
