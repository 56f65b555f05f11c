"""The data set side of :class:`~lmp_lightning.data.SegmentationDataModule`: the splits of its
data set, built when needed, their files checked once, decoded into memory when asked, and the
label space and input scale they give."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmp_lightning.data.base import SegmentationDataset, Split
from lmp_lightning.data.in_memory import InMemoryDataset
from lmp_lightning.data.registry import dataset_name, dataset_spec
from lmp_lightning.data.spec import DatasetSpec
from lmp_lightning.errors import InputError

__all__ = ["STAGE_SPLITS", "DatasetSplits", "predict_input_scale"]

STAGE_SPLITS: dict[str, tuple[Split, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}
"""The splits each stage reads."""


def predict_input_scale(
    dataset: Any = "synthetic", predict_rescale: bool = True, predict_scale: float | None = None
) -> float:
    """The factor ``predict_dir`` images are resized by, from the data module's arguments (see
    :attr:`SegmentationDataModule.input_scale`).

    Args:
        dataset: the data set, in any form :func:`~lmp_lightning.data.registry.dataset_spec`
            takes (a data set, a name, ``{"class_path", "init_args"}``).
        predict_rescale: resize by the data set's scale.
        predict_scale: the factor itself, instead.

    Example:
        >>> from lmp_lightning.data.sets import CamVid
        >>> predict_input_scale(CamVid(scale=0.5)), predict_input_scale("synthetic")
        (0.5, 1.0)
    """
    if predict_scale is not None:
        return float(predict_scale)
    if not predict_rescale:
        return 1.0
    return float(dataset_spec(dataset).input_scale)


def _checked_marker(dataset: Any) -> Path | None:
    """Where the user's cache remembers that ``dataset``'s label files passed their check: a
    name hashed from its files' names, sizes and modification times and its label space."""
    from lmp_lightning.sampling.class_statistics import dataset_fingerprint, default_cache_dir

    if not callable(getattr(dataset, "files", None)):
        return None
    try:
        fingerprint = dataset_fingerprint(dataset)
    except (OSError, TypeError, AttributeError):
        return None
    space = f"{getattr(dataset, 'num_classes', '')}|{getattr(dataset, 'ignore_index', '')}"
    key = hashlib.sha256(f"{fingerprint}|{space}".encode()).hexdigest()[:16]
    return default_cache_dir().parent / "label_checks" / f"{key}.ok"


class DatasetSplits:
    """The splits of one data set, as a data module reads them.

    Args:
        spec: the data set.
        in_memory: decode every image and label of a split once and keep them
            (:class:`~lmp_lightning.data.in_memory.InMemoryDataset`).
    """

    def __init__(self, spec: DatasetSpec, in_memory: bool = False) -> None:
        self.spec = spec
        self.name = dataset_name(spec)
        """The data set's short name (its class's name when it has none), for messages."""
        self.in_memory = in_memory
        self._memory: dict[Split, InMemoryDataset] = {}
        self._checked: set[Split] = set()
        self._label_dataset: SegmentationDataset | None = None

    @property
    def _declared(self) -> type[SegmentationDataset] | None:
        """The class of the splits when it declares the label space, else ``None``."""
        cls = getattr(self.spec, "dataset_class", None)
        return cls if hasattr(cls, "class_names") else None

    @property
    def label_space(self) -> type[SegmentationDataset] | SegmentationDataset:
        """The data set class when it declares its label space, else (a data set whose classes
        are read from its files, like ``folder``) its training split, built once."""
        declared = self._declared
        if declared is not None:
            return declared
        if self._label_dataset is None:
            self._label_dataset = self.raw("train")
        return self._label_dataset

    def read(self, split: Split) -> SegmentationDataset:
        """The split, built from its files now; a bad argument or file is an
        :class:`~lmp_lightning.errors.InputError` naming the data set and the split."""
        try:
            return self.spec.build(split)
        except (ValueError, TypeError) as error:  # the data set's arguments or files
            if isinstance(error, InputError):
                raise
            raise InputError(f"{self.name} {split} split: {error}") from None

    def raw(self, split: Split) -> SegmentationDataset:
        """The split, decoded once and kept when ``in_memory``, else :meth:`read`."""
        if not self.in_memory:
            return self.read(split)
        if split not in self._memory:
            self._memory[split] = InMemoryDataset(self.read(split))
        return self._memory[split]  # type: ignore[return-value]

    def check(self, splits: Iterable[Split]) -> None:
        """Checks the files of ``splits``, each split once (see
        :meth:`SegmentationDataModule.check_files`)."""
        if not self.spec.reads_files:
            return
        labels = self._declared is None
        for split in splits:
            if split in self._checked:
                continue
            dataset = self.read(split)
            check = getattr(dataset, "check_files", None)
            if callable(check):
                decode = labels and split not in self._memory
                marker = _checked_marker(dataset) if decode else None
                check(labels=decode and not (marker is not None and marker.is_file()))
                if marker is not None:
                    try:
                        marker.parent.mkdir(parents=True, exist_ok=True)
                        marker.touch()
                    except OSError:
                        pass  # an unwritable cache costs the decode next time
            self._checked.add(split)
