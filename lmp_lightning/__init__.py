"""lmp-lightning: loss max-pooling and locally adaptive losses for imbalanced segmentation.

The public API::

    from lmp_lightning import SegmentationModule, SegmentationDataModule, LossMaxPooling
    module = SegmentationModule("deeplabv3plus", "resnet18", num_classes=11, loss="lmp")

The model zoo is :mod:`lmp_lightning.zoo`, the command line :mod:`lmp_lightning.cli`. The names
below are imported on first use, so that ``import lmp_lightning`` (and ``lmp-seg zoo list``)
does not load PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lmp_lightning._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "InterruptCheckpoint": "lmp_lightning.callbacks",
    "PerClassGainReport": "lmp_lightning.callbacks",
    "PerformanceAwareSampling": "lmp_lightning.callbacks",
    "PredictionWriter": "lmp_lightning.callbacks",
    "SegmentationDataModule": "lmp_lightning.data",
    "BootstrappedCrossEntropy": "lmp_lightning.losses",
    "CenterLoss": "lmp_lightning.losses",
    "CrossEntropy": "lmp_lightning.losses",
    "InverseMedianFrequencyCrossEntropy": "lmp_lightning.losses",
    "LocallyAdaptiveLoss": "lmp_lightning.losses",
    "LossMaxPooling": "lmp_lightning.losses",
    "SegmentationLoss": "lmp_lightning.losses",
    "SoftmaxFocalLoss": "lmp_lightning.losses",
    "build_loss": "lmp_lightning.losses",
    "list_losses": "lmp_lightning.losses",
    "SegmentationModule": "lmp_lightning.module",
}

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

if TYPE_CHECKING:
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
