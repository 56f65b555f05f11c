"""A data set of one's own: image and mask folders per split and a ``classes.txt``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from lmp_lightning.data._files import FileListDataset
from lmp_lightning.data.base import Split
from lmp_lightning.errors import InputError

__all__ = ["DEFAULT_IGNORE_INDEX", "FolderDataset", "read_classes"]

DEFAULT_IGNORE_INDEX = 255
"""The ``ignore_index`` of a ``classes.txt`` without an ``ignore:`` line."""

MAX_LABEL = 65535
"""The largest label value a mask can hold (a 16-bit PNG)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_IGNORE_LINE = re.compile(r"ignore\s*:\s*(\S+)", re.IGNORECASE)


def read_classes(path: Path) -> tuple[tuple[str, ...], int]:
    """Reads a ``classes.txt``: one class name per line, in label order.

    Blank lines and lines starting with ``#`` are skipped; surrounding spaces are stripped.
    One optional line ``ignore: <int>`` (conventionally the last) sets the label of pixels
    without a class, :data:`DEFAULT_IGNORE_INDEX` when absent; it must not be a class label.

    Args:
        path: the file.

    Returns:
        ``(class_names, ignore_index)``.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: not UTF-8, no names, a repeated name or ``ignore:`` line, or a bad ignore
            label (a class label, or not within 0..65535); the message names ``path``.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "classes.txt"
        >>> _ = path.write_text("# my classes\\nbackground\\nscratch\\nignore: 255\\n")
        >>> read_classes(path)
        (('background', 'scratch'), 255)
        >>> tmp.cleanup()
    """
    if not path.is_file():
        raise FileNotFoundError(f"class file not found: {str(path)!r}")
    names: list[str] = []
    ignore: int | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"class file {str(path)!r} is not UTF-8 text: {error}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _IGNORE_LINE.fullmatch(line)
        if match is None:
            names.append(line)
            continue
        if ignore is not None:
            raise ValueError(f"{str(path)!r} line {number}: a second 'ignore:' line")
        try:
            ignore = int(match.group(1))
        except ValueError:
            raise ValueError(
                f"{str(path)!r} line {number}: expected 'ignore: <int>', got {line!r}"
            ) from None
    if not names:
        raise ValueError(f"class file {str(path)!r} names no classes")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"class file {str(path)!r} repeats the class names {repeated}")
    ignore = DEFAULT_IGNORE_INDEX if ignore is None else ignore
    if 0 <= ignore < len(names) or not 0 <= ignore <= MAX_LABEL:
        raise ValueError(
            f"class file {str(path)!r}: ignore must be a non-negative label up to {MAX_LABEL} "
            f"(a 16-bit mask value) other than the class labels 0..{len(names) - 1}, got {ignore}"
        )
    return tuple(names), ignore


