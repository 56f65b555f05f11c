"""The data sets as :class:`SegmentationDataModule` takes them, each with its own typed arguments.

``--data.dataset camvid --data.dataset.scale 0.5`` (or ``CamVid``, the class's name),
``dataset: {class_path: camvid, init_args: {scale: 0.5}}`` in a YAML file and
``SegmentationDataModule(dataset=CamVid(root="data/camvid", scale=0.5))`` are one data set;
``lmp-seg fit --data.dataset.help CamVid`` lists its arguments. Each class here builds the
splits of the data set of the same name in :mod:`lmp_lightning.data` (which holds one split).

Example:
    >>> from lmp_lightning.data import SegmentationDataModule
    >>> data = SegmentationDataModule(dataset=Synthetic(num_train_images=4, image_size=(64, 80)))
    >>> data.num_classes, len(data.dataset.build("train"))
    (10, 4)
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from lmp_lightning.data import camvid, cityscapes, folder, synthetic, voc
from lmp_lightning.data.base import SegmentationDataset, Split
from lmp_lightning.data.registry import register_dataset
from lmp_lightning.data.spec import DatasetSpec, FileDatasetSpec, check_scale, run_seed

__all__ = ["CamVid", "Cityscapes", "Folder", "PascalVOC", "Synthetic"]


@register_dataset("synthetic")
class Synthetic(DatasetSpec):
    """The embedded street scenes, generated on the fly (the default data set):
    :class:`~lmp_lightning.data.SyntheticStreetScenes`.

    Args:
        num_train_images: training images.
        num_val_images: validation images (and test images).
        image_size: ``(height, width)`` of every image, each at least 32.
        seed: the images' seed; ``None`` (the default) takes the data module's seed (the run's).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an argument out of range.
    """

    dataset_class: ClassVar[type[synthetic.SyntheticStreetScenes]] = synthetic.SyntheticStreetScenes

    def __init__(
        self,
        num_train_images: int = 200,
        num_val_images: int = 40,
        image_size: tuple[int, int] = (128, 160),
        seed: int | None = None,
    ) -> None:
        counts = (("num_train_images", num_train_images), ("num_val_images", num_val_images))
        for name, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if len(image_size) != 2:
            raise ValueError(f"image_size must be (height, width), got {image_size!r}")
        height, width = image_size
        # the data set checks its own arguments (height and width at least 32, seed >= 0)
        self.dataset_class(1, height, width, seed=0 if seed is None else seed)
        self.num_train_images, self.num_val_images = num_train_images, num_val_images
        self.image_size = (int(height), int(width))
        self.seed = seed

    def build(self, split: Split) -> synthetic.SyntheticStreetScenes:
        count = self.num_train_images if split == "train" else self.num_val_images
        height, width = self.image_size
        seed = run_seed() if self.seed is None else self.seed
        return self.dataset_class(count, height, width, split=split, seed=seed)

    def with_seed(self, seed: int) -> DatasetSpec:
        if self.seed is not None:
            return self
        seeded = copy.copy(self)
        seeded.seed = int(seed)
        return seeded


class _ScaledFiles(FileDatasetSpec):
    """A data set read from files at a resize factor (CamVid, Cityscapes): its ``root`` and
    ``scale``, the splits built by its ``dataset_class``."""

    dataset_class: ClassVar[Any]

    def __init__(self, root: str | None = None, scale: float | None = None) -> None:
        check_scale(scale)
        self.root, self.scale = root, scale

    @property
    def input_scale(self) -> float:
        return float(self.dataset_class.default_scale if self.scale is None else self.scale)

    def build(self, split: Split) -> SegmentationDataset:
        return self.dataset_class(self.data_dir(), split, scale=self.scale)


@register_dataset("camvid")
class CamVid(_ScaledFiles):
    """CamVid in SegNet's 11-class layout: :class:`lmp_lightning.data.CamVid`.

    Args:
        root: the CamVid folder (``train.txt``, ``val.txt``, ``test.txt`` and the images).
        scale: resize factor of images and labels (``0.5``: half resolution, 240 x 180);
            ``None`` takes the data set's default, 1.
    """

    dataset_class: ClassVar[type[camvid.CamVid]] = camvid.CamVid


@register_dataset("cityscapes")
class Cityscapes(_ScaledFiles):
    """Cityscapes' fine annotations on the 19 train ids: :class:`lmp_lightning.data.Cityscapes`.

    Args:
        root: the Cityscapes folder (``leftImg8bit/`` and ``gtFine/``).
        scale: resize factor of images and labels; ``None`` takes the data set's default, 1.
    """

    dataset_class: ClassVar[type[cityscapes.Cityscapes]] = cityscapes.Cityscapes


@register_dataset("voc")
class PascalVOC(FileDatasetSpec):
    """Pascal VOC 2012 with SBD's extra training annotations: :class:`lmp_lightning.data.PascalVOC`.

    Args:
        root: the folder holding ``VOC2012/`` (and ``SBD/`` for ``train_aug``).
        train_aug: whether the training split adds SBD's images (the 10,582-image train_aug
            set); ``None`` takes the data set's default, true.
    """

    dataset_class: ClassVar[type[voc.PascalVOC]] = voc.PascalVOC

    def __init__(self, root: str | None = None, train_aug: bool | None = None) -> None:
        self.root, self.train_aug = root, train_aug

    def build(self, split: Split) -> voc.PascalVOC:
        return self.dataset_class(self.data_dir(), split, train_aug=self.train_aug)


@register_dataset("folder")
class Folder(FileDatasetSpec):
    """A folder of one's own images and masks, its classes named in ``classes.txt``:
    :class:`lmp_lightning.data.FolderDataset`.

    Args:
        root: the folder (``classes.txt``, ``images/<split>/``, ``masks/<split>/``).
    """

    dataset_class: ClassVar[type[folder.FolderDataset]] = folder.FolderDataset

    def __init__(self, root: str | None = None) -> None:
        self.root = root

    def build(self, split: Split) -> folder.FolderDataset:
        return self.dataset_class(self.data_dir(), split)
