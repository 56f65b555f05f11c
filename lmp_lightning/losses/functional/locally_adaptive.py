"""The locally adaptive learning loss over tensors: Guo, Ren, Gu, Xu and Wu, "Locally Adaptive
Learning Loss for Semantic Image Segmentation", 2018 (Section 3, Eqs. 2, 4 and 5).

Memory stays O(C * H * W) whatever the kernel size: the selective pooling filter of Eq. (2) is a
Python loop over the ``kernel_size ** 2`` window offsets (never over pixels) that accumulates
shifted slices of the normalised scores, and its backward recomputes instead of saving anything
but the inputs. Unfolding the window (``F.unfold``) would hold ``kernel_size ** 2`` copies of the
logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "check_kernel_size",
    "check_minkowski_k",
    "check_stride",
    "locally_adaptive_costs",
    "minkowski_pooling",
    "selective_pooling",
    "standard_score",
]

STD_EPS = 1e-5
"""Added to the standard deviation of the standard score, ``(x - mean) / (std + STD_EPS)``."""


def check_kernel_size(kernel_size: int) -> int:
    """Validates the side of the selective pooling window: an odd int ``>= 1``.

    Args:
        kernel_size: the candidate value.

    Returns:
        ``kernel_size`` unchanged.

    Raises:
        ValueError: ``kernel_size`` even or below 1.
        TypeError: ``kernel_size`` not an int.

    Example:
        >>> check_kernel_size(5)
        5
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got kernel_size={kernel_size}")
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
    if not (math.isfinite(minkowski_k) and minkowski_k >= 1):
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
    std, mean = torch.std_mean(z, dim=1, correction=0, keepdim=True)
    return (z - mean) / (std + STD_EPS)


def _offsets(kernel_size: int) -> list[tuple[int, int, float]]:
    """Every window offset ``(du, dv)`` with its weight ``2 ** (1 - d)``, d the chessboard
    distance (Section 3.2: 2 at the centre, 1 at d = 1, 1/2 at d = 2, ...)."""
    r = kernel_size // 2
    return [
        (du, dv, 2.0 ** (1 - max(abs(du), abs(dv))))
        for du in range(-r, r + 1)
        for dv in range(-r, r + 1)
    ]


