"""The base class of every data set: one split of ``{"image", "mask"}`` samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
from torch.utils.data import Dataset

__all__ = ["SPLITS", "SegmentationDataset", "Split"]

Split = Literal["train", "val", "test"]
"""The name of a data split."""

SPLITS: tuple[Split, ...] = get_args(Split)
"""Every split, in the order ``train``, ``val``, ``test``."""


class SegmentationDataset(Dataset[dict[str, np.ndarray]], ABC):
    """A semantic segmentation data set of ``{"image", "mask"}`` samples.

    ``sample["image"]`` is a ``uint8`` RGB array ``(H, W, 3)`` and ``sample["mask"]`` an ``int64``
    label array ``(H, W)`` whose values are in ``range(num_classes)`` or ``ignore_index``.

    A subclass declares its label space as class attributes, so that a data module can read
    ``num_classes`` and ``class_names`` without building the data set. ``num_classes`` is
    derived from ``class_names`` when the subclass is defined. A data set that reads files sets
    ``requires_root = True``; :meth:`check_root` then rejects a missing data directory with a
    message naming the path. The data module builds its splits through a
    :class:`~lmp_lightning.data.spec.DatasetSpec` (the data set's arguments), registered under a
    short name.

    Attributes:
        class_names: the names of the classes, in label order.
        ignore_index: the label of pixels that have no class.
        num_classes: ``len(class_names)``.
        requires_root: whether the data set reads its data from a directory ``root``.
    """

    class_names: ClassVar[tuple[str, ...]]
    ignore_index: ClassVar[int]
    num_classes: ClassVar[int]
    requires_root: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = getattr(cls, "class_names", None)
        if names is not None:
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"{cls.__name__}.class_names must be unique and non-empty")
            cls.num_classes = len(names)

    @classmethod
    def check_root(cls, root: str | Path | None) -> Path | None:
        """Checks the data directory of a data set that needs one.

        Args:
            root: the data directory, or ``None``.

        Returns:
            ``root`` as a :class:`~pathlib.Path` (``None`` stays ``None``).

        Raises:
            ValueError: the data set needs a directory and ``root`` is ``None``.
            FileNotFoundError: the data set needs a directory and ``root`` is not one; the
                message names the path.

        Example:
            >>> from lmp_lightning.data import SyntheticStreetScenes
            >>> SyntheticStreetScenes.check_root(None) is None
            True
        """
        path = None if root is None else Path(root).expanduser()
        if not cls.requires_root:
            return path
        if path is None:
            raise ValueError(
                f"data set {cls.__name__} reads files: pass its data directory with "
                "--data.root DIR (or --data.dataset.root DIR; root= from Python)"
            )
        if not path.is_dir():
            raise FileNotFoundError(
                f"data directory of {cls.__name__} not found: {str(path)!r} "
                f"(resolved to {str(path.resolve())!r}); pass the directory that holds it as root"
            )
        return path

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""
