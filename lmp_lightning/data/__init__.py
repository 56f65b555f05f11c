"""Data: the data sets, albumentations pipelines and the data module.

Every data set subclasses :class:`SegmentationDataset` and is registered under a short name;
:class:`SegmentationDataModule` finds it by that name: ``synthetic`` (embedded, the default),
``camvid``, ``cityscapes``, ``voc`` and ``folder`` (read from ``root``).
"""

from lmp_lightning.data.base import SPLITS, SegmentationDataset, Split
from lmp_lightning.data.camvid import CAMVID_CLASSES, CamVid
from lmp_lightning.data.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    Cityscapes,
    CityscapesLabel,
    id_to_train_id,
)
from lmp_lightning.data.datamodule import SegmentationDataModule, TransformedDataset
from lmp_lightning.data.folder import FolderDataset, read_classes
from lmp_lightning.data.registry import (
    DATASETS,
    build_dataset,
    get_dataset_class,
    list_datasets,
    register_dataset,
)
from lmp_lightning.data.synthetic import (
    CLASS_NAMES,
    IGNORE_INDEX,
    SyntheticStreetScenes,
    render_street_scene,
)
from lmp_lightning.data.voc import VOC_CLASSES, PascalVOC, convert_sbd, voc_palette

__all__ = [
    "CAMVID_CLASSES",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "CLASS_NAMES",
    "DATASETS",
    "IGNORE_INDEX",
    "SPLITS",
    "VOC_CLASSES",
    "CamVid",
    "Cityscapes",
    "CityscapesLabel",
    "FolderDataset",
    "PascalVOC",
    "SegmentationDataModule",
    "SegmentationDataset",
    "Split",
    "SyntheticStreetScenes",
    "TransformedDataset",
    "build_dataset",
    "convert_sbd",
    "get_dataset_class",
    "id_to_train_id",
    "list_datasets",
    "read_classes",
    "register_dataset",
    "render_street_scene",
    "voc_palette",
]