def _span(size: int, stride: int, offset: int) -> tuple[slice, slice] | None:
    """Centres ``a`` (grid index) whose neighbour ``stride * a + offset`` lies in ``[0, size)``,
    as (slice of centres, slice of neighbours); None when there is none."""
    first = max(0, -(offset // stride))  # ceil(-offset / stride)
    last = min((size - 1) // stride, (size - 1 - offset) // stride)
    if first > last:
        return None
    neighbours = slice(stride * first + offset, stride * last + offset + 1, stride)
    return slice(first, last + 1), neighbours


def _windows(
    labels: Tensor, kernel_size: int, stride: int
) -> Iterator[tuple[float, tuple[slice, slice], tuple[slice, slice], Tensor]]:
    """For every offset that has a centre: (weight, centre slices, neighbour slices, mask).

    ``labels`` holds -1 at ignored pixels; the boolean mask ``(B, 1, Hc', Wc')`` is True where
    the neighbour's label equals the label of a valid centre (mu of Eq. 2). A generator, so that
    only one offset's mask exists at a time.
    """
    H, W = labels.shape[-2:]
    centre = labels[:, ::stride, ::stride]
    centre = centre.masked_fill(centre < 0, -2)  # a valid neighbour never matches -2
    for du, dv, weight in _offsets(kernel_size):
        rows, cols = _span(H, stride, du), _span(W, stride, dv)
        if rows is None or cols is None:
            continue
        (ci, ni), (cj, nj) = rows, cols
        mask = (labels[:, ni, nj] == centre[:, ci, cj]).unsqueeze(1)
        yield weight, (ci, cj), (ni, nj), mask


class _SelectivePooling(torch.autograd.Function):
    """Eq. (2) on standard scores; saves only its inputs and ``xi``, recomputes in backward."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, kernel_size: int, stride: int) -> Tensor:
        dtype = _compute_dtype(logits)
        x = logits.to(dtype, copy=True)  # standardised in place: one copy of the logits
        std, mean = torch.std_mean(x, dim=1, correction=0, keepdim=True)
        x.sub_(mean).div_(std.add_(STD_EPS))
        B, C, H, W = x.shape
        Hc, Wc = -(-H // stride), -(-W // stride)
        f = x.new_zeros(B, C, Hc, Wc)
        xi = x.new_zeros(B, 1, Hc, Wc)
        for weight, (ci, cj), (ni, nj), mask in _windows(labels, kernel_size, stride):
            mask_f = mask.to(dtype)
            xi[:, :, ci, cj] += mask_f
            f[:, :, ci, cj].addcmul_(x[:, :, ni, nj], mask_f, value=weight)
        xi.clamp_(min=1.0)  # invalid centres: f = 0, their cost is dropped downstream
        f.div_(xi)
        ctx.save_for_backward(logits, labels, xi)
        ctx.kernel_size, ctx.stride = kernel_size, stride
        return f

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_f: Tensor) -> tuple[Tensor, None, None, None]:
        logits, labels, xi = ctx.saved_tensors
        dtype = _compute_dtype(logits)
        grad_f = grad_f.to(dtype)
        grad_x = torch.zeros(logits.shape, dtype=dtype, device=logits.device)
        for weight, (ci, cj), (ni, nj), mask in _windows(labels, ctx.kernel_size, ctx.stride):
            coef = mask.to(dtype) / xi[:, :, ci, cj]  # (B, 1, ., .): d f / d x of Eq. (2)
            grad_x[:, :, ni, nj].addcmul_(grad_f[:, :, ci, cj], coef, value=weight)
        del grad_f
        # Through the standard score x = d / s, d = z - mean, s = std + eps (std = |d| / sqrt C):
        # dL/dz = (g - mean(g)) / s - d * <g, d> / (C s^2 std), the last term 0 where std = 0.
        z = logits.to(dtype)
        std, mean = torch.std_mean(z, dim=1, correction=0, keepdim=True)
        s = std + STD_EPS
        d = z - mean
        g_dot_d = (grad_x * d).sum(1, keepdim=True)
        coef = torch.where(std > 0, g_dot_d / (z.shape[1] * s * s * std), torch.zeros_like(std))
        g_mean = grad_x.mean(1, keepdim=True)
        grad_x.sub_(g_mean).div_(s).addcmul_(d, coef, value=-1.0)
        return grad_x.to(logits.dtype), None, None, None


def selective_pooling(
    logits: Tensor, target: Tensor, kernel_size: int = 5, stride: int = 1, ignore_index: int = 255
) -> tuple[Tensor, Tensor]:
    r"""The selective pooling filter of Eq. (2) of Guo et al. 2018 on standard scores.

    For every centre pixel on the stride grid (``i % stride == 0`` and ``j % stride == 0``)
    whose label is not ``ignore_index``,

    .. math:: f(i, j) = \frac{1}{\xi} \sum_{u, v} \mu(i + u, j + v)\, 2^{1 - d(u, v)}\,
        x_{i + u, j + v},

    over the neighbours inside the image and the ``kernel_size x kernel_size`` window, ``x`` the
    :func:`standard_score` of the logits, :math:`\mu` 1 where the neighbour's label equals the
    centre's (the centre included), ``d`` the chessboard distance and :math:`\xi` the number of
    kept neighbours. Computed in float32 or better with O(C H W) memory (module docstring).

    Args:
        logits: ``(B, C, H, W)`` class scores (not validated here; see
            :func:`~lmp_lightning.losses.functional.check_logits_target`).
        target: ``(B, H, W)`` integer labels in ``[0, C)`` or ``ignore_index``.
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.
        ignore_index: label of the pixels that are neither centres nor kept neighbours.

    Returns:
        ``(f, centre_target)``: ``f`` is ``(B, C, Hc, Wc)`` with ``Hc = ceil(H / stride)``,
        ``Wc = ceil(W / stride)`` (0 at ignored centres); ``centre_target`` is the ``(B, Hc, Wc)``
        int64 label of every centre (``ignore_index`` where ignored).

    Raises:
        ValueError: ``kernel_size`` even or below 1, ``stride`` below 1.
        TypeError: ``kernel_size`` or ``stride`` not an int.

    Example:
        >>> logits = torch.tensor([[[[1.0, 1.0]], [[3.0, 5.0]]]])  # (1, 2, 1, 2): x = (-1, 1)
        >>> f, centres = selective_pooling(logits, torch.tensor([[[0, 0]]]), kernel_size=3)
        >>> f[0, :, 0, 0]  # (2 * x_centre + 1 * x_neighbour) / 2 neighbours kept
        tensor([-1.5000,  1.5000])
    """
    check_kernel_size(kernel_size)
    check_stride(stride)
    target = target.long()
    labels = target.masked_fill(target == ignore_index, -1)
    f = _SelectivePooling.apply(logits, labels, kernel_size, stride)
    return f, target[:, ::stride, ::stride]


def locally_adaptive_costs(
    logits: Tensor, target: Tensor, kernel_size: int = 5, stride: int = 1, ignore_index: int = 255
) -> tuple[Tensor, Tensor]:
    """Local costs of Eq. (4) of Guo et al. 2018: softmax cross-entropy of every centre's merged
    vector :func:`selective_pooling` against the centre's label.

    Args:
        logits: ``(B, C, H, W)`` class scores.
        target: ``(B, H, W)`` integer labels in ``[0, C)`` or ``ignore_index``.
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.
        ignore_index: label of the pixels that take no part.

    Returns:
        ``(costs, valid)``, both ``(B, Hc * Wc)`` over the centre grid: float32 (or better)
        non-negative costs, 0 where ``valid`` (the centre's label is not ``ignore_index``) is
        False.

    Raises:
        ValueError: ``kernel_size`` even or below 1, ``stride`` below 1.
        TypeError: ``kernel_size`` or ``stride`` not an int.

    Example:
        >>> costs, valid = locally_adaptive_costs(
        ...     torch.zeros(2, 3, 5, 5), torch.zeros(2, 5, 5, dtype=torch.long), stride=2
        ... )
        >>> costs.shape, round(costs[0, 0].item(), 4)  # 3 x 3 centres; all scores equal: log 3
        (torch.Size([2, 9]), 1.0986)
    """
    f, centre_target = selective_pooling(logits, target, kernel_size, stride, ignore_index)
    costs = F.cross_entropy(f, centre_target, ignore_index=ignore_index, reduction="none")
    return costs.flatten(1), (centre_target != ignore_index).flatten(1)


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
    kept = torch.where(valid, costs, torch.zeros_like(costs))
    # Divided by each row's largest cost before the power, so that a large k neither
    # overflows (costs ** 50) nor underflows: max * (mean of (c / max) ** k) ** (1 / k).
    # The maximum is held fixed; the gradient is still exact (the pooling is 1-homogeneous).
    scale = kept.detach().amax(-1, keepdim=True)
    positive = scale.squeeze(-1) > 0
    ratio = kept / scale.clamp(min=torch.finfo(kept.dtype).tiny)
    mean = ratio.pow(k).sum(-1) / valid.sum(-1).clamp(min=1)
    # Clamped so that the branch that where() drops has a finite gradient at 0.
    root = mean.clamp(min=torch.finfo(mean.dtype).tiny).pow(1.0 / k) * scale.squeeze(-1)
    return torch.where(positive, root, torch.zeros_like(root))
