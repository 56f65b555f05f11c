"""CamVid in the 11-class layout of SegNet (Brostow et al. 2009; Badrinarayanan et al. 2017)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from lmp_lightning.data._files import FileListDataset
from lmp_lightning.data.base import Split

__all__ = ["CAMVID_CLASSES", "CamVid"]

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
"""The 11 classes, in label order; raw label 11 (Unlabelled) becomes ``ignore_index``."""

_UNLABELLED = 11

_LABEL_MAP = np.full(256, -1, dtype=np.int64)
_LABEL_MAP[: len(CAMVID_CLASSES)] = np.arange(len(CAMVID_CLASSES))
_LABEL_MAP[_UNLABELLED] = 255


class CamVid(FileListDataset):
    """CamVid street scenes, 11 classes plus Unlabelled (ignored), 480 x 360 pixels.

    ``root/<split>.txt`` lists one ``image_path label_path`` pair per line, relative to
    ``root``; the labels are single-channel PNGs whose values 0..10 are the classes of
    :data:`CAMVID_CLASSES` and 11 is Unlabelled, mapped to ``ignore_index`` 255. Any other value
    is an error naming the file. SegNet's release has 367 train, 101 val and 233 test images;
    a split whose list file is missing, while others are present, is a ``ValueError`` naming
    the available splits.

    Args:
        root: the CamVid directory.
        split: ``"train"``, ``"val"`` or ``"test"``.
        scale: resize factor of images (area interpolation when shrinking, linear when
            enlarging) and labels (nearest); ``None`` takes :attr:`default_scale`, e.g. ``0.5``
            for half resolution.

    Raises:
        ValueError: an unknown or unavailable split, a malformed list file, a bad ``scale``.
        FileNotFoundError: ``root``, a list file, or a listed file is missing; the message names
            it and shows the expected layout.

    Example:
        >>> import tempfile
        >>> import cv2
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> for d in ("train", "trainannot"):
        ...     (root / d).mkdir()
        >>> _ = cv2.imwrite(str(root / "train/a.png"), np.zeros((8, 12, 3), np.uint8))
        >>> _ = cv2.imwrite(str(root / "trainannot/a.png"), np.full((8, 12), 11, np.uint8))
        >>> _ = (root / "train.txt").write_text("train/a.png trainannot/a.png\\n")
        >>> ds = CamVid(root, "train")
        >>> len(ds), ds[0]["image"].shape, ds[0]["mask"].dtype, int(ds[0]["mask"].max())
        (1, (8, 12, 3), dtype('int64'), 255)
        >>> CamVid(root, "train", scale=0.5)[0]["mask"].shape
        (4, 6)
        >>> tmp.cleanup()
    """

    class_names: ClassVar[tuple[str, ...]] = CAMVID_CLASSES
    ignore_index: ClassVar[int] = 255
    default_scale: ClassVar[float] = 1.0
    """The scale when ``scale`` is ``None``; a subclass may change it."""
    layout: ClassVar[str] = """
root/
├── train.txt          "train/0001TP_006690.png trainannot/0001TP_006690.png" per line
├── val.txt            (and test.txt, for the test split)
├── train/*.png        RGB images
├── trainannot/*.png   single-channel labels: 0..10 classes, 11 Unlabelled
├── val/, valannot/
└── test/, testannot/
"""

    def __init__(self, root: str | Path, split: Split = "train", *, scale: float | None = None):
        path = self.root_dir(root)
        self.check_split(split)
        super().__init__(
            path,
            self._read_list(path, split),
            split,
            _LABEL_MAP,
            self.default_scale if scale is None else scale,
        )

    @classmethod
    def _read_list(cls, root: Path, split: Split) -> list[tuple[Path, Path]]:
        """The pairs listed in ``root/<split>.txt``, each checked to exist."""
        list_file = root / f"{split}.txt"
        if not list_file.is_file():
            present = [s for s in cls.splits if (root / f"{s}.txt").is_file()]
            if present:
                cls.check_split(split, present)
            raise cls.missing("list file", list_file, root)
        pairs = []
        for number, line in enumerate(list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(
                    f"{str(list_file)!r} line {number}: expected 'image_path label_path', "
                    f"got {line!r}"
                )
            image, label = root / fields[0], root / fields[1]
            for what, file in (("image", image), ("label file", label)):
                if not file.is_file():
                    raise cls.missing(f"{what} listed in {list_file.name}", file, root)
            pairs.append((image, label))
        if not pairs:
            raise ValueError(f"list file {str(list_file)!r} lists no images")
        return pairs
