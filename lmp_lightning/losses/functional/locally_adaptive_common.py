"""What both backends of the locally adaptive loss share (Guo et al. 2018, Section 3): the
checks of its arguments, the standard score of Section 3.1, the weights of the window offsets of
Eq. (2), the first-order guard of its autograd functions and the Minkowski pooling of Eq. (5).

The loss over tensors is :mod:`lmp_lightning.losses.functional.locally_adaptive`, which
re-exports the names below.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "check_kernel_size",
    "check_minkowski_k",
    "check_stride",
    "minkowski_pooling",
    "standard_score",
]


STD_EPS = 1e-5
"""Added to the standard deviation of the standard score, ``(x - mean) / (std + STD_EPS)``."""


MAX_KERNEL_SIZE = 63
"""The largest side of the selective pooling window. Every backend costs ``kernel_size ** 2``
per centre: the compiled one writes a term per window offset (3969 at 63), the sparse one holds
a band matrix of 16,384 centres by ``kernel_size ** 2`` entries (65 million, about 0.5 GB with
their indices in float32, at 63); the paper tries 3, 5 and 7. A window wider than
``2 * max(H, W) - 1`` reaches every pixel from every centre: a larger one gives the same value."""


def check_kernel_size(kernel_size: int) -> int:
    """Validates the side of the selective pooling window: an odd int in
    ``[1, MAX_KERNEL_SIZE]`` (63).

    Args:
        kernel_size: the candidate value.

    Returns:
        ``kernel_size`` unchanged.

    Raises:
        ValueError: ``kernel_size`` even, below 1 or above :data:`MAX_KERNEL_SIZE`.
        TypeError: ``kernel_size`` not an int.

    Example:
        >>> check_kernel_size(5)
        5
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got kernel_size={kernel_size}")
    if kernel_size > MAX_KERNEL_SIZE:
        raise ValueError(
            f"kernel_size must be at most {MAX_KERNEL_SIZE} (the pooling costs kernel_size ** 2 "
            f"per pixel; the paper uses 3 to 7), got kernel_size={kernel_size}"
        )
    return kernel_size


def check_stride(stride: int) -> int:
    """Validates the stride of the filter over the centre pixels: an int ``>= 1``.

    Args:
        stride: the candidate value.

    Returns:
        ``stride`` unchanged.

    Raises:
        ValueError: ``stride`` below 1.
        TypeError: ``stride`` not an int.

    Example:
        >>> check_stride(2)
        2
    """
    if isinstance(stride, bool) or not isinstance(stride, int):
        raise TypeError(f"stride must be an int >= 1, got {stride!r}")
    if stride < 1:
        raise ValueError(f"stride must be an int >= 1, got stride={stride}")
    return stride


def check_minkowski_k(minkowski_k: float) -> float:
    """Validates the exponent of the Minkowski pooling of Eq. (5): a finite real ``>= 1``.

    Args:
        minkowski_k: the candidate value.

    Returns:
        ``minkowski_k`` as a float.

    Raises:
        ValueError: ``minkowski_k`` below 1, NaN or infinite.
        TypeError: ``minkowski_k`` not a real number.

    Example:
        >>> check_minkowski_k(3)
        3.0
    """
    if isinstance(minkowski_k, bool) or not isinstance(minkowski_k, (int, float)):
        raise TypeError(f"minkowski_k must be a real number >= 1, got {minkowski_k!r}")
    # Comparisons only (NaN fails them): math.isfinite breaks a compiled graph on a symbolic float
    if not (1 <= minkowski_k < math.inf):
        raise ValueError(f"minkowski_k must be a finite number >= 1, got minkowski_k={minkowski_k}")
    return float(minkowski_k)


def _compute_dtype(logits: Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)


def standard_score(logits: Tensor) -> Tensor:
    """Standard-score normalisation of every pixel's class scores (Section 3.1).

    ``x = (x_raw - mean) / (std + 1e-5)`` over the class dimension, ``std`` the population
    standard deviation (divided by ``C``), computed in float32 or better.

    Args:
        logits: ``(B, C, H, W)`` class scores.

    Returns:
        ``(B, C, H, W)`` normalised scores, float32 for half-precision input.

    Example:
        >>> standard_score(torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)).flatten()
        tensor([-1.2247,  0.0000,  1.2247])
    """
    z = logits.to(_compute_dtype(logits))
    std, mean = _std_mean(z)
    return (z - mean) / (std + STD_EPS)


