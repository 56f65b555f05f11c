"""The registry that finds a data set by short name, the single source of truth for ``dataset=``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from lmp_lightning.data.base import SPLITS, SegmentationDataset, Split
from lmp_lightning.data.spec import DatasetSpec

__all__ = [
    "DATASETS",
    "build_dataset",
    "dataset_name",
    "dataset_spec",
    "get_dataset_class",
    "list_datasets",
    "register_dataset",
]

DATASETS: dict[str, type[DatasetSpec]] = {}
"""Short name -> data set class (a :class:`~lmp_lightning.data.spec.DatasetSpec`); filled by
:func:`register_dataset`."""

_D = TypeVar("_D", bound=type[DatasetSpec])


def register_dataset(name: str) -> Callable[[_D], _D]:
    """Class decorator that registers a :class:`~lmp_lightning.data.spec.DatasetSpec` under a
    short name: ``--data.dataset NAME`` (also ``dataset: NAME`` in a YAML file) and
    ``SegmentationDataModule(dataset="NAME")`` find it.

    Args:
        name: the short name.

    Raises:
        ValueError: ``name`` is already taken.
        TypeError: the class is not a ``DatasetSpec`` (a ``SegmentationDataset`` holds one
            split; its spec builds the splits).
    """

    def decorator(cls: _D) -> _D:
        if not (isinstance(cls, type) and issubclass(cls, DatasetSpec)):
            raise TypeError(
                f"register_dataset({name!r}) takes a subclass of "
                f"lmp_lightning.data.spec.DatasetSpec (the data set's arguments and the splits it "
                f"builds), got {cls!r}; lmp_lightning/data/sets.py has examples"
            )
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


def get_dataset_class(name: str) -> type[DatasetSpec]:
    """The data set class registered under ``name``, or a registered class by its own name.

    Args:
        name: one of :func:`list_datasets`, or a registered class's name (``"CamVid"``).

    Raises:
        KeyError: an unknown name; the message lists the valid ones.

    Example:
        >>> get_dataset_class("synthetic").dataset_class.num_classes
        10
        >>> get_dataset_class("CamVid") is get_dataset_class("camvid")
        True
    """
    cls = DATASETS.get(name) or {c.__name__: c for c in DATASETS.values()}.get(name)
    if cls is None:
        raise KeyError(f"unknown data set {name!r}; valid names are {list_datasets()}")
    return cls


def _spec_class(name: str) -> type[DatasetSpec]:
    """The data set class that ``name`` names: a short name, a registered class's name, or a
    class path (an alias of ``lmp_lightning.data.names`` is its registered class)."""
    from lmp_lightning._short_names import canonical_class

    if "." not in name:
        return get_dataset_class(name)
    module, _, attribute = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        if attribute in DATASETS:  # an alias of a process that registered more
            return DATASETS[attribute]
        raise KeyError(
            f"unknown data set {name!r}: no such class; valid names are {list_datasets()}"
        ) from None
    cls = canonical_class(cls)
    if not (isinstance(cls, type) and issubclass(cls, DatasetSpec)):
        raise KeyError(f"{name!r} is not a data set class (lmp_lightning.data.spec.DatasetSpec)")
    return cls


def dataset_spec(value: Any, options: Mapping[str, Any] | None = None) -> DatasetSpec:
    """The data set that ``value`` gives, in any of the forms a configuration holds it.

    Args:
        value: a :class:`~lmp_lightning.data.spec.DatasetSpec`; a name (short, class or class
            path: the data set with its defaults); or ``{"class_path", "init_args"}`` (a dict,
            or jsonargparse's ``Namespace`` before instantiation).
        options: further arguments of a named data set (the ``dataset_options`` of a config
            written by lmp-lightning 0.1).

    Raises:
        KeyError: an unknown name; the message lists the valid ones.
        TypeError: ``value`` is none of these, or a bad argument.
        ValueError: a bad argument value.

    Example:
        >>> dataset_spec("camvid", {"scale": 0.5})
        CamVid(root=None, scale=0.5)
        >>> dataset_spec({"class_path": "CamVid", "init_args": {"scale": 0.5}}).input_scale
        0.5
    """
    if isinstance(value, DatasetSpec):
        return value
    arguments: dict[str, Any] = {}
    if isinstance(value, str):
        cls = _spec_class(value)
    elif hasattr(value, "get") and isinstance(value.get("class_path"), str):
        cls = _spec_class(value.get("class_path"))
        init_args = value.get("init_args") or {}
        as_dict = getattr(init_args, "as_dict", None)  # a jsonargparse Namespace
        arguments.update(as_dict() if callable(as_dict) else init_args)
    elif isinstance(value, SegmentationDataset):
        raise TypeError(
            f"dataset must be a data set as the data module takes it (lmp_lightning.data.sets: "
            f"CamVid(root=...), Synthetic(), ...) or its name, not one split of one "
            f"({type(value).__name__})"
        )
    else:
        raise TypeError(
            f"dataset must be a registered name ({list_datasets()}) or a data set of "
            f"lmp_lightning.data.sets, got {value!r}"
        )
    return cls(**{**arguments, **(options or {})})


def dataset_name(value: Any) -> str:
    """The short name of ``value``'s data set (any form :func:`dataset_spec` takes), else its
    class's name.

    Example:
        >>> dataset_name({"class_path": "lmp_lightning.data.sets.CamVid"}), dataset_name("CamVid")
        ('camvid', 'camvid')
    """
    from lmp_lightning._short_names import canonical_class

    cls = canonical_class(value) if isinstance(value, DatasetSpec) else None
    if cls is None:
        name = value.get("class_path") if hasattr(value, "get") else value
        cls = _spec_class(name) if isinstance(name, str) else type(dataset_spec(value))
    for short, registered in DATASETS.items():
        if registered is cls:
            return short
    return cls.__name__


def build_dataset(
    name: str, split: Split, root: str | Path | None = None, **arguments: Any
) -> SegmentationDataset:
    """Builds one split of a registered data set, checking its data directory first.

    Args:
        name: one of :func:`list_datasets` (or a registered class's name).
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: the data directory of a data set that reads files.
        **arguments: further arguments of the data set (e.g. ``scale=0.5`` for CamVid and
            Cityscapes at half resolution, ``num_train_images=4`` for the synthetic one).

    Returns:
        The data set, untransformed.

    Raises:
        KeyError: an unknown ``name``.
        TypeError: an argument the data set does not take.
        ValueError: an unknown ``split``, or a missing ``root`` for a data set that reads files.
        FileNotFoundError: ``root`` is not a directory; the message names the path.

    Example:
        >>> ds = build_dataset("synthetic", "val", num_val_images=4, image_size=(32, 48))
        >>> len(ds), ds[0]["image"].shape
        (4, (32, 48, 3))
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    spec = get_dataset_class(name)(**arguments)
    spec = spec.with_root(None if root is None else str(root))
    spec.check()
    return spec.build(split)
