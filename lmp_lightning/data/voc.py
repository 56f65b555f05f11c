"""Pascal VOC 2012 segmentation (Everingham et al. 2015) with the SBD training set
(Hariharan et al. 2011), the "train_aug" setting of DeepLab (Chen et al. 2017)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from lmp_lightning.data._files import FileListDataset
from lmp_lightning.data.base import Split

__all__ = ["VOC_CLASSES", "PascalVOC", "convert_sbd", "voc_palette"]

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""Background and the 20 object classes, in label order."""

IGNORE_INDEX = 255
"""The label of object borders and difficult regions in VOC's annotations."""

_LABEL_MAP = np.full(256, -1, dtype=np.int64)
_LABEL_MAP[: len(VOC_CLASSES)] = np.arange(len(VOC_CLASSES))
_LABEL_MAP[IGNORE_INDEX] = IGNORE_INDEX


def voc_palette() -> list[int]:
    """The 256-colour palette of VOC's label PNGs, flat ``[r0, g0, b0, r1, ...]``.

    Example:
        >>> voc_palette()[3:6], voc_palette()[-3:]  # aeroplane, the ignore label 255
        ([128, 0, 0], [224, 224, 192])
    """
    palette = []
    for index in range(256):
        rgb, c = [0, 0, 0], index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((c >> channel) & 1) << bit
            c >>= 3
        palette += rgb
    return palette


