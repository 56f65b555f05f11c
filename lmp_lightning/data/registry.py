"""The registry that finds a data set by short name, the single source of truth for ``dataset=``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lmp_lightning.data.base import SPLITS, SegmentationDataset, Split

__all__ = ["DATASETS", "build_dataset", "get_dataset_class", "list_datasets", "register_dataset"]

DATASETS: dict[str, type[SegmentationDataset]] = {}
"""Short name -> data set class; filled by :func:`register_dataset`."""

_D = TypeVar("_D", bound=type[SegmentationDataset])


def register_dataset(name: str) -> Callable[[_D], _D]:
    """Class decorator that registers a :class:`SegmentationDataset` under a short name.

    Args:
        name: the name that ``SegmentationDataModule(dataset=...)`` looks up.

    Raises:
        ValueError: ``name`` is already taken.
    """

    def decorator(cls: _D) -> _D:
        if name in DATASETS:
            raise ValueError(f"a data set is already registered as {name!r}: {DATASETS[name]!r}")
        DATASETS[name] = cls
        return cls

    return decorator


def list_datasets() -> list[str]:
    """The registered short names, sorted.

    Example:
        >>> list_datasets()
        ['camvid', 'cityscapes', 'folder', 'synthetic', 'voc']
    """
    return sorted(DATASETS)


def get_dataset_class(name: str) -> type[SegmentationDataset]:
    """The data set class registered under ``name``.

    Args:
        name: one of :func:`list_datasets`.

    Raises:
        KeyError: an unknown name; the message lists the valid ones.

    Example:
        >>> get_dataset_class("synthetic").num_classes
        10
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; valid names are {list_datasets()}") from None


def build_dataset(
    name: str,
    split: Split,
    root: str | Path | None = None,
    *,
    seed: int = 0,
    num_images: int = 200,
    image_size: tuple[int, int] = (128, 160),
    **options: Any,
) -> SegmentationDataset:
    """Builds one split of a registered data set, checking its data directory first.

    Args:
        name: one of :func:`list_datasets`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: the data directory of a data set that reads files.
        seed: the seed of a generated data set.
        num_images: the number of images of a generated data set.
        image_size: ``(height, width)`` of a generated data set.
        **options: further arguments of the data set's ``from_split`` (e.g. ``scale=0.5`` for
            CamVid and Cityscapes at half resolution).

    Returns:
        The data set, untransformed.

    Raises:
        KeyError: an unknown ``name``.
        ValueError: an unknown ``split``, or a missing ``root`` for a data set that reads files.
        FileNotFoundError: ``root`` is not a directory; the message names the path.

    Example:
        >>> ds = build_dataset("synthetic", "val", num_images=4, image_size=(32, 48))
        >>> len(ds), ds[0]["image"].shape
        (4, (32, 48, 3))
    """
    cls = get_dataset_class(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    path = cls.check_root(root)
    try:
        return cls.from_split(
            split, path, seed=seed, num_images=num_images, image_size=image_size, **options
        )
    except TypeError as error:
        if options and "unexpected keyword" in str(error):
            raise ValueError(
                f"data set {name!r} does not take the options {sorted(options)}: {error}"
            ) from None
        raise
