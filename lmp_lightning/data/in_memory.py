"""Decoded samples kept in memory: each image and label file is read and decoded once."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from torch.utils.data import Dataset

__all__ = ["InMemoryDataset"]


class InMemoryDataset(Dataset):
    """A data set whose samples are all decoded when it is made and then served from memory.

    Reading and decoding PNG files is a large share of a CPU training step on small crops; a
    data set that fits in memory (CamVid at half resolution: 63 MB) is decoded once instead of
    every epoch. Loader workers started later share the decoded arrays (copy-on-write). The
    samples are exactly those of ``dataset`` (its scale and label mapping applied), and its other
    attributes (``files()``, ``class_names``, ...) are passed through.

    Args:
        dataset: a data set of ``{"image", "mask"}`` numpy samples.

    Example:
        >>> from lmp_lightning.data import build_dataset
        >>> raw = build_dataset("synthetic", "train", num_train_images=3, image_size=(64, 64))
        >>> cached = InMemoryDataset(raw)
        >>> len(cached), bool((cached[2]["mask"] == raw[2]["mask"]).all()), cached.num_classes
        (3, True, 10)
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.samples: list[dict[str, np.ndarray]] = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        # a copy (a memcpy, far cheaper than decoding): a transform may write into its input
        return {k: v.copy() for k, v in self.samples[operator.index(index)].items()}

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self) -> str:
        return f"InMemoryDataset({self.dataset!r})"
