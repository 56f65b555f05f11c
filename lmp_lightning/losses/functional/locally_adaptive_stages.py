"""The stages of the compiled backend of the locally adaptive loss, as eager code: Eq. (2) as one
sum over the window offsets, the cross-entropy of Eq. (4), and their backward.

:mod:`lmp_lightning.losses.functional.locally_adaptive` compiles each stage apart with
``torch.compile`` and runs this eager code where compiling fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.losses.functional.locally_adaptive_common import (
    STD_EPS,
    _compute_dtype,
    _offset_weights,
)


def _pool_dense(
    z: Tensor, labels: Tensor, centres: Tensor, kernel_size: int, stride: int, divide: bool
) -> tuple[Tensor, Tensor | None]:
    """Eq. (2) written as one sum over the window offsets: compiled, it is one loop that reads
    every neighbour from the cache (:func:`_compiled`).

    Args:
        z: ``(B, C, H + 2r, W + 2r)`` values, padded by ``r = kernel_size // 2``.
        labels: ``(B, 1, H + 2r, W + 2r)`` labels as ``z``'s dtype, -1 on the border and where
            ignored.
        centres: ``(B, 1, Hc, Wc)`` the labels of the centres (pixels ``(stride a, stride b)``),
            -2 where ignored (so they keep nothing).
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.
        divide: divide by the number of kept neighbours (at least 1), as Eq. (2) does; without,
            the weighted sums.

    Returns:
        ``(pooled, kept)``: ``(B, C, Hc, Wc)`` and the ``(B, 1, Hc, Wc)`` counts (at least 1);
        ``kept`` is None without ``divide`` (the backward needs only the sums: nothing is
        counted then).
    """
    Hc, Wc = centres.shape[-2:]
    pooled = kept = None
    for (du, dv), weight in zip(_offsets(kernel_size), _offset_weights(kernel_size), strict=True):
        rows = slice(du, du + (Hc - 1) * stride + 1, stride)
        cols = slice(dv, dv + (Wc - 1) * stride + 1, stride)
        same = labels[:, :, rows, cols] == centres
        term = torch.where(same, z[:, :, rows, cols] * weight, 0.0)
        pooled = term if pooled is None else pooled + term
        if divide:  # the backward needs only the sums
            count = same.to(z.dtype)
            kept = count if kept is None else kept + count
    assert pooled is not None  # kernel_size >= 1: one offset at least
    if kept is None:
        return pooled, None
    kept = kept.clamp(min=1.0)  # invalid centres: f = 0, their cost is dropped downstream
    return pooled / kept, kept


def _offsets(kernel_size: int) -> list[tuple[int, int]]:
    """The window offsets on the padded grid, in the order of :func:`_offset_weights`."""
    return [(du, dv) for du in range(kernel_size) for dv in range(kernel_size)]


def _scores_padded(logits: Tensor, labels: Tensor, r: int, stride: int) -> tuple[Tensor, ...]:
    """The standard scores padded by ``r`` with zeros, their standard deviations, the labels
    padded with -1 (in the scores' dtype), the centres' labels (-2 where ignored) and a scalar
    that is 0, or NaN if a logit is not finite."""
    H, W = logits.shape[-2:]
    z = logits.to(_compute_dtype(logits))
    mean = z.mean(1, keepdim=True)
    d = z - mean
    std = torch.mul(d, d).mean(1, keepdim=True).sqrt()
    x = F.pad(d / (std + STD_EPS), (r, r, r, r))
    padded = F.pad(labels[:, None].to(z.dtype), (r, r, r, r), value=-1.0)
    centres = padded[:, :, r : r + H : stride, r : r + W : stride]
    return x, std, padded, torch.where(centres < 0, -2.0, centres), mean.sum() * 0.0


def _grid(grad_f: Tensor, kept: Tensor, padded: Tensor, r: int, stride: int) -> tuple[Tensor, ...]:
    """The backward's input: ``grad_f / kept`` at the centres of a grid padded by ``r`` (0
    elsewhere), and the labels of every pixel as centres (-2 where ignored)."""
    B, _, Hp, Wp = padded.shape
    H, W = Hp - 2 * r, Wp - 2 * r
    q = grad_f.to(padded.dtype) / kept
    if stride > 1:
        grid = q.new_zeros(B, q.shape[1], H, W)
        grid[:, :, ::stride, ::stride] = q
        q = grid
    centres = padded[:, :, r : r + H, r : r + W]
    return F.pad(q, (r, r, r, r)), torch.where(centres < 0, -2.0, centres)


def _cross_entropy(f: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. (4): the softmax cross-entropy of every merged vector against its centre's label,
    0 at ignored centres (label -2), and the log-sum-exp the backward reuses. Both
    ``(B, 1, Hc, Wc)``."""
    lse = torch.logsumexp(f, 1, keepdim=True)
    picked = f.gather(1, centres.clamp(min=0).long())
    return torch.where(centres >= 0, lse - picked, 0.0), lse


def _grid_cross_entropy(
    grad_costs: Tensor,
    f: Tensor,
    lse: Tensor,
    kept: Tensor,
    centres: Tensor,
    padded: Tensor,
    r: int,
    stride: int,
) -> tuple[Tensor, ...]:
    """:func:`_grid` of the gradient of :func:`_cross_entropy`: ``(softmax(f) - onehot) g``."""
    classes = torch.arange(f.shape[1], device=f.device)[None, :, None, None]
    grad = torch.where(centres >= 0, grad_costs.view_as(lse).to(f.dtype), 0.0)
    grad_f = (torch.exp(f - lse) - (classes == centres).to(f.dtype)) * grad
    return _grid(grad_f, kept, padded, r, stride)


def _scores_backward(g: Tensor, x: Tensor, std: Tensor, r: int) -> Tensor:
    """Through the standard score ``x = d / s``, ``d = z - mean``, ``s = std + eps``
    (``std = |d| / sqrt C``): ``dL/dz = (g - mean(g)) / s - x <g, x> / (C std)``, the last term
    0 where ``std = 0`` (as :meth:`_SelectivePooling.backward`, channels first)."""
    C, H, W = g.shape[1], g.shape[2], g.shape[3]
    x = x[:, :, r : r + H, r : r + W]
    coef = torch.where(std > 0, torch.mul(g, x).sum(1, keepdim=True) / (C * std), 0.0)
    return (g - g.mean(1, keepdim=True)) / (std + STD_EPS) - x * coef


_STAGES: dict[str, Callable[..., Any]] = {
    "scores": _scores_padded,
    "pool": _pool_dense,
    "cross_entropy": _cross_entropy,
    "grid_cross_entropy": _grid_cross_entropy,
    "scores_backward": _scores_backward,
}
