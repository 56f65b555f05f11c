"""The callback end to end: resume equality, logging, and two-process DDP."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning import Trainer

from lmp_lightning.callbacks import PerformanceAwareSampling
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.data.sets import Synthetic
from lmp_lightning.module import SegmentationModule
from lmp_lightning.sampling import CropSampling, PerformanceAwareSampler

ROOT = Path(__file__).resolve().parents[2]


def _sampled_data(images: int, batch_size: int, sampler: CropSampling) -> SegmentationDataModule:
    """Synthetic 64x80 images, crops of 32, one validation image."""
    return SegmentationDataModule(
        Synthetic(num_train_images=images, num_val_images=1, image_size=(64, 80)),
        crop_size=32,
        batch_size=batch_size,
        sampler=sampler,
    )


def _fit(
    tmp_path: Path, max_epochs: int, ckpt_path: str | None = None, extra: list | None = None
) -> list[tuple]:
    """Trains a tiny model; returns every draw of the sampler as (epoch, image, class, seed)."""
    drawn: list[tuple] = []
    original = PerformanceAwareSampler.__iter__

    def recording(self):  # type: ignore[no-untyped-def]
        for item in original(self):
            drawn.append((self.epoch, *item))
            yield item

    torch.manual_seed(0)
    data = _sampled_data(8, 4, CropSampling(cache_dir=str(tmp_path / "cache")))
    model = SegmentationModule(
        "fpn",
        "resnet18",
        num_classes=data.num_classes,
        class_names=data.class_names,
        optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-4),
    )
    callback = PerformanceAwareSampling()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback, *(extra or [])],
        deterministic=True,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    PerformanceAwareSampler.__iter__ = recording  # type: ignore[method-assign]
    try:
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    finally:
        PerformanceAwareSampler.__iter__ = original  # type: ignore[method-assign]
    trainer.save_checkpoint(tmp_path / f"after-{max_epochs}.ckpt")
    return drawn


def test_resumed_run_draws_what_an_uninterrupted_run_draws(tmp_path: Path) -> None:
    straight = _fit(tmp_path / "a", max_epochs=3)
    first = _fit(tmp_path / "b", max_epochs=2)
    resumed = _fit(tmp_path / "b", max_epochs=3, ckpt_path=str(tmp_path / "b/after-2.ckpt"))
    assert [d for d in straight if d[0] < 2] == first
    assert [d for d in straight if d[0] == 2] == resumed
    assert len(resumed) == 8
    saved = torch.load(tmp_path / "b/after-3.ckpt", weights_only=False)
    (state,) = [v for k, v in saved.items() if k.endswith("SegmentationDataModule")]
    probabilities = state["sampler"]["class_probabilities"]
    assert probabilities.sum().item() == pytest.approx(1.0)
    assert not torch.allclose(probabilities, torch.full_like(probabilities, 0.1))  # steered


@pytest.mark.parametrize("shard", [False, True], ids=["lightning-splits", "sampler-shards"])
def test_two_process_ddp(tmp_path: Path, shard: bool) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("ddp_sampling_script.py")),
            str(tmp_path),
            str(int(shard)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for epoch in ("0", "1"):
        seeds = [{tuple(d) for d in rank["draws"][epoch]} for rank in ranks]
        assert seeds[0] and seeds[1] and not seeds[0] & seeds[1]  # disjoint shares
    assert ranks[0]["probabilities"] == ranks[1]["probabilities"]  # the same on every rank
    assert ranks[0]["probabilities"] != [0.1] * 10  # and steered by the training IoU


def test_resumed_mid_epoch_continues_the_stream(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    straight = _fit(tmp_path / "a", max_epochs=2)
    every_step = ModelCheckpoint(dirpath=tmp_path / "steps", every_n_train_steps=1, save_top_k=-1)
    _fit(tmp_path / "b", max_epochs=1, extra=[every_step])
    (middle,) = [p for p in (tmp_path / "steps").iterdir() if "step=1" in p.name]  # 1 of 2 batches
    resumed = _fit(tmp_path / "c", max_epochs=2, ckpt_path=str(middle))
    assert resumed == straight[4:]  # the rest of epoch 0, then epoch 1


def test_drawn_pixels_are_counted_per_class_without_the_ignored() -> None:
    """The per-step count (a scatter-add on the mask's device) against ``torch.bincount`` of the
    labelled pixels, over several batches, the ignore label left out."""
    callback = PerformanceAwareSampling()
    callback.class_names = ["a", "b", "c", "d"]
    callback._drawn = torch.zeros(4, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    masks = [torch.randint(0, 4, (2, 5, 7), generator=g) for _ in range(3)]
    for mask in masks:
        mask[0, 0] = 255
        callback._count_drawn(mask)
    labelled = torch.cat([m[m != 255] for m in masks])
    assert callback._drawn.tolist() == torch.bincount(labelled, minlength=4).tolist()


def test_the_callback_needs_the_data_modules_sampler(tmp_path: Path) -> None:
    synthetic = Synthetic(num_train_images=4, num_val_images=1, image_size=(64, 80))
    data = SegmentationDataModule(synthetic)
    model = SegmentationModule("fpn", "resnet18", num_classes=data.num_classes)
    trainer = Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        callbacks=[PerformanceAwareSampling()],
    )
    with pytest.raises(ValueError, match=r"add --data\.sampler CropSampling"):
        trainer.fit(model, datamodule=data)


def test_a_sampler_without_the_callback_draws_classes_uniformly(tmp_path: Path) -> None:
    """The data module's sampler alone: crops centred on classes drawn uniformly over the
    classes present (nothing steers the probabilities)."""
    data = _sampled_data(4, 2, CropSampling(uniform_mix=0.0))
    data.setup("fit")
    sampler = data.train_sampler
    assert sampler is not None
    present = sampler.present.double()
    assert torch.equal(sampler.class_probabilities, present / present.sum())
    batch = next(iter(data.train_dataloader()))
    assert tuple(batch["image"].shape) == (2, 3, 32, 32)
