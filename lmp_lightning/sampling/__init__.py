"""Performance-aware sampling (Rota Bulò et al. 2017, Section 4): class statistics of the
training set, a training IoU tracker, the sampler and the crops it places."""

from lmp_lightning.sampling.class_statistics import ClassStatistics
from lmp_lightning.sampling.crop_sampling import CropSampling
from lmp_lightning.sampling.crops import ClassCenteredCrops
from lmp_lightning.sampling.sampler import (
    NO_CLASS,
    PerformanceAwareSampler,
    class_weights_from_iou,
)
from lmp_lightning.sampling.tracker import TrainingIoUTracker

__all__ = [
    "NO_CLASS",
    "ClassCenteredCrops",
    "ClassStatistics",
    "CropSampling",
    "PerformanceAwareSampler",
    "TrainingIoUTracker",
    "class_weights_from_iou",
]