def _std_mean(z: Tensor) -> tuple[Tensor, Tensor]:
    """The population standard deviation and the mean over dim 1, kept. Written out: over a
    small class dimension it is faster than ``torch.std_mean`` on CPU."""
    mean = z.mean(1, keepdim=True)
    d = z - mean
    return d.mul_(d).mean(1, keepdim=True).sqrt_(), mean


def _offset_weights(kernel_size: int) -> list[float]:
    """The weight ``2 ** (1 - d)`` of every window offset ``(du, dv)``, row by row (du, then dv),
    d the chessboard distance (Section 3.2: 2 at the centre, 1 at d = 1, 1/2 at d = 2, ...)."""
    r = kernel_size // 2
    return [
        2.0 ** (1 - max(abs(du), abs(dv))) for du in range(-r, r + 1) for dv in range(-r, r + 1)
    ]


def _first_order(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Marks the backward of an autograd function of the loss as first order only: called with
    ``create_graph=True`` it raises, where ``once_differentiable`` would return a gradient
    without a graph whenever the incoming gradient has none (a silent zero second derivative).
    """

    @functools.wraps(backward)
    def first_order_backward(ctx: Any, *grads: Any) -> Any:
        if torch.is_grad_enabled():  # autograd runs a backward in grad mode for create_graph
            raise RuntimeError(
                "the locally adaptive loss has no double backward: its gradient cannot be "
                "differentiated again, so create_graph=True (a gradient penalty, a Hessian "
                "product) is not supported; call backward or torch.autograd.grad without it"
            )
        return backward(ctx, *grads)

    return first_order_backward


def minkowski_pooling(costs: Tensor, valid: Tensor, minkowski_k: float = 3.0) -> Tensor:
    """Minkowski pooling of every row (image) of local costs, Eq. (5) of Guo et al. 2018.

    ``(mean of costs ** k over the valid entries) ** (1 / k)``; a row without a valid entry, or
    whose costs are all 0, gives 0 with a finite (zero) gradient.

    Args:
        costs: ``(B, N)`` non-negative costs (differentiable).
        valid: ``(B, N)`` boolean mask of the entries that take part.
        minkowski_k: the exponent ``k >= 1``; larger values put more weight on high costs.

    Returns:
        ``(B,)`` pooled costs.

    Raises:
        ValueError: ``minkowski_k`` below 1 or not finite.
        TypeError: ``minkowski_k`` not a real number.

    Example:
        >>> costs = torch.tensor([[1.0, 2.0, 5.0], [0.0, 0.0, 0.0]])
        >>> valid = torch.tensor([[True, True, False], [False, False, False]])
        >>> minkowski_pooling(costs, valid, minkowski_k=3)  # ((1 + 8) / 2) ** (1 / 3)
        tensor([1.6510, 0.0000])
    """
    k = check_minkowski_k(minkowski_k)
    if costs.shape[-1] == 0:  # rows without an entry: 0 with a graph
        return costs.sum(-1)
    kept = torch.where(valid, costs, torch.zeros_like(costs))
    # Divided by each row's largest cost before the power, so that a large k neither
    # overflows (costs ** 50) nor underflows: max * (mean of (c / max) ** k) ** (1 / k).
    # The maximum is held fixed; the gradient is still exact (the pooling is 1-homogeneous).
    scale = kept.detach().amax(-1, keepdim=True)
    positive = scale.squeeze(-1) != 0  # NaN stays NaN
    ratio = kept / scale.clamp(min=torch.finfo(kept.dtype).tiny)
    mean = ratio.pow(k).sum(-1) / valid.sum(-1).clamp(min=1)
    # Clamped so that the branch that where() drops has a finite gradient at 0.
    root = mean.clamp(min=torch.finfo(mean.dtype).tiny).pow(1.0 / k) * scale.squeeze(-1)
    return torch.where(positive, root, torch.zeros_like(root))
