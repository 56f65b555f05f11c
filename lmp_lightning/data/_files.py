"""The shared reader of data sets stored as (image file, label file) pairs.

:class:`FileListDataset` holds the pairs of one split, reads an RGB image with OpenCV and a
single-channel or palette label PNG with Pillow (a palette PNG gives its palette indices, as
Pascal VOC stores them), maps the raw label values through a look-up table and optionally
rescales both. The data sets (CamVid, Cityscapes, Pascal VOC, a folder) only find their pairs and
declare their label space and their expected directory layout.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar, cast

import cv2
import numpy as np
from PIL import Image

from lmp_lightning.data.base import SPLITS, SegmentationDataset, Split
from lmp_lightning.data.transforms import rescale_image, rescale_label
from lmp_lightning.errors import InputError

__all__ = ["FileListDataset", "read_label", "read_rgb"]

_LABEL_MODES = ("P", "L", "I;16", "I;16L", "I;16B", "I")
"""Pillow modes of a label image whose pixel values are class indices."""


def read_rgb(path: Path) -> np.ndarray:
    """Reads an image file as a ``uint8`` RGB array ``(H, W, 3)``: the one image reader of
    training, evaluation and ``lmp-seg predict``.

    EXIF orientation is ignored, so that an image stays aligned with its label file. A grey
    image becomes three equal channels; a 16-bit image is scaled to 8 bits (OpenCV's
    ``IMREAD_COLOR``), never clipped.

    Args:
        path: a PNG or JPEG file.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        InputError: ``path`` cannot be decoded as an image (not an image, truncated).
    """
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {str(path)!r}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise InputError(f"cannot decode image file {str(path)!r} (not an image, or truncated)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    """Reads a label image as an integer array ``(H, W)`` of its raw pixel values.

    Args:
        path: a single-channel (8- or 16-bit grey) or palette PNG; a palette PNG gives its
            palette indices, not its colours.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        InputError: ``path`` cannot be decoded (not an image, truncated) or is not a
            single-channel or palette image.
    """
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {str(path)!r}")
    try:
        with Image.open(path) as image:
            if image.mode not in _LABEL_MODES:
                raise InputError(
                    f"label file {str(path)!r} has mode {image.mode!r}; expected a single-"
                    "channel or palette PNG of class indices, not a colour image"
                )
            return np.asarray(image)
    except Image.DecompressionBombError as error:
        raise InputError(f"label file {str(path)!r} is refused: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(
            f"cannot decode label file {str(path)!r} (not an image, or truncated): {error}"
        ) from None


def _header_size(path: Path, what: str) -> tuple[int, int]:
    """``(height, width)`` of an image or label file, read from its header (the pixels are not
    decoded).

    Args:
        path: the file.
        what: ``"image"`` or ``"label"``, for the messages.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        InputError: a label file whose header cannot be read, or that declares too many pixels;
            an image file that neither Pillow nor OpenCV can read.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {str(path)!r}")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError as error:
        raise InputError(f"{what} file {str(path)!r} is refused: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        if what == "image":  # training reads images with OpenCV: let it have the last word
            height, width = read_rgb(path).shape[:2]
            return height, width
        raise InputError(
            f"cannot decode {what} file {str(path)!r} (not an image, or truncated): {error}"
        ) from None
    return height, width


def _size_mismatch(
    image: Path, image_size: tuple[int, ...], label: Path, label_size: tuple[int, ...]
) -> InputError:
    """The error for a label file of another size than its image."""
    return InputError(
        f"image {str(image)!r} is {tuple(image_size)} but its label file {str(label)!r} is "
        f"{tuple(label_size)} (height, width); a label file must have its image's size"
    )


class FileListDataset(SegmentationDataset):
    """Base class of data sets read from (image file, label file) pairs.

    A subclass finds the pairs of a split and passes them with a look-up table ``label_map``
    (``label_map[raw value]`` is the class index, ``ignore_index``, or ``-1`` for a value that
    must not occur). It declares ``splits``, the splits it defines, and ``layout``, the expected
    directory tree that missing-file errors show.

    Args:
        root: the data directory.
        pairs: ``(image path, label path)`` of every sample, in order.
        split: the split the pairs belong to.
        label_map: the ``int64`` look-up table from raw label values to labels.
        scale: the factor by which images and labels are resized (``1.0`` keeps them).

    Raises:
        TypeError: ``scale`` is not a number.
        ValueError: ``scale`` is not positive and finite.
    """

    requires_root: ClassVar[bool] = True
    splits: ClassVar[tuple[Split, ...]] = SPLITS
    layout: ClassVar[str] = ""
    label_advice: ClassVar[str] = "relabel those pixels"
    """What to do about a label value that :attr:`label_map` rejects (ends its message)."""

    def __init__(
        self,
        root: Path,
        pairs: Sequence[tuple[Path, Path]],
        split: Split,
        label_map: np.ndarray,
        scale: float = 1.0,
    ) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int | float | np.floating):
            raise TypeError(f"scale must be a number, got {scale!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        self.root = root
        self.pairs = list(pairs)
        self.split: Split = split
        self.label_map = np.asarray(label_map, dtype=np.int64)
        self.scale = float(scale)

    @classmethod
    def root_dir(cls, root: str | Path | None) -> Path:
        """``root`` as a checked directory (see :meth:`check_root`)."""
        path = cls.check_root(root)
        if path is None:  # check_root rejects None for a data set with requires_root
            raise ValueError(f"data set {cls.__name__} reads files: pass its data directory")
        return path

    @classmethod
    def check_split(cls, split: str, available: Iterable[str] | None = None) -> Split:
        """Rejects a split that the data set does not define, or that ``root`` does not hold.

        Args:
            split: the requested split.
            available: the splits found on disk; ``None`` means all of :attr:`splits`.

        Raises:
            ValueError: an unknown or unavailable split; the message names the available ones.
        """
        on_disk = None if available is None else set(available)
        defined = [s for s in cls.splits if on_disk is None or s in on_disk]
        if split not in defined:
            where = "defines" if available is None else "has in this directory"
            raise ValueError(
                f"split {split!r} is not available: {cls.__name__} {where} the splits {defined}"
            )
        return cast(Split, split)

    @classmethod
    def missing(cls, what: str, path: Path, root: Path) -> FileNotFoundError:
        """The error for a missing file or directory, naming it and showing :attr:`layout`."""
        tree = cls.layout.strip("\n")
        return FileNotFoundError(
            f"{cls.__name__}: {what} not found: {str(path)!r}\n"
            f"expected layout under root {str(root)!r}:\n{tree}"
        )

    def check_files(self, labels: bool = True) -> None:
        """Checks every pair without training on it, so that a mistake in the files is found
        before anything is built or trained: each image and its label file have the same size
        (read from the files' headers, nothing decoded) and, with ``labels``, every label file
        decodes to values that :attr:`label_map` accepts (this decodes the label files, never
        the images).

        Args:
            labels: also decode every label file and check its values.

        Raises:
            FileNotFoundError: a file of the list is missing.
            InputError: an unreadable file, a label file of another size than its image, or
                (``labels``) a label value outside the classes that is not the ignore label; the
                message names the file.
        """
        for image_path, label_path in self.pairs:
            image_size = _header_size(image_path, "image")
            label_size = _header_size(label_path, "label")
            if image_size != label_size:
                raise _size_mismatch(image_path, image_size, label_path, label_size)
            if labels:
                self.map_labels(read_label(label_path), label_path)

    def files(self) -> list[tuple[Path, Path]]:
        """``(image path, label path)`` of every sample, in order (e.g. to hash for a cache)."""
        return list(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def map_labels(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Maps raw label values through :attr:`label_map` to an ``int64`` mask.

        Raises:
            InputError: a value that the label map rejects; the message names ``path``.
        """
        table = self.label_map
        if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= len(table)):
            bad = (raw < 0) | (raw >= len(table))
        else:
            mask = table[raw]
            bad = mask < 0
        if bad.any():
            allowed = np.flatnonzero(table >= 0).tolist()
            raise InputError(
                f"label file {str(path)!r} has values {np.unique(raw[bad]).tolist()} outside "
                f"the valid raw labels {allowed}; {self.label_advice}"
            )
        return mask

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        image_path, label_path = self.pairs[i]
        image, raw = read_rgb(image_path), read_label(label_path)
        if image.shape[:2] != raw.shape:
            raise _size_mismatch(image_path, image.shape[:2], label_path, raw.shape)
        image, raw = rescale_image(image, self.scale), rescale_label(raw, self.scale)
        return {"image": image, "mask": self.map_labels(raw, label_path)}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, images={len(self)}, scale={self.scale})"
        )
