"""Cityscapes fine annotations (Cordts et al. 2016), evaluated on the 19 train ids."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
from torchvision.datasets import Cityscapes as TorchvisionCityscapes

from lmp_lightning.data._files import FileListDataset
from lmp_lightning.data.base import Split

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "Cityscapes",
    "CityscapesLabel",
    "id_to_train_id",
]


class CityscapesLabel(NamedTuple):
    """One row of cityscapesScripts' ``helpers/labels.py`` (fields in snake case), typed; the
    rows come from torchvision's ``Cityscapes.classes``, which has the same fields in the same
    order.

    ``id`` is the value in ``*_gtFine_labelIds.png`` (``-1``: never in a label image);
    ``train_id`` the training label, 255 or -1 for a label that is not trained on.
    """

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = tuple(
    CityscapesLabel(*row) for row in TorchvisionCityscapes.classes
)
"""The official label definitions of cityscapesScripts ``helpers/labels.py``, as torchvision
ships them; the source of truth of :data:`CITYSCAPES_CLASSES` and :func:`id_to_train_id`."""

IGNORE_INDEX = 255


def _is_trained(label: CityscapesLabel) -> bool:
    return 0 <= label.train_id < IGNORE_INDEX


CITYSCAPES_CLASSES: tuple[str, ...] = tuple(
    label.name
    for label in sorted(filter(_is_trained, CITYSCAPES_LABELS), key=lambda label: label.train_id)
)
"""The 19 evaluated classes, in train id order (``road`` ... ``bicycle``)."""


def id_to_train_id(labels: tuple[CityscapesLabel, ...] = CITYSCAPES_LABELS) -> np.ndarray:
    """The look-up table from label ids to train ids, derived from ``labels``.

    Args:
        labels: the label definitions.

    Returns:
        An ``int64`` array of 256 entries: the train id of each label id, 255 for a label id
        that is not trained on, and -1 for a value that is no label id.

    Example:
        >>> id_to_train_id()[[7, 26, 0, 9, 34]].tolist()  # road, car, unlabeled, parking, none
        [0, 13, 255, 255, -1]
    """
    table = np.full(256, -1, dtype=np.int64)
    for label in labels:
        if label.id >= 0:
            table[label.id] = label.train_id if _is_trained(label) else IGNORE_INDEX
    return table


class Cityscapes(FileListDataset):
    """Cityscapes with the fine annotations: 2975 train, 500 val and 1525 test images.

    ``root/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` pairs with
    ``root/gtFine/<split>/<city>/<name>_gtFine_labelIds.png``, whose label ids are mapped to
    the 19 train ids of :data:`CITYSCAPES_CLASSES` through :func:`id_to_train_id`; every other
    label is ``ignore_index`` 255, and a value that is no label id is an error naming the file.
    (The public test labels are all void.)

    Args:
        root: the Cityscapes directory (holding ``leftImg8bit`` and ``gtFine``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        scale: resize factor of images (area/linear interpolation) and labels (nearest);
            ``None`` takes :attr:`default_scale`.

    Raises:
        ValueError: an unknown or unavailable split, a bad ``scale``.
        FileNotFoundError: ``root``, the split's folder or a label file is missing, or the
            folder holds no images; the message names the path and shows the expected layout.

    Example:
        >>> import tempfile
        >>> import cv2
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> for d in ("leftImg8bit/val/ulm", "gtFine/val/ulm"):
        ...     (root / d).mkdir(parents=True)
        >>> image = root / "leftImg8bit/val/ulm/ulm_000000_000019_leftImg8bit.png"
        >>> _ = cv2.imwrite(str(image), np.zeros((8, 12, 3), np.uint8))
        >>> label = root / "gtFine/val/ulm/ulm_000000_000019_gtFine_labelIds.png"
        >>> _ = cv2.imwrite(str(label), np.full((8, 12), 26, np.uint8))  # car
        >>> ds = Cityscapes(root, "val")
        >>> len(ds), ds.num_classes, int(ds[0]["mask"][0, 0]), ds.class_names[13]
        (1, 19, 13, 'car')
        >>> tmp.cleanup()
    """

    class_names: ClassVar[tuple[str, ...]] = CITYSCAPES_CLASSES
    ignore_index: ClassVar[int] = IGNORE_INDEX
    default_scale: ClassVar[float] = 1.0
    """The scale when ``scale`` is ``None``; a subclass may change it."""
    layout: ClassVar[str] = """
root/
├── leftImg8bit/
│   ├── train/<city>/<city>_<seq>_<frame>_leftImg8bit.png
│   ├── val/<city>/...
│   └── test/<city>/...
└── gtFine/
    ├── train/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    ├── val/<city>/...
    └── test/<city>/...
"""

    _IMAGE_SUFFIX = "_leftImg8bit.png"
    _LABEL_SUFFIX = "_gtFine_labelIds.png"

    def __init__(self, root: str | Path, split: Split = "train", *, scale: float | None = None):
        path = self.root_dir(root)
        self.check_split(split)
        super().__init__(
            path,
            self._find_pairs(path, split),
            split,
            id_to_train_id(),
            self.default_scale if scale is None else scale,
        )

    @classmethod
    def _find_pairs(cls, root: Path, split: Split) -> list[tuple[Path, Path]]:
        """Every image of the split with its label file, sorted by city and name."""
        image_dir = root / "leftImg8bit" / split
        if not image_dir.is_dir():
            present = [s for s in cls.splits if (root / "leftImg8bit" / s).is_dir()]
            if present:
                cls.check_split(split, present)
            raise cls.missing("image folder", image_dir, root)
        images = sorted(image_dir.glob(f"*/*{cls._IMAGE_SUFFIX}"))
        if not images:
            raise cls.missing("an image", image_dir / "<city>" / f"*{cls._IMAGE_SUFFIX}", root)
        pairs = []
        for image in images:
            name = image.name[: -len(cls._IMAGE_SUFFIX)] + cls._LABEL_SUFFIX
            label = root / "gtFine" / split / image.parent.name / name
            if not label.is_file():
                raise cls.missing(f"label file of {image.name}", label, root)
            pairs.append((image, label))
        return pairs
