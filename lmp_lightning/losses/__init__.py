"""Loss plug-ins: loss max-pooling, the locally adaptive loss and the baselines the papers
compare against.

Every loss subclasses :class:`SegmentationLoss` and is registered under a short name; build one
with :func:`build_loss` or pick it by class name on the command line.
"""

from lmp_lightning.losses.base import LOSSES, SegmentationLoss, build_loss, list_losses
from lmp_lightning.losses.bootstrap import BootstrappedCrossEntropy
from lmp_lightning.losses.center import CenterLoss
from lmp_lightning.losses.cross_entropy import CrossEntropy
from lmp_lightning.losses.focal import SoftmaxFocalLoss
from lmp_lightning.losses.inverse_median_frequency import InverseMedianFrequencyCrossEntropy
from lmp_lightning.losses.lmp import LossMaxPooling
from lmp_lightning.losses.locally_adaptive import LocallyAdaptiveLoss

from lmp_lightning.losses import names  # isort: skip  (after every registration)

__all__ = [
    "LOSSES",
    "BootstrappedCrossEntropy",
    "CenterLoss",
    "CrossEntropy",
    "InverseMedianFrequencyCrossEntropy",
    "LocallyAdaptiveLoss",
    "LossMaxPooling",
    "SegmentationLoss",
    "SoftmaxFocalLoss",
    "build_loss",
    "list_losses",
    "names",
]