def _read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def convert_sbd(sbd_root: str | Path, out_dir: str | Path) -> int:
    """Converts SBD's class labels to VOC palette PNGs, once, for :class:`PascalVOC`'s train_aug.

    Reads ``sbd_root/cls/<id>.mat`` (``GTcls.Segmentation``) and writes
    ``out_dir/SegmentationClass/<id>.png``, skipping files already written; copies SBD's
    ``train.txt`` and ``val.txt`` to ``out_dir``. Call it as
    ``convert_sbd("benchmark_RELEASE/dataset", voc_root / "SBD")``. Needs scipy.

    Args:
        sbd_root: SBD's ``dataset`` directory (holding ``cls/``, ``train.txt``, ``val.txt``).
        out_dir: the output directory, ``<PascalVOC root>/SBD``.

    Returns:
        The number of PNGs written.

    Raises:
        ModuleNotFoundError: scipy is not installed.
        FileNotFoundError: ``sbd_root/cls`` or a list file is missing.
        ValueError: a label outside ``0..20``; the message names the file.

    Example:
        >>> import tempfile
        >>> import scipy.io
        >>> tmp = tempfile.TemporaryDirectory()
        >>> sbd = Path(tmp.name) / "dataset"
        >>> (sbd / "cls").mkdir(parents=True)
        >>> _ = (sbd / "train.txt").write_text("2008_000002\\n")
        >>> _ = (sbd / "val.txt").write_text("")
        >>> seg = np.full((8, 12), 15, np.uint8)
        >>> scipy.io.savemat(sbd / "cls/2008_000002.mat", {"GTcls": {"Segmentation": seg}})
        >>> convert_sbd(sbd, Path(tmp.name) / "SBD"), convert_sbd(sbd, Path(tmp.name) / "SBD")
        (1, 0)
        >>> tmp.cleanup()
    """
    try:
        from scipy.io import loadmat
    except ImportError as error:
        raise ModuleNotFoundError(
            "convert_sbd reads SBD's .mat files with scipy, which is not installed: "
            "pip install scipy (or pip install 'lmp-lightning[dev]')"
        ) from error
    sbd, out = Path(sbd_root).expanduser(), Path(out_dir).expanduser()
    mat_dir = sbd / "cls"
    if not mat_dir.is_dir():
        raise FileNotFoundError(
            f"SBD class labels not found: {str(mat_dir)!r}; sbd_root must be SBD's 'dataset' "
            "directory (benchmark_RELEASE/dataset, holding cls/, train.txt and val.txt)"
        )
    for name in ("train.txt", "val.txt"):
        if not (sbd / name).is_file():
            raise FileNotFoundError(f"SBD list file not found: {str(sbd / name)!r}")
    png_dir = out / "SegmentationClass"
    png_dir.mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    written = 0
    for mat in sorted(mat_dir.glob("*.mat")):
        png = png_dir / f"{mat.stem}.png"
        if png.is_file():
            continue
        segmentation = np.asarray(
            loadmat(mat, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
        )
        if segmentation.ndim != 2 or segmentation.min() < 0 or segmentation.max() >= 21:
            raise ValueError(
                f"{str(mat)!r}: GTcls.Segmentation must be a 2-D array of labels 0..20, got "
                f"shape {segmentation.shape} and values {np.unique(segmentation).tolist()[:10]}"
            )
        image = Image.fromarray(segmentation.astype(np.uint8))
        image.putpalette(palette)
        partial = png.with_suffix(".tmp.png")
        image.save(partial)
        partial.replace(png)  # a killed conversion leaves no truncated PNG behind
        written += 1
    for name in ("train.txt", "val.txt"):
        shutil.copyfile(sbd / name, out / name)
    return written


class PascalVOC(FileListDataset):
    """Pascal VOC 2012 segmentation, 21 classes, with SBD's extra training annotations.

    ``val`` is VOC's 1449 validation images. ``train`` is the standard 10,582-image train_aug
    set: SBD's train and val plus VOC's train, minus VOC's val; an image of VOC's train list
    keeps VOC's annotation (with its 255 borders), the others take SBD's, converted once by
    :func:`convert_sbd`. With ``train_aug=False``, ``train`` is VOC's 1464 images alone. VOC
    has no public test labels, so there is no ``test`` split. Labels are palette PNGs read as
    indices: 0..20 the classes of :data:`VOC_CLASSES`, 255 ignored; any other value is an error
    naming the file.

    Args:
        root: the directory holding ``VOC2012`` (and ``SBD`` for train_aug), e.g. ``VOCdevkit``.
        split: ``"train"`` or ``"val"``.
        train_aug: whether ``train`` adds SBD's images; ``None`` takes
            :attr:`default_train_aug`.

    Raises:
        ValueError: ``split`` is ``"test"`` or unknown.
        FileNotFoundError: ``root``, a list file, an image or a label file is missing; the
            message names the path and shows the expected layout.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> voc = Path(tmp.name) / "VOC2012"
        >>> for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        ...     (voc / d).mkdir(parents=True)
        >>> _ = (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000033\\n")
        >>> Image.new("RGB", (12, 8)).save(voc / "JPEGImages/2007_000033.jpg")
        >>> label = Image.fromarray(np.full((8, 12), 255, np.uint8))
        >>> label.putpalette(voc_palette())
        >>> label.save(voc / "SegmentationClass/2007_000033.png")
        >>> ds = PascalVOC(tmp.name, "val")
        >>> len(ds), ds.num_classes, int(ds[0]["mask"][0, 0])
        (1, 21, 255)
        >>> tmp.cleanup()
    """

    class_names: ClassVar[tuple[str, ...]] = VOC_CLASSES
    ignore_index: ClassVar[int] = IGNORE_INDEX
    splits: ClassVar[tuple[Split, ...]] = ("train", "val")
    default_train_aug: ClassVar[bool] = True
    """The ``train_aug`` when ``train_aug`` is ``None``; a subclass may change it."""
    layout: ClassVar[str] = """
root/
├── VOC2012/
│   ├── JPEGImages/<id>.jpg
│   ├── SegmentationClass/<id>.png       palette PNGs: 0..20 classes, 255 ignored
│   └── ImageSets/Segmentation/
│       ├── train.txt                    one image id per line
│       └── val.txt
└── SBD/                                 for train_aug: convert_sbd(
    ├── train.txt                        "benchmark_RELEASE/dataset", root / "SBD")
    ├── val.txt
    └── SegmentationClass/<id>.png
"""

    def __init__(
        self, root: str | Path, split: Split = "train", *, train_aug: bool | None = None
    ) -> None:
        path = self.root_dir(root)
        self.check_split(split)
        self.train_aug = self.default_train_aug if train_aug is None else bool(train_aug)
        super().__init__(path, self._find_pairs(path, split, self.train_aug), split, _LABEL_MAP)

    @classmethod
    def _ids(cls, root: Path, list_file: Path) -> list[str]:
        if not list_file.is_file():
            raise cls.missing("list file", list_file, root)
        return _read_ids(list_file)

    @classmethod
    def _find_pairs(cls, root: Path, split: Split, train_aug: bool) -> list[tuple[Path, Path]]:
        """The image and label file of every image id of the split, sorted by id."""
        voc, sbd = root / "VOC2012", root / "SBD"
        lists = voc / "ImageSets" / "Segmentation"
        voc_ids = set(cls._ids(root, lists / f"{split}.txt"))
        labels = {i: voc / "SegmentationClass" / f"{i}.png" for i in voc_ids}
        if split == "train" and train_aug:
            sbd_ids = set(cls._ids(root, sbd / "train.txt")) | set(cls._ids(root, sbd / "val.txt"))
            extra = sbd_ids - voc_ids - set(cls._ids(root, lists / "val.txt"))
            labels |= {i: sbd / "SegmentationClass" / f"{i}.png" for i in extra}
        pairs = []
        for image_id, label in sorted(labels.items()):
            image = voc / "JPEGImages" / f"{image_id}.jpg"
            for what, file in (("image", image), ("label file", label)):
                if not file.is_file():
                    raise cls.missing(what, file, root)
            pairs.append((image, label))
        return pairs
