"""Data: the data sets, albumentations pipelines and the data module.

Every data set holds one split and subclasses :class:`SegmentationDataset`;
:class:`SegmentationDataModule` takes it as a :class:`~lmp_lightning.data.spec.DatasetSpec`
with the data set's own arguments (:mod:`lmp_lightning.data.sets`), or by its registered short
name: ``synthetic`` (embedded, the default), ``camvid``, ``cityscapes``, ``voc`` and ``folder``
(read from ``root``).
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
    dataset_spec,
    get_dataset_class,
    list_datasets,
    register_dataset,
)
from lmp_lightning.data.spec import DatasetSpec, FileDatasetSpec
from lmp_lightning.data.synthetic import (
    CLASS_NAMES,
    IGNORE_INDEX,
    SyntheticStreetScenes,
    render_street_scene,
)
from lmp_lightning.data.voc import VOC_CLASSES, PascalVOC, convert_sbd, voc_palette

from lmp_lightning.data import sets  # isort: skip  (registers the data sets)
from lmp_lightning.data import names  # isort: skip  (after every registration)

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
    "DatasetSpec",
    "FileDatasetSpec",
    "FolderDataset",
    "PascalVOC",
    "SegmentationDataModule",
    "SegmentationDataset",
    "Split",
    "SyntheticStreetScenes",
    "TransformedDataset",
    "build_dataset",
    "convert_sbd",
    "dataset_spec",
    "get_dataset_class",
    "id_to_train_id",
    "list_datasets",
    "names",
    "read_classes",
    "register_dataset",
    "render_street_scene",
    "sets",
    "voc_palette",
]
