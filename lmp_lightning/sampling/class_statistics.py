"""Class statistics of a training set: pixel counts per image and class, and pixels to centre
crops on; built once and cached on disk."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lmp_lightning.checkpoints import load_checkpoint

__all__ = ["ClassStatistics", "dataset_fingerprint", "default_cache_dir", "sample_arrays"]

_FORMAT = 1  # bumped when the cached layout changes


def sample_arrays(sample: Any) -> tuple[Any, np.ndarray]:
    """``(image, mask)`` of an untransformed sample: a dict with ``"image"`` and ``"mask"`` or
    an ``(image, mask)`` tuple; the mask as an ``(H, W)`` integer array (a PIL image or array).

    Raises:
        TypeError: the sample is neither, or its mask is not ``(H, W)`` integers.

    Example:
        >>> sample_arrays((np.zeros((2, 3, 3), np.uint8), np.ones((2, 3), np.uint8)))[1].shape
        (2, 3)
    """
    if isinstance(sample, dict) and "mask" in sample:
        image, mask = sample.get("image"), sample["mask"]
    elif isinstance(sample, tuple | list) and len(sample) >= 2:
        image, mask = sample[0], sample[1]
    else:
        got = f"a dict with keys {sorted(sample)}" if isinstance(sample, dict) else type(sample)
        raise TypeError(
            f"samples must be dicts with 'image' and 'mask' or (image, mask) tuples, got {got}"
        )
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(
            f"a sample's mask must be (H, W) integer labels, got {mask.dtype} of shape "
            f"{mask.shape} (untransformed samples: numpy arrays or PIL images)"
        )
    return image, mask


class _ImageStats(Dataset[tuple[np.ndarray, np.ndarray]]):
    """Per-image statistics, computed in loader workers."""

    def __init__(
        self, dataset: Dataset, num_classes: int, ignore_index: int, points: int, seed: int
    ) -> None:
        self.dataset, self.num_classes = dataset, num_classes
        self.ignore_index, self.points, self.seed = ignore_index, points, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        mask = sample_arrays(self.dataset[index])[1]
        flat = mask.ravel()
        labelled = flat[flat != self.ignore_index]
        if labelled.size and (labelled.min() < 0 or labelled.max() >= self.num_classes):
            bad = np.unique(labelled[(labelled < 0) | (labelled >= self.num_classes)])[:10]
            raise ValueError(
                f"image {index} has labels {bad.tolist()} outside "
                f"[0, {self.num_classes}) that are not {self.ignore_index}"
            )
        counts = np.bincount(labelled, minlength=self.num_classes)
        rng = np.random.default_rng([self.seed, index])
        points = np.full((self.num_classes, self.points, 2), -1, dtype=np.int32)
        order = np.argsort(flat, kind="stable")  # pixel indices grouped by label
        starts = np.searchsorted(flat[order], np.arange(self.num_classes), side="left")
        for c in np.flatnonzero(counts):
            n = int(counts[c])
            chosen = order[starts[c] + rng.choice(n, size=min(n, self.points), replace=False)]
            points[c, : chosen.size, 0], points[c, : chosen.size, 1] = np.divmod(
                chosen, mask.shape[1]
            )
        return counts, points


def dataset_fingerprint(dataset: Any) -> str:
    """Identifies a data set's content for the statistics cache: the names, sizes and
    modification times of its files when it lists them (``files()``), else its ``repr``."""
    files = getattr(dataset, "files", None)
    if not callable(files):
        return repr(dataset)
    digest = hashlib.sha256()
    for pair in files():
        for path in pair if isinstance(pair, (tuple, list)) else (pair,):
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """The user's cache folder for class statistics, never a data folder:
    ``$XDG_CACHE_HOME/lmp_lightning/class_statistics`` (``~/.cache/...`` by default).

    Example:
        >>> default_cache_dir().parts[-2:]
        ('lmp_lightning', 'class_statistics')
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lmp_lightning" / "class_statistics"


