"""Lightning callbacks."""

from lmp_lightning.callbacks.performance_aware_sampling import PerformanceAwareSampling

__all__ = ["PerformanceAwareSampling"]
