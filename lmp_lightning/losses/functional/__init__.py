"""Loss functions over tensors: the maths, apart from the ``nn.Module`` wrappers."""

from lmp_lightning.losses.functional.lmp import check_p, lmp_weights, loss_max_pooling, resolve_m
from lmp_lightning.losses.functional.pixel import (
    check_logits_target,
    median_frequency_weights,
    pixel_cross_entropy,
    softmax_focal_loss,
)

__all__ = [
    "check_logits_target",
    "check_p",
    "lmp_weights",
    "loss_max_pooling",
    "median_frequency_weights",
    "pixel_cross_entropy",
    "resolve_m",
    "softmax_focal_loss",
]
