"""The training loader and its samplers: one path for uniform crops and the performance-aware
sampler, one process or several, resumed mid-epoch through Lightning's own loader state.

A training ``DataLoader`` with ``state_dict``/``load_state_dict`` is checkpointed by Lightning
with its training loop's state (key ``combined_loader``) and restored before the first batch of
a run resumed mid-epoch. :class:`ResumableLoader` is one: it counts the batches it yields and keeps
its sampler's state. Its sampler is a ``DistributedSampler`` (:class:`EpochShuffle`, or
:class:`SamplerShard` around a
:class:`~lmp_lightning.sampling.PerformanceAwareSampler`) that takes this process's share of
the epoch itself, so that Lightning (``use_distributed_sampler``) leaves it in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any, TypeVar, cast

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Generator, Tensor, randperm
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from lmp_lightning.data.base import SegmentationDataset
from lmp_lightning.errors import InputError

if TYPE_CHECKING:
    from lmp_lightning.sampling import PerformanceAwareSampler

__all__ = [
    "EpochShuffle",
    "ResumableLoader",
    "SamplerShard",
    "TransformedDataset",
    "epoch_seed",
    "pad_collate",
]

T = TypeVar("T")


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch)``.

    Example:
        >>> epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(0, 2)
        True
    """
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return int(state) >> 1  # a Python int: numpy 1.24 does not shift a uint64 by an int


class TransformedDataset(Dataset[dict[str, Tensor]]):
    """Applies an albumentations pipeline to a :class:`SegmentationDataset`'s samples.

    Args:
        dataset: the untransformed data set.
        transform: a pipeline that ends in tensors (image ``(3, h, w)``, mask ``(h, w)``).
    """

    def __init__(self, dataset: SegmentationDataset, transform: A.Compose) -> None:
        self.dataset = dataset
        self.transform = transform
        self.epoch_seed: int | None = None
        """When set, sample ``i`` is augmented with a seed derived from ``(epoch_seed, i)``: the
        same whatever the order, the worker, the process or the batches skipped before it."""

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = self.dataset[index]
        if self.epoch_seed is not None:
            self.transform.set_random_seed(epoch_seed(self.epoch_seed, index) % 2**32)
        try:
            out = self.transform(image=sample["image"], mask=sample["mask"])
        except cv2.error as error:  # e.g. an image too small to scale
            files = getattr(self.dataset, "files", None)
            name = repr(str(files()[index][0])) if callable(files) else f"sample {index}"
            height, width = sample["image"].shape[:2]
            detail = str(error).strip().splitlines()[-1].rsplit("error: ", 1)[-1][:120]
            raise InputError(
                f"image {name} ({height}x{width} pixels) cannot be scaled and cropped: {detail}"
            ) from None
        return {"image": out["image"], "mask": out["mask"].long()}


