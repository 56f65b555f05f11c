"""Cityscapes fine annotations (Cordts et al. 2016), evaluated on the 19 train ids."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from lmp_lightning.data._files import FileListDataset
from lmp_lightning.data.base import Split
from lmp_lightning.data.registry import register_dataset

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "Cityscapes",
    "CityscapesLabel",
    "id_to_train_id",
]


class CityscapesLabel(NamedTuple):
    """One row of cityscapesScripts' ``helpers/labels.py`` (fields in snake case).

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


_L = CityscapesLabel
# fmt: off
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    #  name                   id  train_id category      cat_id instances ignore  color
    _L("unlabeled",            0, 255, "void",         0, False, True,  (0, 0, 0)),
    _L("ego vehicle",          1, 255, "void",         0, False, True,  (0, 0, 0)),
    _L("rectification border", 2, 255, "void",         0, False, True,  (0, 0, 0)),
    _L("out of roi",           3, 255, "void",         0, False, True,  (0, 0, 0)),
    _L("static",               4, 255, "void",         0, False, True,  (0, 0, 0)),
    _L("dynamic",              5, 255, "void",         0, False, True,  (111, 74, 0)),
    _L("ground",               6, 255, "void",         0, False, True,  (81, 0, 81)),
    _L("road",                 7,   0, "flat",         1, False, False, (128, 64, 128)),
    _L("sidewalk",             8,   1, "flat",         1, False, False, (244, 35, 232)),
    _L("parking",              9, 255, "flat",         1, False, True,  (250, 170, 160)),
    _L("rail track",          10, 255, "flat",         1, False, True,  (230, 150, 140)),
    _L("building",            11,   2, "construction", 2, False, False, (70, 70, 70)),
    _L("wall",                12,   3, "construction", 2, False, False, (102, 102, 156)),
    _L("fence",               13,   4, "construction", 2, False, False, (190, 153, 153)),
    _L("guard rail",          14, 255, "construction", 2, False, True,  (180, 165, 180)),
    _L("bridge",              15, 255, "construction", 2, False, True,  (150, 100, 100)),
    _L("tunnel",              16, 255, "construction", 2, False, True,  (150, 120, 90)),
    _L("pole",                17,   5, "object",       3, False, False, (153, 153, 153)),
    _L("polegroup",           18, 255, "object",       3, False, True,  (153, 153, 153)),
    _L("traffic light",       19,   6, "object",       3, False, False, (250, 170, 30)),
    _L("traffic sign",        20,   7, "object",       3, False, False, (220, 220, 0)),
    _L("vegetation",          21,   8, "nature",       4, False, False, (107, 142, 35)),
    _L("terrain",             22,   9, "nature",       4, False, False, (152, 251, 152)),
    _L("sky",                 23,  10, "sky",          5, False, False, (70, 130, 180)),
    _L("person",              24,  11, "human",        6, True,  False, (220, 20, 60)),
    _L("rider",               25,  12, "human",        6, True,  False, (255, 0, 0)),
    _L("car",                 26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    _L("truck",               27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    _L("bus",                 28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    _L("caravan",             29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    _L("trailer",             30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    _L("train",               31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    _L("motorcycle",          32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    _L("bicycle",             33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    _L("license plate",       -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
)
# fmt: on
"""The official label definitions of cityscapesScripts ``helpers/labels.py``, the source of
truth of :data:`CITYSCAPES_CLASSES` and :func:`id_to_train_id`."""

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


@register_dataset("cityscapes")
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
    """The scale of :meth:`from_split` (the data module's); a subclass may change it."""
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