class FolderDataset(FileListDataset):
    """Images and label masks in per-split folders, with the classes named in ``classes.txt``.

    ``root/images/<split>/<stem>.png|.jpg|.jpeg`` pairs with ``root/masks/<split>/<stem>.png``,
    a single-channel or palette PNG whose values are class labels ``0..num_classes - 1`` or
    ``ignore_index``; any other value is an error naming the file. ``root/classes.txt`` is read
    by :func:`read_classes`. :meth:`check_files` finds such a value, and a mask of another size
    than its image, without training (:class:`SegmentationDataModule` calls it when it is made).

    The label space comes from the files, so ``class_names``, ``num_classes`` and
    ``ignore_index`` are attributes of the instance; the class declares none, and
    :class:`SegmentationDataModule` then reads them from the built training split.

    Args:
        root: the data directory.
        split: ``"train"``, ``"val"`` or ``"test"``; ``root/images/<split>`` must exist.

    Raises:
        ValueError: an unknown or unavailable split (the message names the missing folder),
            two images with one stem, a bad ``classes.txt``.
        FileNotFoundError: ``root``, ``classes.txt``, the split's folder or a mask is missing,
            or the folder holds no images; the message names the path and shows the layout.

    Example:
        >>> import tempfile
        >>> import cv2
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> for d in ("images/train", "masks/train"):
        ...     (root / d).mkdir(parents=True)
        >>> _ = (root / "classes.txt").write_text("background\\ncrack\\nignore: 255\\n")
        >>> _ = cv2.imwrite(str(root / "images/train/a.jpg"), np.zeros((8, 12, 3), np.uint8))
        >>> _ = cv2.imwrite(str(root / "masks/train/a.png"), np.ones((8, 12), np.uint8))
        >>> ds = FolderDataset(root, "train")
        >>> ds.class_names, ds.num_classes, ds.ignore_index, len(ds)
        (('background', 'crack'), 2, 255, 1)
        >>> ds[0]["mask"].shape, int(ds[0]["mask"].max())
        ((8, 12), 1)
        >>> tmp.cleanup()
    """

    layout: ClassVar[str] = """
root/
├── classes.txt              one class name per line, in label order; optional 'ignore: 255'
├── images/
│   ├── train/<stem>.png     RGB images (.png, .jpg or .jpeg)
│   ├── val/
│   └── test/
└── masks/
    ├── train/<stem>.png     single-channel or palette PNG of labels, same stem as the image
    ├── val/
    └── test/
"""

    label_advice: ClassVar[str] = (
        "add their classes to classes.txt, declare one of them there as 'ignore: <label>', or "
        "relabel those pixels"
    )

    def __init__(self, root: str | Path, split: Split = "train") -> None:
        path = self.root_dir(root)
        self.check_split(split)
        class_file = path / "classes.txt"
        if not class_file.is_file():
            raise self.missing("class file", class_file, path)
        names, ignore = read_classes(class_file)
        # The label space is read from the files, so it belongs to the instance: it shadows the
        # class-level declaration of SegmentationDataset, which this class leaves unset.
        self.class_names = names  # type: ignore[misc]
        self.num_classes = len(names)  # type: ignore[misc]
        self.ignore_index = ignore  # type: ignore[misc]
        label_map = np.full(max(len(names), ignore + 1), -1, dtype=np.int64)
        label_map[: len(names)] = np.arange(len(names))
        label_map[ignore] = ignore
        super().__init__(path, self._find_pairs(path, split), split, label_map)

    @classmethod
    def _find_pairs(cls, root: Path, split: Split) -> list[tuple[Path, Path]]:
        """Every image of ``root/images/<split>`` with its mask, sorted by stem."""
        image_dir, mask_dir = root / "images" / split, root / "masks" / split
        if image_dir.is_symlink() and not image_dir.exists():
            raise InputError(f"image folder {str(image_dir)!r} is a broken or looping symlink")
        if not image_dir.is_dir():
            present = [s for s in cls.splits if (root / "images" / s).is_dir()]
            if present:
                raise InputError(
                    f"split {split!r} is not available: {cls.__name__} has in this directory the "
                    f"splits {present}, no folder {str(image_dir)!r}; add it, with the split's "
                    f"masks in {str(mask_dir)!r}"
                )
            raise cls.missing("image folder", image_dir, root)
        images: dict[str, Path] = {}
        for image in sorted(image_dir.iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not image.is_file():  # skipping it would train on fewer images than there are
                what = "a broken or looping symlink" if image.is_symlink() else "not a file"
                raise InputError(f"image {str(image)!r} is {what}")
            if image.stem in images:
                raise ValueError(
                    f"two images with the stem {image.stem!r}: {str(images[image.stem])!r} and "
                    f"{str(image)!r}; each image needs its own mask name"
                )
            images[image.stem] = image
        if not images:
            raise cls.missing(f"an image ({', '.join(IMAGE_SUFFIXES)})", image_dir / "*", root)
        pairs = []
        for stem, image in sorted(images.items()):
            mask = mask_dir / f"{stem}.png"
            if not mask.is_file():
                raise cls.missing(f"mask of {image.name}", mask, root)
            pairs.append((image, mask))
        return pairs
