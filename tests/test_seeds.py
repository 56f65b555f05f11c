"""One seed drives weights and data; a run resumed at an epoch end sees the batches of one that
never stopped."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
from lightning import Callback, LightningModule, Trainer

from lmp_lightning.cli import SegmentationCLI, run_cli
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.module import SegmentationModule

SAMPLER = [
    "--data.sampler=lmp_lightning.sampling.CropSampling",
    "--data.sampler.uniform_mix=0.5",
    "--trainer.callbacks+=lmp_lightning.callbacks.PerformanceAwareSampling",
]


class RecordBatches(Callback):
    """Records ``(epoch, batch index, hash of the batch)`` and a hash of the initial weights."""

    seen: ClassVar[list[tuple[int, int, str]]] = []
    weights: ClassVar[list[str]] = []

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        first = next(iter(pl_module.parameters()))
        RecordBatches.weights.append(hashlib.sha1(first.detach().numpy().tobytes()).hexdigest())

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        digest = hashlib.sha1()
        for key in ("image", "mask"):
            digest.update(batch[key].numpy().tobytes())
        RecordBatches.seen.append((trainer.current_epoch, batch_idx, digest.hexdigest()))


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fixed images and masks on disk: only the seed can change what a batch holds."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            mask = np.zeros((40, 56), np.uint8)
            mask[:, 28:] = 1
            mask[rng.integers(0, 40, 30), rng.integers(0, 56, 30)] = 2
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            cv2.imwrite(str(root / "masks" / split / f"{i}.png"), mask)
    (root / "classes.txt").write_text("a\nb\nc\n")
    return root


def _fit(root: Path, out: Path, *extra: str) -> list[tuple[int, int, str]]:
    RecordBatches.seen.clear()
    run_cli(
        [
            "fit",
            "--data.dataset=folder",
            f"--data.root={root}",
            "--data.crop_size=32",
            "--data.batch_size=2",
            "--model.encoder_name=resnet18",
            "--model.arch=fpn",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.logger=false",
            "--trainer.limit_val_batches=0",
            f"--trainer.default_root_dir={out}",
            "--trainer.callbacks+=tests.test_seeds.RecordBatches",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={out / 'checkpoints'}",
            "--trainer.callbacks.save_last=true",
            *extra,
        ]
    )
    return list(RecordBatches.seen)


@pytest.mark.parametrize("sampler", [[], SAMPLER], ids=["plain", "sampler"])
def test_seed_everything_drives_weights_and_batches(
    folder_data: Path, tmp_path: Path, sampler: list[str]
) -> None:
    RecordBatches.weights.clear()
    one = ["--trainer.max_steps=2", *sampler]
    a = _fit(folder_data, tmp_path / "a", "--seed_everything=1", *one)
    b = _fit(folder_data, tmp_path / "b", "--seed_everything=1", *one)
    c = _fit(folder_data, tmp_path / "c", "--seed_everything=2", *one)
    assert a == b
    assert a[0][2] != c[0][2] and a[1][2] != c[1][2]
    assert RecordBatches.weights[0] == RecordBatches.weights[1] != RecordBatches.weights[2]


def test_config_records_the_data_seed_and_an_explicit_one_wins(
    folder_data: Path, tmp_path: Path
) -> None:
    args = ["--data.dataset=folder", f"--data.root={folder_data}", "--model.encoder_name=resnet18"]

    def parsed(*extra: str) -> int:
        made = SegmentationCLI(
            SegmentationModule, SegmentationDataModule, args=[*args, *extra], run=False
        )
        assert made.config["data"]["seed"] == made.datamodule.hparams["seed"]
        return int(made.datamodule.hparams["seed"])

    assert parsed("--seed_everything=5") == 5
    assert parsed("--seed_everything=5", "--data.seed=7") == 7


class SigtermInEpoch1(Callback):
    """Delivers a SIGTERM, as Lightning's handler records it, after the second batch of epoch 1."""

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.current_epoch == 1 and trainer.fit_loop.epoch_loop.batch_idx == 1:
            trainer._signal_connector.received_sigterm = True


class SigtermOnEpoch0sLastBatch(Callback):
    """Delivers a SIGTERM after the last (third) batch of epoch 0: the checkpoint is written
    with every batch of the epoch done and the epoch not yet counted as finished."""

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.current_epoch == 0 and trainer.fit_loop.epoch_loop.batch_idx == 2:
            trainer._signal_connector.received_sigterm = True


CUTS = {"mid-epoch": "SigtermInEpoch1", "last-batch": "SigtermOnEpoch0sLastBatch"}
BATCHES_BEFORE_CUT = {"epoch-end": 3, "mid-epoch": 5, "last-batch": 3}  # 3 batches an epoch


def _cut(folder_data: Path, out: Path, cut: str, common: list[str]) -> list[tuple[int, int, str]]:
    """A fit stopped at the end of epoch 0, by a SIGTERM in the middle of epoch 1, or by one
    after the last batch of epoch 0."""
    if cut == "epoch-end":
        return _fit(folder_data, out, "--trainer.max_epochs=1", *common)
    with pytest.raises(SystemExit):  # Lightning's SIGTERM exception
        _fit(folder_data, out, "--trainer.max_epochs=3",
             f"--trainer.callbacks+=tests.test_seeds.{CUTS[cut]}", *common)  # fmt: skip
    return list(RecordBatches.seen)


def _resume_cases() -> list[Any]:
    """Every (sampler, workers, cut): the default run keeps the simplest and the hardest (the
    sampler, a worker process, a SIGTERM in mid-epoch); the other ten are slow (150 s)."""
    samplers = {"plain": [], "sampler": SAMPLER}
    cases = []
    cuts = ("epoch-end", "mid-epoch", "last-batch")
    for sampler_id, workers, cut in itertools.product(samplers, (0, 1), cuts):
        case = f"{sampler_id}-{workers}-{cut}"
        marks = () if case in ("plain-0-epoch-end", "sampler-1-mid-epoch") else (pytest.mark.slow,)
        cases.append(pytest.param(workers, samplers[sampler_id], cut, id=case, marks=marks))
    return cases


@pytest.mark.parametrize(("workers", "sampler", "cut"), _resume_cases())
def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_run(
    folder_data: Path, tmp_path: Path, workers: int, sampler: list[str], cut: str
) -> None:
    common = ["--seed_everything=3", f"--data.num_workers={workers}", *sampler]
    whole = _fit(folder_data, tmp_path / "whole", "--trainer.max_epochs=3", *common)
    assert {epoch for epoch, _, _ in whole} == {0, 1, 2}
    assert len({h for _, _, h in whole}) == len(whole)  # no batch repeats
    first = _cut(folder_data, tmp_path / "cut", cut, common)
    assert first == whole[: BATCHES_BEFORE_CUT[cut]]
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    rest = _fit(
        folder_data, tmp_path / "resumed", "--trainer.max_epochs=3", f"--ckpt_path={last}", *common
    )
    assert first + rest == whole
