"""lmp-lightning: loss max-pooling and locally adaptive losses for imbalanced segmentation.

The public API::

    from lmp_lightning import SegmentationModule, SegmentationDataModule, LossMaxPooling
    module = SegmentationModule("deeplabv3plus", "resnet18", num_classes=11, loss="lmp")

The model zoo is :mod:`lmp_lightning.zoo`, the command line :mod:`lmp_lightning.cli`.
"""

__version__ = "0.1.0"

from lmp_lightning.callbacks import (
    InterruptCheckpoint,
    PerClassGainReport,
    PerformanceAwareSampling,
    PredictionWriter,
)
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.losses import (
    BootstrappedCrossEntropy,
    CenterLoss,
    CrossEntropy,
    InverseMedianFrequencyCrossEntropy,
    LocallyAdaptiveLoss,
    LossMaxPooling,
    SegmentationLoss,
    SoftmaxFocalLoss,
    build_loss,
    list_losses,
)
from lmp_lightning.module import SegmentationModule

__all__ = [
    "BootstrappedCrossEntropy",
    "CenterLoss",
    "CrossEntropy",
    "InterruptCheckpoint",
    "InverseMedianFrequencyCrossEntropy",
    "LocallyAdaptiveLoss",
    "LossMaxPooling",
    "PerClassGainReport",
    "PerformanceAwareSampling",
    "PredictionWriter",
    "SegmentationDataModule",
    "SegmentationLoss",
    "SegmentationModule",
    "SoftmaxFocalLoss",
    "__version__",
    "build_loss",
    "list_losses",
]
