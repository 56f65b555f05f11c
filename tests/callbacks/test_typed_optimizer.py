"""TypedOptimizerOnResume: a resumed fit trains with the module's optimiser arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, Dataset

from lmp_lightning import SegmentationModule
from lmp_lightning.callbacks import TypedOptimizerOnResume


class Random(Dataset[dict[str, torch.Tensor]]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(index)
        return {
            "image": torch.rand(3, 32, 32, generator=g),
            "mask": torch.randint(0, 3, (32, 32), generator=g),
        }


def module(lr: float, momentum: float) -> SegmentationModule:
    from functools import partial

    return SegmentationModule(
        "fpn",
        "resnet18",
        num_classes=3,
        optimizer=partial(torch.optim.SGD, lr=lr, momentum=momentum),
    )


def fit(model: SegmentationModule, root: Path, steps: int, **kwargs: Any) -> Trainer:
    trainer = Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=root,
        callbacks=kwargs.pop("callbacks", []),
    )
    trainer.fit(model, DataLoader(Random(), batch_size=2), **kwargs)
    return trainer


@pytest.mark.parametrize("with_callback", [True, False])
def test_a_resumed_fit_takes_the_modules_optimiser_arguments(
    with_callback: bool, tmp_path: Path
) -> None:
    first = fit(module(0.01, 0.9), tmp_path / "a", steps=2)
    ckpt = tmp_path / "two.ckpt"
    first.save_checkpoint(ckpt)
    callbacks = [TypedOptimizerOnResume()] if with_callback else []
    resumed = fit(module(0.5, 0.5), tmp_path / "b", steps=3, ckpt_path=ckpt, callbacks=callbacks)
    group = resumed.optimizers[0].param_groups[0]
    scheduler = resumed.lr_scheduler_configs[0].scheduler
    if with_callback:  # the typed values, at the schedule's position of the checkpoint
        assert group["initial_lr"] == pytest.approx(0.5) and group["momentum"] == 0.5
        assert scheduler.base_lrs == [pytest.approx(0.5)]
    else:  # Lightning restores the checkpoint's optimiser as it was
        assert group["initial_lr"] == pytest.approx(0.01) and group["momentum"] == 0.9