@dataclass
class ClassStatistics:
    """Per-image class statistics of a training set.

    Attributes:
        pixel_counts: ``(num_images, C)`` labelled pixel counts of every class in every image
            (also the input of the inverse median frequency loss and the reports).
        points: ``(num_images, C, P, 2)`` int32 ``(row, column)`` of up to ``P`` pixels of
            class ``c`` in image ``i``, drawn uniformly without replacement; ``-1`` pads.
    """

    pixel_counts: Tensor
    points: Tensor

    @property
    def num_images(self) -> int:
        return int(self.pixel_counts.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.pixel_counts.shape[1])

    @property
    def class_pixels(self) -> Tensor:
        """``(C,)`` total pixels per class."""
        return self.pixel_counts.sum(0)

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        num_classes: int,
        ignore_index: int,
        points_per_class: int = 64,
        seed: int = 0,
        num_workers: int = 0,
        progress: bool = True,
    ) -> ClassStatistics:
        """Reads every mask of ``dataset`` once (with a progress bar).

        Args:
            dataset: untransformed samples, dicts with ``"image"`` and ``"mask"`` or ``(image,
                mask)`` tuples, the mask ``(H, W)`` integer labels.
            num_classes: number of classes.
            ignore_index: the label of unlabelled pixels.
            points_per_class: how many pixels of each class to keep per image.
            seed: seed of the choice of those pixels.
            num_workers: loader worker processes reading the masks.
            progress: show a progress bar.

        Raises:
            ValueError: a label outside ``[0, num_classes)`` that is not ``ignore_index``.

        Example:
            >>> masks = [{"mask": np.array([[0, 1], [1, 255]])}, {"mask": np.array([[1, 1]])}]
            >>> stats = ClassStatistics.build(masks, 3, 255, points_per_class=2, progress=False)
            >>> stats.pixel_counts.tolist()
            [[1, 2, 0], [0, 2, 0]]
        """
        loader = DataLoader(
            _ImageStats(dataset, num_classes, ignore_index, points_per_class, seed),
            batch_size=None,
            num_workers=num_workers,
            # its own generator: an iterator seeds itself from the global RNG otherwise, and a
            # run that builds the statistics would then train differently from one that
            # reads them from the cache
            generator=torch.Generator().manual_seed(seed),
        )
        counts, points = [], []
        for c, p in tqdm(loader, total=len(loader), desc="class statistics", disable=not progress):
            counts.append(torch.as_tensor(c, dtype=torch.int64))
            points.append(torch.as_tensor(p))
        return cls(torch.stack(counts), torch.stack(points))

    def save(self, path: str | Path) -> None:
        """Writes the statistics atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(
            {"format": _FORMAT, "pixel_counts": self.pixel_counts, "points": self.points}, tmp
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ClassStatistics:
        state = load_checkpoint(path, what="class statistics")
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} holds class statistics of another format")
        return cls(state["pixel_counts"], state["points"])

    @classmethod
    def cached(
        cls,
        dataset: Dataset,
        num_classes: int,
        ignore_index: int,
        fingerprint: str,
        cache_dir: str | Path,
        points_per_class: int = 64,
        seed: int = 0,
        num_workers: int = 0,
        progress: bool = True,
    ) -> ClassStatistics:
        """Loads the statistics from ``cache_dir``, or builds and saves them.

        The file name holds a hash of ``fingerprint`` (which a data set derives from its files'
        names, sizes and modification times) and of the arguments, so changed data or settings
        build anew instead of reading stale statistics. A cache directory that cannot be
        written only costs the rebuild next time.
        """
        key = hashlib.sha256(
            f"{fingerprint}|{num_classes}|{ignore_index}|{points_per_class}|{seed}|{_FORMAT}".encode()
        ).hexdigest()[:16]
        path = Path(cache_dir) / f"class_statistics-{key}.pt"
        if path.is_file():
            try:
                return cls.load(path)
            except (OSError, ValueError, RuntimeError, KeyError):
                pass  # unreadable or truncated: rebuild
        stats = cls.build(
            dataset, num_classes, ignore_index, points_per_class, seed, num_workers, progress
        )
        try:
            stats.save(path)
        except OSError:
            pass
        return stats

    @classmethod
    def for_dataset(
        cls,
        dataset: Dataset,
        num_classes: int,
        ignore_index: int,
        cache_dir: str | Path | None = None,
        **options: Any,
    ) -> ClassStatistics:
        """The statistics of a data set, cached when it reads files.

        A data set that lists its files (``files()``) is cached in ``cache_dir``, by default
        :func:`default_cache_dir` (the user's cache: nothing is written into a data folder
        unless ``cache_dir`` points there); a generated data set is rebuilt (cheap) unless
        ``cache_dir`` is given. ``options`` go to :meth:`build`.
        """
        if cache_dir is None and not callable(getattr(dataset, "files", None)):
            return cls.build(dataset, num_classes, ignore_index, **options)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return cls.cached(
            dataset, num_classes, ignore_index, dataset_fingerprint(dataset), cache, **options
        )
