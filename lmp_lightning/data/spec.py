"""The base class of the data sets as :class:`SegmentationDataModule` takes them: each one's own
typed arguments, and the splits it builds.

A :class:`DatasetSpec` is small and reads nothing when it is made: ``lmp-seg`` makes it from
``--data.dataset NAME --data.dataset.ARG VALUE`` (or ``dataset: {class_path: NAME, init_args:
{...}}`` in a YAML file), and the data module builds each split it needs with :meth:`build`. The
data sets themselves (:class:`~lmp_lightning.data.SegmentationDataset`) hold one split each.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from lmp_lightning.data.base import SegmentationDataset, Split

__all__ = ["DatasetSpec", "FileDatasetSpec", "run_seed"]


def run_seed() -> int:
    """The run's seed: the one given to ``lightning.seed_everything`` (``--seed_everything`` of
    the CLI), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class DatasetSpec(ABC):
    """A data set as the data module takes it: its arguments, and the splits it builds.

    A subclass takes its own arguments in ``__init__`` (typed: they are its command-line flags),
    stores each under its own name, reads no file there, and implements :meth:`build`. It is
    registered under a short name with :func:`~lmp_lightning.data.register_dataset`, which
    ``--data.dataset`` and ``SegmentationDataModule(dataset=...)`` accept as well as its class.

    Attributes:
        dataset_class: the class of the splits :meth:`build` returns; when it declares
            ``class_names`` and ``ignore_index`` as class attributes they are the data module's
            label space, else the training split's are (read from its files).
        reads_files: whether the splits are read from files (the data module checks them before
            a model is built).

    Example:
        >>> from lmp_lightning.data.sets import Synthetic
        >>> spec = Synthetic(num_train_images=4, image_size=(32, 48))
        >>> spec
        Synthetic(num_train_images=4, num_val_images=40, image_size=(32, 48), seed=None)
        >>> len(spec.build("train")), spec.input_scale
        (4, 1.0)
        >>> spec.config()["class_path"]
        'lmp_lightning.data.sets.Synthetic'
    """

    dataset_class: ClassVar[type[SegmentationDataset]]
    reads_files: ClassVar[bool] = False

    @abstractmethod
    def build(self, split: Split) -> SegmentationDataset:
        """The data set of one split (``"train"``, ``"val"`` or ``"test"``), untransformed.

        Raises:
            ValueError: an unavailable split, or bad files (the message names them).
            FileNotFoundError: a missing file or folder.
        """

    def check(self) -> None:
        """Checks what can be checked without reading a split (a data directory that must
        exist); the data module calls it when it is made.

        Raises:
            ValueError: a required argument is missing.
            FileNotFoundError: a data directory does not exist; the message names it.
        """
        return  # nothing to check here; a data set that reads files checks its root

    @property
    def input_scale(self) -> float:
        """The factor the data set resizes its images by (``predict`` resizes its images alike)."""
        return 1.0

    def with_root(self, root: str | None) -> DatasetSpec:
        """This data set reading its files from ``root`` (the data module's ``root``,
        ``--data.root``) when it takes a ``root`` argument and was given none; a data set
        without one ignores it.

        Raises:
            ValueError: it was given another ``root`` (two roots: one must go).
        """
        own = self.arguments()
        if root is None or "root" not in own:
            return self
        if own["root"] is not None:
            if Path(own["root"]) == Path(root):
                return self
            raise ValueError(
                f"two data directories: --data.root {str(root)!r} and the data set's root "
                f"{str(own['root'])!r}; give one (--data.dataset.root DIR)"
            )
        changed = copy.copy(self)
        changed.root = str(root)  # type: ignore[attr-defined]
        return changed

    def with_seed(self, seed: int) -> DatasetSpec:
        """This data set, drawn from ``seed`` (the data module's) unless it was given a seed of
        its own; a data set that draws nothing ignores it."""
        return self

    def arguments(self) -> dict[str, Any]:
        """The arguments of ``__init__`` and their values (what :meth:`config` records)."""
        parameters = inspect.signature(type(self).__init__).parameters.values()
        return {
            p.name: getattr(self, p.name)
            for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: the data set as plain data, as a config file gives
        it (the data module's hyper-parameters hold it)."""
        from lmp_lightning._short_names import canonical_class

        cls = canonical_class(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": self.arguments()}

    def __repr__(self) -> str:
        from lmp_lightning._short_names import canonical_class

        arguments = ", ".join(f"{k}={v!r}" for k, v in self.arguments().items())
        return f"{canonical_class(self).__name__}({arguments})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetSpec):
            return NotImplemented
        from lmp_lightning._short_names import canonical_class

        return canonical_class(self) is canonical_class(other) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(self))


def check_scale(scale: float | None) -> None:
    """Rejects a ``scale`` that is not ``None`` or a positive, finite number."""
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"scale must be a number, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite, got {scale!r}")


class FileDatasetSpec(DatasetSpec):
    """A data set read from files under a data directory, ``root``: checked when the data
    module is made, and its splits' files before a model is built.

    A subclass sets :attr:`~DatasetSpec.dataset_class` (a data set with ``requires_root``),
    takes ``root: str | None = None`` first in its ``__init__``, stores it as ``self.root`` and
    builds its splits from :meth:`data_dir`.
    """

    reads_files: ClassVar[bool] = True
    root: str | None

    def check(self) -> None:
        self.dataset_class.check_root(self.root)

    def data_dir(self) -> Path:
        """``root``, checked (see :meth:`SegmentationDataset.check_root`)."""
        path = self.dataset_class.check_root(self.root)
        assert path is not None  # check_root rejects None for a data set that reads files
        return path
