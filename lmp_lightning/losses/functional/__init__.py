"""Loss functions over tensors: the maths, apart from the ``nn.Module`` wrappers."""

from lmp_lightning.losses.functional.lmp import check_p, lmp_weights, loss_max_pooling, resolve_m
from lmp_lightning.losses.functional.locally_adaptive import (
    check_backend,
    check_kernel_size,
    check_minkowski_k,
    check_stride,
    locally_adaptive_costs,
    minkowski_pooling,
    selective_pooling,
    standard_score,
)
from lmp_lightning.losses.functional.pixel import (
    check_logits_target,
    median_frequency_weights,
    pixel_cross_entropy,
    softmax_focal_loss,
)

__all__ = [
    "check_backend",
    "check_kernel_size",
    "check_logits_target",
    "check_minkowski_k",
    "check_p",
    "check_stride",
    "lmp_weights",
    "locally_adaptive_costs",
    "loss_max_pooling",
    "median_frequency_weights",
    "minkowski_pooling",
    "pixel_cross_entropy",
    "resolve_m",
    "selective_pooling",
    "softmax_focal_loss",
    "standard_score",
]
