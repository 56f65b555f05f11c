"""The training loader: process shares, its own state, and resuming through Lightning's loader
state (the checkpoint's ``combined_loader`` entry of the training loop)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import Dataset, DistributedSampler

from lmp_lightning.data.loaders import EpochShuffle, ResumableLoader, SamplerShard
from lmp_lightning.sampling import ClassStatistics, PerformanceAwareSampler
from tests.test_seeds import _fit, folder_data  # noqa: F401 (a fixture)


class _Echo(Dataset[torch.Tensor]):
    """Each sample is its index (a draw of the performance-aware sampler: a triple)."""

    def __getitem__(self, index: Any) -> torch.Tensor:
        return torch.tensor(index)


def _stats() -> ClassStatistics:
    counts = torch.tensor([[10, 0], [5, 5], [9, 1]])
    return ClassStatistics(counts, torch.zeros(3, 2, 1, 2, dtype=torch.int32))


def test_process_shares_split_each_epoch_as_distributed_sampler_does() -> None:
    for epoch in (0, 1):
        shares = [list(EpochShuffle(range(7), 3, epoch, rank=r, num_replicas=2)) for r in (0, 1)]
        one = list(EpochShuffle(range(7), 3, epoch))
        assert len(shares[0]) == len(shares[1]) == 4  # padded to equal shares
        assert shares[0] == one[0::2] and shares[1] == one[1::2] + one[:1]
    sampler = PerformanceAwareSampler(_stats(), num_samples=8, rank=1, num_replicas=2)
    shard = SamplerShard(sampler)
    assert isinstance(shard, DistributedSampler)  # Lightning does not wrap it
    shard.set_epoch(2)
    assert sampler.epoch == shard.epoch == 2 and len(shard) == 4
    drawn = list(shard)
    shard.skip_next(1)  # this process's draws
    assert list(shard) == drawn[1:] and list(shard) == drawn


@pytest.mark.parametrize("workers", [0, 1])
def test_the_loader_state_continues_an_epoch(workers: int) -> None:
    def loader() -> ResumableLoader[Any]:
        sampler = SamplerShard(PerformanceAwareSampler(_stats(), num_samples=8))
        return ResumableLoader(_Echo(), sampler, batch_size=2, num_workers=workers)

    first = loader()
    first.epochs.set_epoch(1)
    batches = iter(first)
    next(batches)
    probabilities = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert isinstance(first.epochs, SamplerShard)
    first.epochs.sampler.set_class_probabilities(probabilities)
    state = first.state_dict()
    assert (state["epoch"], state["batches"]) == (1, 1)
    rest = [b.tolist() for b in batches]
    again = loader()
    again.load_state_dict(state)
    assert torch.equal(again.epochs.state_dict()["class_probabilities"], probabilities)
    assert [b.tolist() for b in again] == rest and len(rest) == 3
    again.load_state_dict({"epoch": 1, "batches": 4})  # the epoch had ended: the next one
    assert again.epochs.epoch == 2 and len(list(again)) == 4


class _Linear(LightningModule):
    """Records every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[list[int]] = []

    def train_dataloader(self) -> ResumableLoader[Any]:
        return ResumableLoader(_Echo(), EpochShuffle(range(6), seed=1), batch_size=2)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.append(batch.tolist())
        return self.layer(batch.float()[:, None]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _train(root: Path, ckpt_path: Path | None = None, every_step: bool = False) -> list:
    model = _Linear()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[ModelCheckpoint(root, every_n_train_steps=1, save_top_k=-1)]
        if every_step
        else [],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, ckpt_path=ckpt_path)
    assert not [w for w in caught if "not resumable" in str(w.message)]
    return model.seen


def test_lightning_saves_the_loader_state_and_resumes_mid_epoch(tmp_path: Path) -> None:
    straight = _train(tmp_path / "a", every_step=True)
    assert len(straight) == 6 and straight[:3] != straight[3:]
    (middle,) = (tmp_path / "a").glob("epoch=1-step=4*.ckpt")  # one batch into epoch 1
    saved = torch.load(middle, weights_only=False)
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 1, "sampler": {}}
    ]
    assert _train(tmp_path / "b", ckpt_path=middle) == straight[4:]


def test_a_checkpoint_without_the_loaders_state_resumes_from_the_data_modules(
    folder_data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A checkpoint written before the loader kept its own state (the data module's state held
    the position then), after two of the three batches of epoch 1."""
    common = ["--seed_everything=3", "--data.num_workers=0", "--trainer.max_epochs=2"]
    every_step = [
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={tmp_path / 'steps'}",
        "--trainer.callbacks.every_n_train_steps=1",
        "--trainer.callbacks.save_top_k=-1",
    ]
    whole = _fit(folder_data, tmp_path / "whole", *common, *every_step)
    assert len(whole) == 6
    (middle,) = [p for p in (tmp_path / "steps").iterdir() if "step5" in p.name.replace("=", "")]
    saved = torch.load(middle, weights_only=False)
    del saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    (data,) = [v for k, v in saved.items() if k.endswith("SegmentationDataModule")]
    assert data == {"epoch": 1, "batches": 2}  # the old checkpoints' keys
    torch.save(saved, middle)
    rest = _fit(folder_data, tmp_path / "resumed", *common, f"--ckpt_path={middle}")
    # the batches' contents (Lightning 2.4 numbers the first resumed batch 1, later ones 2)
    assert [h for *_, h in rest] == [h for *_, h in whole[5:]] and len(rest) == 1
