"""Lightning callbacks."""

from lmp_lightning.callbacks.performance_aware_sampling import PerformanceAwareSampling
from lmp_lightning.callbacks.prediction_writer import PredictionWriter, label_palette

__all__ = ["PerformanceAwareSampling", "PredictionWriter", "label_palette"]
