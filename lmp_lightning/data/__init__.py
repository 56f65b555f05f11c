"""Data: the embedded synthetic data set, albumentations pipelines and the data module.

Every data set subclasses :class:`SegmentationDataset` and is registered under a short name;
:class:`SegmentationDataModule` finds it by that name (``dataset="synthetic"``).
"""

from lmp_lightning.data.base import SPLITS, SegmentationDataset, Split
from lmp_lightning.data.datamodule import SegmentationDataModule, TransformedDataset
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

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "IGNORE_INDEX",
    "SPLITS",
    "SegmentationDataModule",
    "SegmentationDataset",
    "Split",
    "SyntheticStreetScenes",
    "TransformedDataset",
    "build_dataset",
    "get_dataset_class",
    "list_datasets",
    "register_dataset",
    "render_street_scene",
]
