"""Lightning callbacks."""

from lmp_lightning.callbacks.interrupt_checkpoint import InterruptCheckpoint
from lmp_lightning.callbacks.per_class_gain_report import PerClassGainReport
from lmp_lightning.callbacks.per_class_results import PerClassResults, format_iou_table
from lmp_lightning.callbacks.performance_aware_sampling import PerformanceAwareSampling
from lmp_lightning.callbacks.prediction_writer import PredictionWriter, label_palette
from lmp_lightning.callbacks.run_dir import run_dir
from lmp_lightning.callbacks.typed_optimizer import TypedOptimizerOnResume
from lmp_lightning.callbacks.validation_images import ValidationImages

__all__ = [
    "InterruptCheckpoint",
    "PerClassGainReport",
    "PerClassResults",
    "PerformanceAwareSampling",
    "PredictionWriter",
    "TypedOptimizerOnResume",
    "ValidationImages",
    "format_iou_table",
    "label_palette",
    "run_dir",
]