class _EpochSampler(DistributedSampler[T]):
    """A ``DistributedSampler`` whose next iteration can leave out the samples that a resumed
    epoch already trained; its state is empty unless a subclass has one."""

    _skip = 0

    def skip_next(self, samples: int) -> None:
        """Makes the next iteration leave out the first ``samples`` of this process's share;
        later ones start at the beginning. The length stays the epoch's: Lightning counts the
        batches a resumed epoch already had."""
        self._skip = int(samples)

    def _take_skip(self) -> int:
        skip, self._skip = self._skip, 0
        return skip

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class EpochShuffle(_EpochSampler[int]):
    """A random permutation per epoch, drawn from ``(seed, epoch)`` alone; with
    ``num_replicas > 1`` this process's share of it, as ``DistributedSampler`` splits one
    (padded with the permutation's first samples to equal shares).

    Lightning calls :meth:`set_epoch` before every training epoch; ``on_epoch`` gets the
    epoch's seed (the data module seeds every sample's augmentation from it and the sample's
    index).

    Args:
        dataset: the samples (only their number is used).
        seed: the run's seed (the same on every process).
        epoch: the first epoch.
        on_epoch: called with each epoch's seed.
        rank: this process's rank.
        num_replicas: the number of processes.

    Example:
        >>> sampler = EpochShuffle(range(5), seed=0)
        >>> first = list(sampler)
        >>> sampler.set_epoch(1)
        >>> sorted(sampler) == sorted(first) and list(sampler) != first
        True
        >>> list(EpochShuffle(range(5), seed=0, epoch=1)) == list(sampler)
        True
        >>> sampler.skip_next(2)
        >>> list(sampler) == list(EpochShuffle(range(5), seed=0, epoch=1))[2:]
        True
        >>> shares = [list(EpochShuffle(range(5), 0, 1, rank=r, num_replicas=2)) for r in (0, 1)]
        >>> set(shares[0] + shares[1]) == set(range(5)), len(shares[0]), len(shares[1])
        (True, 3, 3)
    """

    def __init__(
        self,
        dataset: Sized,
        seed: int = 0,
        epoch: int = 0,
        on_epoch: Callable[[int], None] | None = None,
        rank: int = 0,
        num_replicas: int = 1,
    ) -> None:
        super().__init__(cast("Dataset[Any]", dataset), num_replicas, rank, True, int(seed))
        self.size = len(dataset)
        self.on_epoch = on_epoch
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Selects the permutation of ``epoch``."""
        self.epoch = int(epoch)
        if self.on_epoch is not None:
            self.on_epoch(epoch_seed(self.seed, self.epoch) % 2**32)

    def __iter__(self) -> Iterator[int]:
        order = Generator().manual_seed(epoch_seed(self.seed, self.epoch) ^ 1)
        indices = randperm(self.size, generator=order).tolist()
        if indices:  # padded to equal shares, as DistributedSampler does
            indices = (indices * math.ceil(self.total_size / len(indices)))[: self.total_size]
        share = indices[self.rank : self.total_size : self.num_replicas]
        return iter(share[self._take_skip() :])


class SamplerShard(_EpochSampler[tuple[int, int, int]]):
    """A :class:`~lmp_lightning.sampling.PerformanceAwareSampler` that splits its stream across
    processes itself (``rank``, ``num_replicas``), presented as a ``DistributedSampler`` so that
    Lightning does not wrap it; epoch and state are the wrapped sampler's, and a skip counts
    this process's draws.

    Args:
        sampler: the performance-aware sampler (``sampler``, the one the callback steers).
    """

    def __init__(self, sampler: PerformanceAwareSampler) -> None:
        self.sampler = sampler
        epoch = sampler.epoch  # DistributedSampler's __init__ sets epoch 0
        draws = cast("Dataset[Any]", range(sampler.num_samples))
        super().__init__(draws, sampler.num_replicas, sampler.rank, False, sampler.seed)
        self.epoch = epoch

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        skip = self._take_skip()
        if skip:  # the stream's draws of every process before them
            self.sampler.skip_next(skip * self.sampler.num_replicas)
        return iter(self.sampler)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


class ResumableLoader(DataLoader[T]):
    """A training ``DataLoader`` that Lightning checkpoints and restores by itself.

    Its :meth:`state_dict` (saved by Lightning's fit loop with every checkpoint) holds the
    epoch, the batches already yielded in it, counted here, and the sampler's state; a run
    resumed mid-epoch gets it back (:meth:`load_state_dict`) before its first batch, and the
    epoch goes on with the batches it had not trained. Incomplete batches are dropped. The
    sampler is asked for its epoch when the first batch of an iteration is drawn, after
    Lightning's ``set_epoch`` (Lightning may call ``iter`` on the loader before it); worker
    seeds come from a generator seeded with ``(sampler seed, epoch)``.

    Args:
        dataset: the training samples.
        sampler: :class:`EpochShuffle` or :class:`SamplerShard`.
        batch_size: samples per batch.
        **kwargs: further ``DataLoader`` arguments (``num_workers``, ``pin_memory``, ...).

    Example:
        >>> loader = ResumableLoader(range(6), EpochShuffle(range(6), seed=0), batch_size=2)
        >>> batches = iter(loader)
        >>> first = next(batches)
        >>> state = loader.state_dict()
        >>> state["epoch"], state["batches"]
        (0, 1)
        >>> again = ResumableLoader(range(6), EpochShuffle(range(6), seed=0), batch_size=2)
        >>> again.load_state_dict(state)
        >>> [b.tolist() for b in again] == [b.tolist() for b in batches]
        True
    """

    def __init__(
        self, dataset: Any, sampler: _EpochSampler[Any], batch_size: int, **kwargs: Any
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            generator=Generator(),
            **kwargs,
        )
        self.epochs = sampler
        self._position: tuple[int, int] | None = None
        self._resume: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[T]:  # type: ignore[override]
        return self._batches()

    def _batches(self) -> Iterator[T]:
        # a generator: nothing below runs (and no worker starts) before the first batch is asked
        epoch, done = self.epochs.epoch, 0
        if self._resume is not None:
            resumed, batches = self._resume
            self._resume = None
            if resumed == epoch:  # else Lightning went on to another epoch
                done = batches
                self.epochs.skip_next(batches * int(self.batch_size or 1))
        assert self.generator is not None
        self.generator.manual_seed(epoch_seed(self.epochs.seed, epoch))
        self._position = (epoch, done)
        for batch in super().__iter__():
            done += 1
            self._position = (epoch, done)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """``epoch``, ``batches`` (yielded in that epoch) and ``sampler`` (its state)."""
        epoch, batches = self._resume or self._position or (self.epochs.epoch, 0)
        return {"epoch": epoch, "batches": batches, "sampler": self.epochs.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Makes the next iteration continue the saved epoch (the next one, if it had ended)."""
        if "sampler" in state_dict:
            self.epochs.load_state_dict(state_dict["sampler"])
        epoch, batches = int(state_dict["epoch"]), int(state_dict.get("batches", 0))
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        self.epochs.set_epoch(epoch)
        self._resume = (epoch, batches) if batches else None


def pad_collate(batch: list[dict[str, Tensor]], ignore_index: int = 255) -> dict[str, Tensor]:
    """Collates full-size evaluation samples of different sizes: images are padded with 0 and
    masks with ``ignore_index`` at the bottom and right to the largest in the batch, so padding
    takes no part in the metrics; ``size`` holds each sample's own ``(H, W)``.

    Example:
        >>> a = {"image": torch.ones(3, 2, 3), "mask": torch.zeros(2, 3, dtype=torch.long)}
        >>> b = {"image": torch.ones(3, 4, 2), "mask": torch.zeros(4, 2, dtype=torch.long)}
        >>> out = pad_collate([a, b])
        >>> tuple(out["image"].shape), out["mask"][0, 3].tolist(), out["size"].tolist()
        ((2, 3, 4, 3), [255, 255, 255], [[2, 3], [4, 2]])
    """
    height = max(int(s["image"].shape[-2]) for s in batch)
    width = max(int(s["image"].shape[-1]) for s in batch)
    out = default_collate(
        [{k: v for k, v in s.items() if k not in ("image", "mask")} for s in batch]
    )

    def pad(x: Tensor, value: float) -> Tensor:
        return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]), value=value)

    out["image"] = torch.stack([pad(s["image"], 0.0) for s in batch])
    if all("mask" in s for s in batch):
        out["mask"] = torch.stack([pad(s["mask"], ignore_index) for s in batch])
    out["size"] = torch.tensor([list(s["image"].shape[-2:]) for s in batch])
    return out
