"""Our loss and callbacks inside torchgeo's SemanticSegmentationTask (the torchgeo test extra:
``pip install ".[torchgeo]"``; skipped without it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

trainers = pytest.importorskip("torchgeo.trainers")

import lightning as L  # noqa: E402

from lmp_lightning.callbacks import PerClassResults  # noqa: E402
from lmp_lightning.losses import LossMaxPooling  # noqa: E402


class LMPTask(trainers.SemanticSegmentationTask):
    """torchgeo's task with loss max-pooling; validation returns its predictions."""

    def configure_losses(self) -> None:
        self.criterion = LossMaxPooling(ignore_index=self.hparams["ignore_index"])

    def validation_step(self, batch, batch_idx, dataloader_idx=0):  # type: ignore[no-untyped-def]
        super().validation_step(batch, batch_idx, dataloader_idx)
        return {"preds": self(batch["image"]).argmax(1)}


def _data(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 32, 32, generator=g)
    masks = (images[:, 0] > 0).long() + (images[:, 1] > 0.5).long()  # learnable from the image
    return [{"image": i, "mask": m} for i, m in zip(images, masks, strict=True)]


@pytest.mark.parametrize("ignore_index", [None, 0])
def test_torchgeo_task_trains_with_loss_max_pooling(tmp_path: Path, ignore_index) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    task = LMPTask(
        model="unet",
        backbone="resnet18",
        weights=None,
        in_channels=3,
        num_classes=3,
        ignore_index=ignore_index,
        lr=0.01,
    )
    assert isinstance(task.criterion, LossMaxPooling)
    assert task.criterion.ignore_index == ignore_index
    train = DataLoader(_data(8, 0), batch_size=4)
    before = float(sum(task.training_step(b, 0) for b in train))
    results = PerClassResults()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[results],
    )
    trainer.fit(task, train, DataLoader(_data(4, 1), batch_size=4))
    task.train()  # as `before` was measured: batch statistics in the normalisation layers
    with torch.no_grad():
        after = float(sum(task.criterion(task(b["image"]), b["mask"]) for b in train))
    assert after < before  # six steps of our loss through torchgeo's loop
    val = results.results["val"]
    assert len(val.iou) == 3 and 0 <= val.miou <= 1
    zeros = int(sum(int((b["mask"] == 0).sum()) for b in _data(4, 1)))
    assert val.pixel_counts[0] == (zeros if ignore_index is None else 0)  # torchgeo's label 0
    assert sum(val.pixel_counts) == 4 * 32 * 32 - (0 if ignore_index is None else zeros)
